//! The pretrained-weights registry: torchvision's ImageNet checkpoints as typed enums,
//! checksums, the cache directory and (feature `pretrained`) the downloader.
//!
//! Nothing here touches the network unless the `pretrained` feature is on *and* `fetch` /
//! `pretrained` is called; constructors never download.
//!
//! # Checksums
//! torchvision names each file after the first 8 hex digits of its SHA-256
//! (`resnet34-b627a593.pth`), and `torch.hub` checks only that 32-bit prefix: enough to
//! catch corruption, not a substituted file. fastburn pins the **full** SHA-256 of every
//! file ([`WeightsInfo::sha256`], [`Checksum::Sha256`]), so a download is accepted only if
//! it is bit-for-bit the file torchvision published. torchvision does not publish these
//! digests; they were read from independent public sources that check the same downloads
//! (download scripts with `sha256sum -c`, build recipes whose fetcher enforces the hash),
//! and each agrees with the prefix in its file name. One file's full digest could not be
//! found: `resnet152-f82ba261.pth` (ResNet-152 `IMAGENET1K_V2`) keeps its published 8-digit
//! prefix ([`Checksum::Sha256Prefix`]); [`WeightsInfo::is_fully_pinned`] says which. For
//! files you obtained yourself, pin the hash with [`verify_file`].
//!
//! ```
//! use fastburn_models::weights::{ResNet34, ResNet50, Weights};
//! use fastburn_models::Arch;
//!
//! let w = ResNet34::ImageNet1kV1.info();
//! assert_eq!(w.arch, Arch::ResNet34);
//! assert_eq!(w.url, "https://download.pytorch.org/models/resnet34-b627a593.pth");
//! assert_eq!(w.sha256_prefix(), "b627a593");
//! assert_eq!(w.sha256.len(), 64);
//! assert!(w.checksum().matches("b627a593bcbe140c234610266fe4f8ae95ea42fc881d091c9b6052e6b1d0590f"));
//! // The same 8-digit prefix with any other tail is refused.
//! assert!(!w.checksum().matches("b627a59300000000000000000000000000000000000000000000000000000000"));
//! assert_eq!(w.top1, 73.314);
//! assert_eq!(Weights::default_for(Arch::ResNet50), Weights::from(ResNet50::ImageNet1kV2));
//! ```

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Arch, Error};

/// Facts torchvision publishes about one checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsInfo {
    /// The architecture the weights are for.
    pub arch: Arch,
    /// torchvision's enum name (`IMAGENET1K_V1`).
    pub name: &'static str,
    /// Download URL.
    pub url: &'static str,
    /// The file's SHA-256: 64 hex digits, or (for the one file whose full digest is not
    /// known, see the module docs) the 8-digit prefix in its name.
    pub sha256: &'static str,
    /// ImageNet-1k top-1 accuracy (%), torchvision's single-crop evaluation.
    pub top1: f64,
    /// ImageNet-1k top-5 accuracy (%).
    pub top5: f64,
    /// Parameters of the network.
    pub num_params: usize,
    /// File size in MB, as torchvision reports it.
    pub file_size_mb: f64,
}

impl WeightsInfo {
    /// The file name (last URL segment), e.g. `resnet34-b627a593.pth`.
    pub fn file_name(&self) -> &'static str {
        self.url.rsplit('/').next().unwrap_or(self.url)
    }

    /// The first 8 hex digits of the SHA-256, as in the file name.
    pub fn sha256_prefix(&self) -> &'static str {
        &self.sha256[..8]
    }

    /// Whether the full SHA-256 is pinned (every file but `resnet152-f82ba261.pth`).
    pub fn is_fully_pinned(&self) -> bool {
        self.sha256.len() == 64
    }

    /// The checksum downloads are verified against: the full SHA-256 where it is pinned,
    /// else the published prefix.
    pub fn checksum(&self) -> Checksum {
        if self.is_fully_pinned() {
            Checksum::Sha256(self.sha256.to_string())
        } else {
            Checksum::Sha256Prefix(self.sha256.to_string())
        }
    }
}

