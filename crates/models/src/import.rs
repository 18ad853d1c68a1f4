//! Strict import of torchvision weights from `.pth` and `.safetensors` files.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    ApplyError, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore,
};
use burn::tensor::DType;

use crate::module_enum::transparent_module_enum;
use crate::{
    Arch, Body, EfficientNet, EfficientNetConfig, Error, Family, MobileNetV2, MobileNetV2Config,
    ResNet, ResNetBody, ResNetConfig, VisionModelConfig,
};

/// Largest weight file the loaders open (1 GiB; torchvision's ResNet-152 is 230 MB).
/// Larger files are refused with [`Error::TooLarge`] before anything is parsed.
pub const MAX_WEIGHT_FILE_BYTES: u64 = 1 << 30;

/// A full torchvision network of any family, as [`load_torchvision`] returns it: parameter
/// paths are the family's own (no variant name).
// A few networks per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Network {
    /// A ResNet.
    ResNet(ResNet),
    /// A MobileNetV2.
    MobileNetV2(MobileNetV2),
    /// An EfficientNet.
    EfficientNet(EfficientNet),
}

transparent_module_enum!(Network {
    ResNet,
    MobileNetV2,
    EfficientNet
});

impl Network {
    /// The network of `arch` at torchvision's width, 3 input channels and 1000 classes,
    /// randomly initialised (lazily: nothing is allocated before use).
    pub fn imagenet(arch: Arch, device: &Device) -> Network {
        match arch.family() {
            Family::ResNet => Network::ResNet(ResNetConfig::new(arch).init(device)),
            Family::MobileNetV2 => Network::MobileNetV2(MobileNetV2Config::new().init(device)),
            Family::EfficientNet => Network::EfficientNet(EfficientNetConfig::new().init(device)),
        }
    }

    /// Logits.
    ///
    /// # Shapes
    /// - `x`: `[N, in_channels, H, W]`
    /// - output: `[N, num_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Network::ResNet(m) => m.forward(x),
            Network::MobileNetV2(m) => m.forward(x),
            Network::EfficientNet(m) => m.forward(x),
        }
    }

    /// Outputs of the classifier.
    pub fn num_classes(&self) -> usize {
        match self {
            Network::ResNet(m) => m.num_classes(),
            Network::MobileNetV2(m) => m.num_classes(),
            Network::EfficientNet(m) => m.num_classes(),
        }
    }

    /// The network without its classifier, as fastai's `create_body` cuts it.
    pub fn into_body(self) -> Body {
        match self {
            Network::ResNet(m) => Body::ResNet(m.into_body()),
            Network::MobileNetV2(m) => Body::MobileNetV2(m.into_body()),
            Network::EfficientNet(m) => Body::EfficientNet(m.into_body()),
        }
    }

    /// Loads torchvision-named weights into this network; strict as [`load_torchvision`].
    ///
    /// # Errors
    /// As [`load_torchvision`].
    pub fn load_weights(self, path: impl AsRef<Path>) -> Result<Network, Error> {
        Ok(match self {
            Network::ResNet(m) => Network::ResNet(m.load_weights(path)?),
            Network::MobileNetV2(m) => Network::MobileNetV2(m.load_weights(path)?),
            Network::EfficientNet(m) => Network::EfficientNet(m.load_weights(path)?),
        })
    }

    /// The ResNet, if this is one.
    pub fn into_resnet(self) -> Option<ResNet> {
        match self {
            Network::ResNet(m) => Some(m),
            _ => None,
        }
    }

    /// The MobileNetV2, if this is one.
    pub fn into_mobilenet_v2(self) -> Option<MobileNetV2> {
        match self {
            Network::MobileNetV2(m) => Some(m),
            _ => None,
        }
    }

    /// The EfficientNet, if this is one.
    pub fn into_efficientnet(self) -> Option<EfficientNet> {
        match self {
            Network::EfficientNet(m) => Some(m),
            _ => None,
        }
    }
}

/// Loads torchvision weights into a full ImageNet-shaped network of `arch` (3 input
/// channels, torchvision's width, 1000-way classifier).
///
/// `path` is a torchvision `state_dict` saved by `torch.save` (`.pth`, ZIP or legacy pickle
/// format, read by burn-store's bounded PyTorch reader) or a SafeTensors file; the format is
/// told by the file's magic bytes, not its extension. The import is strict: every parameter
/// and BatchNorm statistic must be present with torchvision's shape, and nothing else may be
/// (BatchNorm's `num_batches_tracked` is ignored). Float tensors of any width are converted
/// to the device's float type. Keys are used as they are: a checkpoint that nests its
/// state_dict (`{"state_dict": …}`) or prefixes its keys (`module.` from `DataParallel`) is
/// reported as [`Error::MissingKeys`].
///
/// # Errors
/// [`Error::TooLarge`], [`Error::UnknownFormat`], [`Error::Read`] (truncated / corrupt file),
/// [`Error::MissingKeys`], [`Error::UnexpectedKeys`], [`Error::ShapeMismatch`],
/// [`Error::DType`], [`Error::CorruptTensor`], [`Error::NonFinite`], [`Error::Io`]; each names
/// the file, and the key where one tensor is to blame.
///
/// # Example
/// ```no_run
/// use burn::tensor::{Device, Tensor};
/// use fastburn_models::{load_torchvision, Arch};
///
/// let device = Device::flex();
/// let model = load_torchvision(Arch::MobileNetV2, "mobilenet_v2-7ebf99e0.pth", &device)?;
/// let logits = model.forward(Tensor::zeros([1, 3, 224, 224], &device));
/// assert_eq!(logits.dims(), [1, 1000]);
/// # Ok::<(), fastburn_models::Error>(())
/// ```
pub fn load_torchvision(
    arch: Arch,
    path: impl AsRef<Path>,
    device: &Device,
) -> Result<Network, Error> {
    Network::imagenet(arch, device).load_weights(path)
}