macro_rules! info {
    ($arch:ident, $name:literal, $url:literal, $sha256:literal, $top1:literal, $top5:literal, $params:literal, $mb:literal) => {
        WeightsInfo {
            arch: Arch::$arch,
            name: $name,
            url: $url,
            sha256: $sha256,
            top1: $top1,
            top5: $top5,
            num_params: $params,
            file_size_mb: $mb,
        }
    };
}

// From torchvision 0.29 `models/resnet.py`.
static R18_V1: WeightsInfo = info!(
    ResNet18,
    "IMAGENET1K_V1",
    "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
    69.758,
    89.078,
    11_689_512,
    44.661
);
static R34_V1: WeightsInfo = info!(
    ResNet34,
    "IMAGENET1K_V1",
    "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "b627a593bcbe140c234610266fe4f8ae95ea42fc881d091c9b6052e6b1d0590f",
    73.314,
    91.420,
    21_797_672,
    83.275
);
static R50_V1: WeightsInfo = info!(
    ResNet50,
    "IMAGENET1K_V1",
    "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
    76.130,
    92.862,
    25_557_032,
    97.781
);
static R50_V2: WeightsInfo = info!(
    ResNet50,
    "IMAGENET1K_V2",
    "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
    "11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca",
    80.858,
    95.434,
    25_557_032,
    97.79
);
static R101_V1: WeightsInfo = info!(
    ResNet101,
    "IMAGENET1K_V1",
    "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "63fe2227b86e8f1f2063f43a75c84d195911b6a0eace650907dd3dc62dd49a0a",
    77.374,
    93.546,
    44_549_160,
    170.511
);
static R101_V2: WeightsInfo = info!(
    ResNet101,
    "IMAGENET1K_V2",
    "https://download.pytorch.org/models/resnet101-cd907fc2.pth",
    "cd907fc2a0de2292b2ba2b27d2216bc672d84632d1cf20058d01c0c03b5e020e",
    81.886,
    95.780,
    44_549_160,
    170.53
);
static R152_V1: WeightsInfo = info!(
    ResNet152,
    "IMAGENET1K_V1",
    "https://download.pytorch.org/models/resnet152-394f9c45.pth",
    "394f9c45966e3651a89bbb78a48410a6755854ce4a5ab64927cf1c7247f85e58",
    78.312,
    94.046,
    60_192_808,
    230.434
);
static R152_V2: WeightsInfo = info!(
    ResNet152,
    "IMAGENET1K_V2",
    "https://download.pytorch.org/models/resnet152-f82ba261.pth",
    "f82ba261",
    82.284,
    96.002,
    60_192_808,
    230.474
);

// From torchvision 0.29 `models/mobilenetv2.py` and `models/efficientnet.py`.
static MNV2_V1: WeightsInfo = info!(
    MobileNetV2,
    "IMAGENET1K_V1",
    "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    71.878,
    90.286,
    3_504_872,
    13.555
);
static MNV2_V2: WeightsInfo = info!(
    MobileNetV2,
    "IMAGENET1K_V2",
    "https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth",
    "7ebf99e03e254b273379b23edca7ec0da9f48273b23a332b93c1c99d49e86e8f",
    72.154,
    90.822,
    3_504_872,
    13.598
);
static EFFB0_V1: WeightsInfo = info!(
    EfficientNetB0,
    "IMAGENET1K_V1",
    "https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth",
    "7f5810bc96def8f7552d5b7e68d53c4786f81167d28291b21c0d90e1fca14934",
    77.692,
    93.532,
    5_288_548,
    20.451
);

/// torchvision's `ResNet18_Weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResNet18 {
    /// The original recipe (top-1 69.758 %).
    ImageNet1kV1,
}

/// torchvision's `ResNet34_Weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResNet34 {
    /// The original recipe (top-1 73.314 %); fastai's Planet lesson used these.
    ImageNet1kV1,
}

/// torchvision's `ResNet50_Weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResNet50 {
    /// The original recipe (top-1 76.130 %).
    ImageNet1kV1,
    /// torchvision's improved recipe (top-1 80.858 %; torchvision's default).
    ImageNet1kV2,
}

/// torchvision's `ResNet101_Weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResNet101 {
    /// The original recipe (top-1 77.374 %).
    ImageNet1kV1,
    /// torchvision's improved recipe (top-1 81.886 %; torchvision's default).
    ImageNet1kV2,
}