/// Loads the body of a torchvision network at torchvision's width (everything but the
/// classifier — `fc` or `classifier.*` — whose keys are ignored, whatever their shape),
/// ready for [`VisionModelConfig::init_with_body`](crate::VisionModelConfig::init_with_body).
/// The file may be a full checkpoint or a body-only one (just the body's tensors, e.g.
/// `features.*`). For a narrow body use [`VisionModelConfig::load_body`].
///
/// # Errors
/// As [`load_torchvision`].
pub fn load_body(arch: Arch, path: impl AsRef<Path>, device: &Device) -> Result<Body, Error> {
    VisionModelConfig::new(arch, 1).load_body(path, device)
}

impl ResNet {
    /// Loads torchvision-named weights into this network, whatever its configuration (a
    /// narrow network loads a narrow checkpoint); strict as [`load_torchvision`].
    ///
    /// # Errors
    /// As [`load_torchvision`].
    pub fn load_weights(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        load_into(self, path.as_ref(), &[])
    }
}

impl ResNetBody {
    /// Loads torchvision-named weights into this body, ignoring `fc.*`; strict otherwise.
    ///
    /// # Errors
    /// As [`load_torchvision`].
    pub fn load_weights(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        load_into(self, path.as_ref(), &["fc."])
    }
}

/// The weight formats the loaders read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WeightFormat {
    /// `torch.save` output: a ZIP archive (PyTorch ≥ 1.6) or a legacy pickle stream.
    Pytorch,
    /// SafeTensors.
    Safetensors,
}

/// Tells the format of a weight file from its first bytes.
///
/// # Errors
/// [`Error::Io`] if it cannot be read, [`Error::TooLarge`] above
/// [`MAX_WEIGHT_FILE_BYTES`], [`Error::UnknownFormat`] for anything else.
pub fn sniff_format(path: impl AsRef<Path>) -> Result<WeightFormat, Error> {
    let path = path.as_ref();
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_WEIGHT_FILE_BYTES {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size,
            limit: MAX_WEIGHT_FILE_BYTES,
        });
    }
    let mut head = Vec::with_capacity(9);
    std::fs::File::open(path)
        .map_err(io)?
        .take(9)
        .read_to_end(&mut head)
        .map_err(io)?;
    // Safetensors first: its first byte is the low byte of the header length, which is
    // 0x80 (a pickle's PROTO opcode) for one header length in 256.
    if head.len() == 9 && head[8] == b'{' {
        let header_len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        if header_len <= size - 8 {
            return Ok(WeightFormat::Safetensors);
        }
    }
    if head.starts_with(b"PK\x03\x04") || head.first() == Some(&0x80) {
        return Ok(WeightFormat::Pytorch);
    }
    Err(Error::UnknownFormat {
        path: path.to_path_buf(),
        magic: head,
    })
}

/// Reads every tensor of a weight file (data stays lazy), keyed by its name in the file.
fn read_tensors(path: &Path) -> Result<BTreeMap<String, PackTensor>, Error> {
    let read = |source: Box<dyn std::error::Error + Send + Sync>| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    match sniff_format(path)? {
        WeightFormat::Pytorch => {
            let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
            store
                .get_all_tensors()
                .cloned()
                .map_err(|e| read(Box::new(e)))
        }
        WeightFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path);
            store
                .get_all_tensors()
                .cloned()
                .map_err(|e| read(Box::new(e)))
        }
    }
}

/// The torchvision key and PyTorch-layout shape of every tensor of a module (parameters and
/// BatchNorm statistics).
#[derive(Default)]
struct TorchKeys {
    path: Vec<String>,
    containers: Vec<String>,
    /// torch key → (PyTorch-layout shape, Burn path).
    keys: BTreeMap<String, (Vec<usize>, String)>,
}

impl TorchKeys {
    fn of<M: Module>(module: &M) -> BTreeMap<String, (Vec<usize>, String)> {
        let mut v = TorchKeys::default();
        module.visit(&mut v);
        v.keys
    }
}