/// torchvision's `ResNet152_Weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResNet152 {
    /// The original recipe (top-1 78.312 %).
    ImageNet1kV1,
    /// torchvision's improved recipe (top-1 82.284 %; torchvision's default).
    ImageNet1kV2,
}

/// torchvision's `MobileNet_V2_Weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MobileNetV2 {
    /// The original recipe (top-1 71.878 %).
    ImageNet1kV1,
    /// torchvision's improved recipe (top-1 72.154 %; torchvision's default).
    ImageNet1kV2,
}

/// torchvision's `EfficientNet_B0_Weights` (ported from Ross Wightman's timm weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EfficientNetB0 {
    /// top-1 77.692 %; torchvision's default.
    ImageNet1kV1,
}

/// Any of the checkpoints; every per-architecture enum converts into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Weights {
    /// ResNet-18 weights.
    ResNet18(ResNet18),
    /// ResNet-34 weights.
    ResNet34(ResNet34),
    /// ResNet-50 weights.
    ResNet50(ResNet50),
    /// ResNet-101 weights.
    ResNet101(ResNet101),
    /// ResNet-152 weights.
    ResNet152(ResNet152),
    /// MobileNetV2 weights.
    MobileNetV2(MobileNetV2),
    /// EfficientNet-B0 weights.
    EfficientNetB0(EfficientNetB0),
}

macro_rules! per_arch {
    ($($ty:ident),*) => {$(
        impl From<$ty> for Weights {
            fn from(w: $ty) -> Self {
                Weights::$ty(w)
            }
        }
        impl $ty {
            /// What torchvision publishes about these weights.
            pub fn info(self) -> &'static WeightsInfo {
                Weights::from(self).info()
            }
        }
    )*};
}
per_arch!(
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    ResNet152,
    MobileNetV2,
    EfficientNetB0
);

impl Weights {
    /// Every checkpoint in the registry.
    pub const ALL: [Weights; 11] = [
        Weights::ResNet18(ResNet18::ImageNet1kV1),
        Weights::ResNet34(ResNet34::ImageNet1kV1),
        Weights::ResNet50(ResNet50::ImageNet1kV1),
        Weights::ResNet50(ResNet50::ImageNet1kV2),
        Weights::ResNet101(ResNet101::ImageNet1kV1),
        Weights::ResNet101(ResNet101::ImageNet1kV2),
        Weights::ResNet152(ResNet152::ImageNet1kV1),
        Weights::ResNet152(ResNet152::ImageNet1kV2),
        Weights::MobileNetV2(MobileNetV2::ImageNet1kV1),
        Weights::MobileNetV2(MobileNetV2::ImageNet1kV2),
        Weights::EfficientNetB0(EfficientNetB0::ImageNet1kV1),
    ];

    /// What torchvision publishes about these weights.
    pub fn info(self) -> &'static WeightsInfo {
        match self {
            Weights::ResNet18(ResNet18::ImageNet1kV1) => &R18_V1,
            Weights::ResNet34(ResNet34::ImageNet1kV1) => &R34_V1,
            Weights::ResNet50(ResNet50::ImageNet1kV1) => &R50_V1,
            Weights::ResNet50(ResNet50::ImageNet1kV2) => &R50_V2,
            Weights::ResNet101(ResNet101::ImageNet1kV1) => &R101_V1,
            Weights::ResNet101(ResNet101::ImageNet1kV2) => &R101_V2,
            Weights::ResNet152(ResNet152::ImageNet1kV1) => &R152_V1,
            Weights::ResNet152(ResNet152::ImageNet1kV2) => &R152_V2,
            Weights::MobileNetV2(MobileNetV2::ImageNet1kV1) => &MNV2_V1,
            Weights::MobileNetV2(MobileNetV2::ImageNet1kV2) => &MNV2_V2,
            Weights::EfficientNetB0(EfficientNetB0::ImageNet1kV1) => &EFFB0_V1,
        }
    }

    /// torchvision's `DEFAULT` for an architecture (V2 where it exists).
    pub fn default_for(arch: Arch) -> Weights {
        match arch {
            Arch::ResNet18 => ResNet18::ImageNet1kV1.into(),
            Arch::ResNet34 => ResNet34::ImageNet1kV1.into(),
            Arch::ResNet50 => ResNet50::ImageNet1kV2.into(),
            Arch::ResNet101 => ResNet101::ImageNet1kV2.into(),
            Arch::ResNet152 => ResNet152::ImageNet1kV2.into(),
            Arch::MobileNetV2 => MobileNetV2::ImageNet1kV2.into(),
            Arch::EfficientNetB0 => EfficientNetB0::ImageNet1kV1.into(),
        }
    }

    /// The architecture.
    pub fn arch(self) -> Arch {
        self.info().arch
    }
}

/// What a file's SHA-256 must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// The full hash, 64 hex digits.
    Sha256(String),
    /// A prefix of the hash (torchvision publishes 8 hex digits), as `torch.hub` checks.
    Sha256Prefix(String),
}

impl Checksum {
    /// The expected hex string (full hash or prefix).
    pub fn expected(&self) -> &str {
        match self {
            Checksum::Sha256(h) | Checksum::Sha256Prefix(h) => h,
        }
    }

    /// Whether a full SHA-256 (hex) satisfies this checksum. Case-insensitive; an empty,
    /// non-hex or (for `Sha256`) not 64-digit expectation never matches.
    pub fn matches(&self, sha256_hex: &str) -> bool {
        let want = self.expected().to_ascii_lowercase();
        let got = sha256_hex.to_ascii_lowercase();
        let well_formed = !want.is_empty() && want.chars().all(|c| c.is_ascii_hexdigit());
        well_formed
            && match self {
                Checksum::Sha256(_) => want.len() == 64 && got == want,
                Checksum::Sha256Prefix(_) => got.starts_with(&want),
            }
    }
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file, in lower-case hex.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read.
pub fn sha256_file(path: impl AsRef<Path>) -> Result<String, Error> {
    let path = path.as_ref();
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Checks a file against a checksum.
///
/// ```
/// use fastburn_models::weights::{verify_file, Checksum};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("abc.txt");
/// std::fs::write(&path, b"abc").unwrap();
/// let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
/// verify_file(&path, &Checksum::Sha256(sha.into())).unwrap();
/// verify_file(&path, &Checksum::Sha256Prefix("ba7816bf".into())).unwrap();
/// assert!(verify_file(&path, &Checksum::Sha256Prefix("00000000".into())).is_err());
/// ```
///
/// # Errors
/// [`Error::Checksum`] on a mismatch, [`Error::Io`] if the file cannot be read.
pub fn verify_file(path: impl AsRef<Path>, checksum: &Checksum) -> Result<(), Error> {
    let path = path.as_ref();
    let got = sha256_file(path)?;
    if checksum.matches(&got) {
        Ok(())
    } else {
        Err(Error::Checksum {
            path: path.to_path_buf(),
            expected: checksum.expected().to_string(),
            got,
        })
    }
}

/// The cache directory: `$FASTBURN_CACHE`, else `$XDG_CACHE_HOME/fastburn`, else
/// `$HOME/.cache/fastburn` (empty variables count as unset). Not created here.
///
/// # Errors
/// [`Error::NoCacheDir`] if none of the three variables is set.
pub fn cache_dir() -> Result<PathBuf, Error> {
    let var = |k| std::env::var_os(k);
    resolve_cache_dir(var("FASTBURN_CACHE"), var("XDG_CACHE_HOME"), var("HOME"))
}

fn resolve_cache_dir(
    fastburn: Option<OsString>,
    xdg: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, Error> {
    let set = |v: Option<OsString>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(fastburn) {
        return Ok(dir);
    }
    if let Some(dir) = set(xdg) {
        return Ok(dir.join("fastburn"));
    }
    set(home)
        .map(|h| h.join(".cache").join("fastburn"))
        .ok_or(Error::NoCacheDir)
}

/// Where `fetch` (feature `pretrained`) keeps a checkpoint: `cache_dir()/weights/<torchvision file name>`.
///
/// # Errors
/// [`Error::NoCacheDir`].
pub fn cached_path(weights: impl Into<Weights>) -> Result<PathBuf, Error> {
    Ok(cache_dir()?
        .join("weights")
        .join(weights.into().info().file_name()))
}

/// Whether `url`'s host is this machine (`localhost`, `127.0.0.0/8`, `[::1]`), read as a URL
/// reader would: after the scheme and any `user@`, before the port and path. A prefix
/// match is not enough: `localhost.evil.com` and `127.0.0.1.evil.com` are other machines.
#[cfg_attr(not(feature = "pretrained"), allow(dead_code))]
pub(crate) fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, _)) => {
                return h
                    .parse::<std::net::Ipv6Addr>()
                    .is_ok_and(|a| a.is_loopback());
            }
            None => return false,
        }
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