impl ModuleVisitor for TorchKeys {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.containers.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let burn_path = self.path.join(".");
        let mut shape = param.lazy_shape().to_vec();
        let owner = self
            .containers
            .iter()
            .rev()
            .find(|c| c.starts_with("Struct:"))
            .map(String::as_str);
        let mut parts = self.path.clone();
        if let Some(last) = parts.last_mut() {
            match (owner, last.as_str()) {
                (Some("Struct:BatchNorm"), "gamma") => *last = "weight".into(),
                (Some("Struct:BatchNorm"), "beta") => *last = "bias".into(),
                (Some("Struct:Linear"), "weight") => shape.reverse(),
                _ => {}
            }
        }
        self.keys.insert(parts.join("."), (shape, burn_path));
    }
}

fn is_ignored(key: &str, ignore: &[&str]) -> bool {
    key.ends_with(".num_batches_tracked") || ignore.iter().any(|p| key.starts_with(p))
}

/// Validates `path` against `model` (keys, shapes, dtypes) and applies it.
pub(crate) fn load_into<M: Module>(mut model: M, path: &Path, ignore: &[&str]) -> Result<M, Error> {
    let file = path.to_path_buf();
    let tensors = read_tensors(path)?;
    let expected = TorchKeys::of(&model);

    let missing: Vec<String> = expected
        .keys()
        .filter(|k| !tensors.contains_key(*k) && !is_ignored(k, ignore))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(Error::MissingKeys {
            path: file,
            keys: missing,
        });
    }
    let unexpected: Vec<String> = tensors
        .keys()
        .filter(|k| !expected.contains_key(*k) && !is_ignored(k, ignore))
        .cloned()
        .collect();
    if !unexpected.is_empty() {
        return Err(Error::UnexpectedKeys {
            path: file,
            keys: unexpected,
        });
    }

    let float = model_float_dtype(&model);
    let mut to_apply = Vec::with_capacity(expected.len());
    for (key, (shape, burn_path)) in &expected {
        if is_ignored(key, ignore) {
            continue;
        }
        let t = &tensors[key];
        let got = t.shape.to_vec();
        if &got != shape {
            return Err(Error::ShapeMismatch {
                path: file,
                key: key.clone(),
                expected: shape.clone(),
                got,
            });
        }
        if !t.dtype.is_float() {
            return Err(Error::DType {
                path: file,
                key: key.clone(),
                got: format!("{:?}", t.dtype),
            });
        }
        // Hand the tensor to the applier under the name it looks up first (the adapter's
        // alternative names, `weight` for `gamma`, would work too, but exact names leave no
        // room for surprises).
        let mut t = t.clone();
        t.name = burn_path.clone();
        to_apply.push(t);
    }

    let adapter: Box<dyn ModuleAdapter> =
        Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(float)));
    let result = model.apply(to_apply, None, Some(adapter), false);
    let torch_key = |burn_path: &str| {
        expected
            .iter()
            .find(|(_, (_, p))| p == burn_path)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| burn_path.to_string())
    };
    if let Some(e) = result.errors.first() {
        return Err(match e {
            ApplyError::ShapeMismatch {
                path: p,
                expected,
                found,
            } => Error::ShapeMismatch {
                path: file,
                key: torch_key(p),
                expected: expected.to_vec(),
                got: found.to_vec(),
            },
            ApplyError::DTypeMismatch { path: p, found, .. } => Error::DType {
                path: file,
                key: torch_key(p),
                got: format!("{found:?}"),
            },
            ApplyError::AdapterError { path: p, message }
            | ApplyError::LoadError { path: p, message } => Error::CorruptTensor {
                path: file,
                key: torch_key(p),
                message: message.clone(),
            },
        });
    }
    if !result.missing.is_empty() {
        return Err(Error::MissingKeys {
            path: file,
            keys: result.missing.iter().map(|(p, _)| torch_key(p)).collect(),
        });
    }
    if !result.unused.is_empty() {
        return Err(Error::UnexpectedKeys {
            path: file,
            keys: result.unused.iter().map(|p| torch_key(p)).collect(),
        });
    }
    if let Some(burn_path) = first_non_finite(&model) {
        return Err(Error::NonFinite {
            path: file,
            key: torch_key(&burn_path),
        });
    }
    Ok(model)
}

/// The float dtype the module's parameters are created with (the device's default).
fn model_float_dtype<M: Module>(model: &M) -> DType {
    model
        .devices()
        .first()
        .map(|d| d.settings().float_dtype.into())
        .unwrap_or(DType::F32)
}

/// Path of the first float tensor holding NaN or ±inf.
fn first_non_finite<M: Module>(model: &M) -> Option<String> {
    #[derive(Default)]
    struct Finder {
        path: Vec<String>,
        found: Option<String>,
    }
    impl ModuleVisitor for Finder {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.found.is_some() {
                return;
            }
            let max: f32 = param.val().abs().max().into_scalar();
            if !max.is_finite() {
                self.found = Some(self.path.join("."));
            }
        }
    }
    let mut f = Finder::default();
    model.visit(&mut f);
    f.found
}