#[cfg(feature = "pretrained")]
pub use download::{
    DownloadOptions, MAX_DOWNLOAD_BYTES, download, download_with, fetch, fetch_url, pretrained,
    pretrained_body,
};

#[cfg(feature = "pretrained")]
mod download {
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use burn::tensor::Device;
    use sha2::{Digest, Sha256};

    use super::{Checksum, Weights, cached_path, hex, verify_file};
    use crate::{Body, DownloadError, Error, Network, load_body, load_torchvision};

    /// Largest body a download accepts (2 GiB).
    pub const MAX_DOWNLOAD_BYTES: u64 = 2 << 30;

    /// How long a download may take: to connect, between two reads, and in all.
    ///
    /// ```
    /// use fastburn_models::weights::DownloadOptions;
    /// use std::time::Duration;
    /// let o = DownloadOptions::default();
    /// assert_eq!(o.total, Duration::from_secs(3600));
    /// assert!(o.connect < o.read && o.read < o.total);
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct DownloadOptions {
        /// Show a progress bar on stderr (when it is a terminal).
        pub progress: bool,
        /// To open the connection (30 s).
        pub connect: Duration,
        /// The longest silence between two reads (60 s).
        pub read: Duration,
        /// The whole transfer, headers and body (1 h: ResNet-152's 230 MB at 64 kB/s; a
        /// server that trickles bytes just fast enough to beat `read` still ends).
        pub total: Duration,
    }

    impl Default for DownloadOptions {
        fn default() -> Self {
            DownloadOptions {
                progress: false,
                connect: Duration::from_secs(30),
                read: Duration::from_secs(60),
                total: Duration::from_secs(3600),
            }
        }
    }

    /// Downloads torchvision weights into the cache (once; see [`fetch_url`]) and returns
    /// the file's path.
    ///
    /// # Errors
    /// [`Error::NoCacheDir`], [`Error::Download`], [`Error::Checksum`], [`Error::Io`].
    pub fn fetch(weights: impl Into<Weights>) -> Result<PathBuf, Error> {
        let weights = weights.into();
        let info = weights.info();
        let dest = cached_path(weights)?;
        fetch_url(info.url, &dest, &info.checksum(), true)?;
        Ok(dest)
    }

    /// The full ImageNet network with pretrained weights: [`fetch`] then
    /// [`load_torchvision`].
    ///
    /// # Errors
    /// As [`fetch`] and [`load_torchvision`].
    pub fn pretrained(weights: impl Into<Weights>, device: &Device) -> Result<Network, Error> {
        let weights = weights.into();
        load_torchvision(weights.arch(), fetch(weights)?, device)
    }

    /// The pretrained body (no `fc`): [`fetch`] then [`load_body`].
    ///
    /// # Errors
    /// As [`fetch`] and [`load_body`].
    pub fn pretrained_body(weights: impl Into<Weights>, device: &Device) -> Result<Body, Error> {
        let weights = weights.into();
        load_body(weights.arch(), fetch(weights)?, device)
    }

    /// Makes sure `dest` holds the file at `url` with the given checksum: a file already
    /// there that verifies is kept without any network access; otherwise (absent, or failing
    /// the check, e.g. an earlier corrupted copy) it is [`download`]ed.
    ///
    /// # Errors
    /// As [`download`].
    pub fn fetch_url(
        url: &str,
        dest: &Path,
        checksum: &Checksum,
        progress: bool,
    ) -> Result<(), Error> {
        if dest.is_file() && verify_file(dest, checksum).is_ok() {
            return Ok(());
        }
        download(url, dest, checksum, progress)
    }

    use super::is_loopback;

    /// Downloads `url` to `dest` atomically: the body streams into a temporary file in
    /// `dest`'s directory while its SHA-256 is computed; only a complete body (as long as
    /// its `Content-Length`) whose hash matches `checksum` is renamed to `dest`. On any
    /// failure nothing is left behind (an existing `dest` is untouched). `progress` shows a
    /// progress bar on stderr (when it is a terminal). Proxies are taken from the usual
    /// environment variables, except for loopback addresses.
    ///
    /// # Errors
    /// [`Error::Download`] (HTTP error, status, interrupted transfer, body above
    /// [`MAX_DOWNLOAD_BYTES`]), [`Error::Checksum`] (naming `dest`), [`Error::Io`].
    pub fn download(
        url: &str,
        dest: &Path,
        checksum: &Checksum,
        progress: bool,
    ) -> Result<(), Error> {
        let opts = DownloadOptions {
            progress,
            ..DownloadOptions::default()
        };
        download_with(url, dest, checksum, &opts)
    }

    /// [`download`] with explicit timeouts.
    ///
    /// # Errors
    /// As [`download`]; [`DownloadError::TimedOut`] when the whole transfer takes longer
    /// than `opts.total` (nothing is left behind).
    pub fn download_with(
        url: &str,
        dest: &Path,
        checksum: &Checksum,
        opts: &DownloadOptions,
    ) -> Result<(), Error> {
        let started = std::time::Instant::now();
        let progress = opts.progress;
        let timed_out = || started.elapsed() >= opts.total;
        let dl = |source| Error::Download {
            url: url.to_string(),
            source,
        };
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let io_at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;

        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(opts.connect))
            .timeout_per_read(Some(opts.read))
            .timeout_global(Some(opts.total));
        if is_loopback(url) {
            config = config.proxy(None);
        }
        let agent: ureq::Agent = config.build().into();
        let total_secs = opts.total.as_secs_f64();
        let response = agent.get(url).call().map_err(|e| match e {
            ureq::Error::StatusCode(code) => dl(DownloadError::Status(code)),
            _ if timed_out() => dl(DownloadError::TimedOut {
                seconds: total_secs,
            }),
            e => dl(DownloadError::Http(Box::new(e))),
        })?;
        let expected_len = response.body().content_length();
        if expected_len.is_some_and(|n| n > MAX_DOWNLOAD_BYTES) {
            return Err(dl(DownloadError::TooLarge {
                limit: MAX_DOWNLOAD_BYTES,
            }));
        }

        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Dropped (and so deleted) on every early return.
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".part")
            .tempfile_in(&dir)
            .map_err(io_at(&dir))?;
        let bar = match (progress, expected_len) {
            (false, _) => indicatif::ProgressBar::hidden(),
            (true, Some(n)) => indicatif::ProgressBar::new(n),
            (true, None) => indicatif::ProgressBar::no_length(),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_message(name.clone());

        let mut reader = response.into_body().into_reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut got: u64 = 0;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) if timed_out() => {
                    bar.abandon();
                    return Err(dl(DownloadError::TimedOut {
                        seconds: total_secs,
                    }));
                }
                Err(e) => {
                    bar.abandon();
                    return Err(dl(match expected_len {
                        Some(expected) if got < expected => {
                            DownloadError::Truncated { expected, got }
                        }
                        _ => DownloadError::Io(e),
                    }));
                }
            };
            if n == 0 {
                break;
            }
            if timed_out() {
                bar.abandon();
                return Err(dl(DownloadError::TimedOut {
                    seconds: total_secs,
                }));
            }
            got += n as u64;
            if got > MAX_DOWNLOAD_BYTES {
                bar.abandon();
                return Err(dl(DownloadError::TooLarge {
                    limit: MAX_DOWNLOAD_BYTES,
                }));
            }
            tmp.write_all(&buf[..n])
                .map_err(|e| dl(DownloadError::Io(e)))?;
            hasher.update(&buf[..n]);
            bar.inc(n as u64);
        }
        if let Some(expected) = expected_len
            && got != expected
        {
            bar.abandon();
            return Err(dl(DownloadError::Truncated { expected, got }));
        }
        bar.finish_and_clear();
        tmp.as_file()
            .sync_all()
            .map_err(|e| dl(DownloadError::Io(e)))?;
        let sha = hex(&hasher.finalize());
        if !checksum.matches(&sha) {
            return Err(Error::Checksum {
                path: dest.to_path_buf(),
                expected: checksum.expected().to_string(),
                got: sha,
            });
        }
        tmp.persist(dest).map_err(|e| Error::Io {
            path: dest.to_path_buf(),
            source: e.error,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_the_host_not_a_prefix() {
        for url in [
            "http://127.0.0.1:8080/w.pth",
            "http://localhost/w.pth",
            "http://LOCALHOST:1/x",
            "http://[::1]:9/x",
            "http://user@127.0.0.2/x",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "http://localhost.evil.com/w.pth",
            "http://127.0.0.1.evil.com/x",
            "https://download.pytorch.org/models/resnet34-b627a593.pth",
            "http://127.0.0.1@evil.com/x",
            "http://[::2]/x",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn cache_dir_precedence() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(
            resolve_cache_dir(s("/a"), s("/x"), s("/h")).unwrap(),
            PathBuf::from("/a")
        );
        assert_eq!(
            resolve_cache_dir(s(""), s("/x"), s("/h")).unwrap(),
            PathBuf::from("/x/fastburn")
        );
        assert_eq!(
            resolve_cache_dir(None, None, s("/h")).unwrap(),
            PathBuf::from("/h/.cache/fastburn")
        );
        assert!(matches!(
            resolve_cache_dir(None, s(""), None),
            Err(Error::NoCacheDir)
        ));
    }

    #[test]
    fn registry_is_consistent() {
        for w in Weights::ALL {
            let info = w.info();
            assert_eq!(info.arch, w.arch());
            // torchvision names files `<arch>-<first 8 hex digits of the sha256>.pth`;
            // EfficientNet-B0's weights are Ross Wightman's port, and say so.
            let stem = match info.arch {
                Arch::EfficientNetB0 => "efficientnet_b0_rwightman".to_string(),
                a => a.to_string(),
            };
            assert_eq!(
                info.file_name(),
                format!("{stem}-{}.pth", info.sha256_prefix())
            );
            assert!(
                info.sha256
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
                "{}",
                info.sha256
            );
            // Full digests everywhere but the one file whose digest is not published.
            let unpinned = info.file_name() == "resnet152-f82ba261.pth";
            assert_eq!(info.is_fully_pinned(), !unpinned, "{}", info.file_name());
            assert_eq!(info.sha256.len(), if unpinned { 8 } else { 64 });
            assert_eq!(
                matches!(info.checksum(), Checksum::Sha256(_)),
                info.is_fully_pinned()
            );
            assert!(info.url.starts_with("https://download.pytorch.org/models/"));
            assert!(info.top1 > 69.0 && info.top1 < info.top5);
        }
        for arch in Arch::ALL {
            assert_eq!(Weights::default_for(arch).arch(), arch);
        }
    }

    #[test]
    fn registry_parameter_counts_are_the_networks() {
        // Construction is lazy: nothing is allocated.
        let device = burn::tensor::Device::flex();
        for w in Weights::ALL {
            let info = w.info();
            let net = crate::Network::imagenet(info.arch, &device);
            assert_eq!(
                crate::num_parameters(&net),
                info.num_params,
                "{}",
                info.file_name()
            );
        }
    }

    #[test]
    fn checksum_matching() {
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert!(Checksum::Sha256(sha.into()).matches(sha));
        assert!(Checksum::Sha256(sha.to_uppercase()).matches(sha));
        assert!(Checksum::Sha256Prefix("ba7816bf".into()).matches(sha));
        assert!(!Checksum::Sha256Prefix("ba7816bff".into()).matches(sha));
        assert!(!Checksum::Sha256Prefix(String::new()).matches(sha));
        assert!(!Checksum::Sha256Prefix("zz".into()).matches(sha));
        assert!(!Checksum::Sha256("ba7816bf".into()).matches(sha));
    }
}
