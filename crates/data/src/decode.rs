//! Image decoding: format by magic bytes, limits checked before any pixel buffer exists,
//! strict about truncation, panics contained.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, RgbImage};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use crate::error::{Error, ImageFormat, Result};

/// Limits and strictness for [`load_rgb_with`] / [`decode_rgb`].
///
/// The defaults accept any real photograph or satellite chip while refusing decompression
/// bombs: at most 16384 pixels a side, 64 megapixels, and 256 MiB of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DecodeOptions {
    /// Largest accepted width in pixels (inclusive).
    pub max_width: u32,
    /// Largest accepted height in pixels (inclusive).
    pub max_height: u32,
    /// Largest accepted `width × height` (inclusive).
    pub max_pixels: u64,
    /// Largest accepted file size in bytes (inclusive), checked before the file is read.
    pub max_file_bytes: u64,
    /// Refuse truncated images (Pillow's default). When `false`, a truncated JPEG decodes with
    /// its missing part filled in and [`Decoded::truncated`] says so.
    pub strict: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_width: 16384,
            max_height: 16384,
            max_pixels: 64 * 1024 * 1024,
            max_file_bytes: 256 * 1024 * 1024,
            strict: true,
        }
    }
}

/// A decoded image and whether its data was cut short (only possible with
/// `strict: false`).
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The pixels, 8-bit RGB.
    pub image: RgbImage,
    /// The file's format.
    pub format: ImageFormat,
    /// True when the data ended early and the decoder filled in the rest.
    pub truncated: bool,
}

/// The format announced by a file's first bytes, if it is one fastburn decodes.
///
/// ```
/// use fastburn_data::{sniff_format, ImageFormat};
/// assert_eq!(sniff_format(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageFormat::Jpeg));
/// assert_eq!(sniff_format(b"\x89PNG\r\n\x1a\n...."), Some(ImageFormat::Png));
/// assert_eq!(sniff_format(b"GIF89a"), None);
/// ```
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some(ImageFormat::Tiff)
    } else {
        None
    }
}

/// Reads and decodes an image file to 8-bit RGB with the default [`DecodeOptions`].
///
/// Four-component (CMYK) JPEGs — all of Planet's chips — are converted the way Pillow's
/// `convert("RGB")` does (Adobe-inverted CMYK, `R = (255 − K) − (255 − K)·C/255`); grey and
/// alpha images become RGB.
///
/// # Errors
/// A typed [`Error`] naming `path`: [`Error::Io`], [`Error::EmptyFile`],
/// [`Error::FileTooLarge`], [`Error::UnsupportedFormat`], [`Error::DimensionLimit`],
/// [`Error::Truncated`], [`Error::Decode`], or [`Error::Panic`] when the decoder panicked.
///
/// # Example
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("red.png");
/// image::RgbImage::from_pixel(4, 3, image::Rgb([255, 0, 0])).save(&path)?;
/// let img = fastburn_data::load_rgb(&path)?;
/// assert_eq!(img.dimensions(), (4, 3));
/// assert_eq!(img.get_pixel(0, 0).0, [255, 0, 0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_rgb(path: impl AsRef<Path>) -> Result<RgbImage> {
    load_rgb_with(path, &DecodeOptions::default()).map(|d| d.image)
}

/// [`load_rgb`] with explicit options, also reporting the format and truncation.
///
/// # Errors
/// As [`load_rgb`].
pub fn load_rgb_with(path: impl AsRef<Path>, opts: &DecodeOptions) -> Result<Decoded> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > opts.max_file_bytes {
        return Err(Error::FileTooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            limit: opts.max_file_bytes,
        });
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_rgb(&bytes, path, opts)
}

/// Decodes image bytes to RGB; `path` is only used to name errors.
///
/// # Errors
/// As [`load_rgb`].
pub fn decode_rgb(bytes: &[u8], path: &Path, opts: &DecodeOptions) -> Result<Decoded> {
    if bytes.is_empty() {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    if bytes.len() as u64 > opts.max_file_bytes {
        return Err(Error::FileTooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit: opts.max_file_bytes,
        });
    }
    let Some(format) = sniff_format(bytes) else {
        let magic = bytes
            .iter()
            .take(8)
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            magic,
        });
    };
    contain_panics(path, || match format {
        ImageFormat::Jpeg => decode_jpeg(bytes, path, opts),
        ImageFormat::Png | ImageFormat::Tiff => decode_with_image(bytes, path, opts, format),
    })
}

/// Runs `f`, turning a panic inside it into [`Error::Panic`] naming `path`.
///
/// Decoders of untrusted files are not promised to be panic-free; fastburn runs every decode
/// and augmentation through this guard so one bad file never takes a training run down.
///
/// ```
/// use std::path::Path;
/// let r: Result<(), _> = fastburn_data::contain_panics(Path::new("x.jpg"), || panic!("boom"));
/// assert!(matches!(r, Err(fastburn_data::Error::Panic { .. })));
/// ```
pub fn contain_panics<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(Error::Panic {
            path: path.to_path_buf(),
            message: panic_message(payload.as_ref()),
        }),
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

fn check_dims(path: &Path, w: u64, h: u64, opts: &DecodeOptions) -> Result<()> {
    if w > u64::from(opts.max_width) || h > u64::from(opts.max_height) || w * h > opts.max_pixels {
        return Err(Error::DimensionLimit {
            path: path.to_path_buf(),
            width: w,
            height: h,
            max_width: opts.max_width,
            max_height: opts.max_height,
            max_pixels: opts.max_pixels,
        });
    }
    Ok(())
}

/// True when a JPEG has an end-of-image marker after its first scan. Inside entropy-coded
/// data every `FF` byte is followed by `00` or a restart marker, so `FF D9` there is the EOI.
fn jpeg_has_eoi(bytes: &[u8]) -> bool {
    let mut pos = 2;
    // Walk the marker segments up to the first start-of-scan.
    loop {
        while pos < bytes.len() && bytes[pos] == 0xFF {
            pos += 1;
        }
        if pos >= bytes.len() {
            return false;
        }
        let marker = bytes[pos];
        pos += 1;
        match marker {
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        if pos + 2 > bytes.len() {
            return false;
        }
        let len = usize::from(u16::from_be_bytes([bytes[pos], bytes[pos + 1]]));
        if marker == 0xDA {
            pos += len;
            break;
        }
        pos += len;
    }
    bytes
        .get(pos..)
        .is_some_and(|rest| rest.windows(2).any(|w| w == [0xFF, 0xD9]))
}

fn jpeg_error(path: &Path, e: zune_jpeg::errors::DecodeErrors) -> Error {
    Error::Decode {
        path: path.to_path_buf(),
        format: ImageFormat::Jpeg,
        source: Box::new(DisplayError(format!("{e:?}"))),
    }
}

/// An error from a decoder whose error type is not `Send + Sync + 'static`, kept as text.
#[derive(Debug)]
struct DisplayError(String);

impl std::fmt::Display for DisplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DisplayError {}

fn decode_jpeg(bytes: &[u8], path: &Path, opts: &DecodeOptions) -> Result<Decoded> {
    let truncated = !jpeg_has_eoi(bytes);
    if truncated && opts.strict {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            format: ImageFormat::Jpeg,
        });
    }
    let options = DecoderOptions::default()
        .set_strict_mode(opts.strict)
        // Our own limits are checked right after the header; zune's would give an untyped
        // error, so they are opened wide (a JPEG side is at most 65535 anyway).
        .set_max_width(usize::from(u16::MAX) + 1)
        .set_max_height(usize::from(u16::MAX) + 1);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    if let Err(e) = dec.decode_headers() {
        // zune reports over-limit sizes as an error while reading the header: map it.
        if let zune_jpeg::errors::DecodeErrors::LargeDimensions(_) = e {
            let (w, h) = jpeg_sof_dims(bytes).unwrap_or((u64::MAX, u64::MAX));
            return Err(Error::DimensionLimit {
                path: path.to_path_buf(),
                width: w,
                height: h,
                max_width: opts.max_width,
                max_height: opts.max_height,
                max_pixels: opts.max_pixels,
            });
        }
        return Err(jpeg_error(path, e));
    }
    let (w, h) = dec.dimensions().ok_or_else(|| Error::Truncated {
        path: path.to_path_buf(),
        format: ImageFormat::Jpeg,
    })?;
    check_dims(path, w as u64, h as u64, opts)?;
    let input = dec.input_colorspace().unwrap_or(ColorSpace::YCbCr);
    let cmyk = input == ColorSpace::CMYK;
    let out_space = match input {
        ColorSpace::CMYK => ColorSpace::CMYK,
        _ => ColorSpace::RGB,
    };
    dec.set_options(options.jpeg_set_out_colorspace(out_space));
    let raw = dec.decode().map_err(|e| jpeg_error(path, e))?;
    let rgb = if cmyk { cmyk_to_rgb_pillow(&raw) } else { raw };
    let expected = w * h * 3;
    if rgb.len() != expected {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            format: ImageFormat::Jpeg,
        });
    }
    let image = RgbImage::from_raw(w as u32, h as u32, rgb).ok_or_else(|| Error::Truncated {
        path: path.to_path_buf(),
        format: ImageFormat::Jpeg,
    })?;
    Ok(Decoded {
        image,
        format: ImageFormat::Jpeg,
        truncated,
    })
}

/// Width and height from a JPEG's start-of-frame segment, read without decoding.
fn jpeg_sof_dims(bytes: &[u8]) -> Option<(u64, u64)> {
    let mut pos = 2;
    while pos + 4 <= bytes.len() {
        if bytes[pos] != 0xFF {
            return None;
        }
        let marker = bytes[pos + 1];
        let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let s = bytes.get(pos + 5..pos + 9)?;
            let h = u16::from_be_bytes([s[0], s[1]]);
            let w = u16::from_be_bytes([s[2], s[3]]);
            return Some((u64::from(w), u64::from(h)));
        }
        pos += 2 + len;
    }
    None
}

/// Width and height from a PNG's IHDR chunk, read without decoding.
fn png_ihdr_dims(bytes: &[u8]) -> Option<(u64, u64)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let h = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((u64::from(w), u64::from(h)))
}

/// Pillow's `CMYK;I` unpacking followed by its `cmyk2rgb`, bit for bit:
/// `nk = 255 − K; R = nk − MULDIV255(C, nk)` with `C = 255 − raw`.
fn cmyk_to_rgb_pillow(raw: &[u8]) -> Vec<u8> {
    #[inline]
    fn muldiv255(a: u32, b: u32) -> u32 {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    }
    let mut out = Vec::with_capacity(raw.len() / 4 * 3);
    for px in raw.chunks_exact(4) {
        let nk = u32::from(px[3]); // 255 − K where K = 255 − raw
        for &c_raw in &px[..3] {
            let c = 255 - u32::from(c_raw);
            out.push(nk.saturating_sub(muldiv255(c, nk)).min(255) as u8);
        }
    }
    out
}

fn decode_with_image(
    bytes: &[u8],
    path: &Path,
    opts: &DecodeOptions,
    format: ImageFormat,
) -> Result<Decoded> {
    let map = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => {
            let (width, height) = png_ihdr_dims(bytes).unwrap_or((0, 0));
            Error::DimensionLimit {
                path: path.to_path_buf(),
                width,
                height,
                max_width: opts.max_width,
                max_height: opts.max_height,
                max_pixels: opts.max_pixels,
            }
        }
        image::ImageError::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Truncated {
                path: path.to_path_buf(),
                format,
            }
        }
        e => Error::Decode {
            path: path.to_path_buf(),
            format,
            source: Box::new(e),
        },
    };
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(opts.max_width);
    limits.max_image_height = Some(opts.max_height);
    limits.max_alloc = Some(opts.max_pixels.saturating_mul(8).max(1 << 20));
    let img = match format {
        ImageFormat::Png => {
            // Check the declared size before the decoder reads (or allocates) anything more.
            if let Some((w, h)) = png_ihdr_dims(bytes) {
                check_dims(path, w, h, opts)?;
            }
            let mut dec = image::codecs::png::PngDecoder::new(Cursor::new(bytes)).map_err(map)?;
            let (w, h) = dec.dimensions();
            check_dims(path, u64::from(w), u64::from(h), opts)?;
            dec.set_limits(limits).map_err(map)?;
            DynamicImage::from_decoder(dec).map_err(map)?
        }
        _ => {
            let mut dec = image::codecs::tiff::TiffDecoder::new(Cursor::new(bytes)).map_err(map)?;
            let (w, h) = dec.dimensions();
            check_dims(path, u64::from(w), u64::from(h), opts)?;
            dec.set_limits(limits).map_err(map)?;
            DynamicImage::from_decoder(dec).map_err(map)?
        }
    };
    Ok(Decoded {
        image: img.to_rgb8(),
        format,
        truncated: false,
    })
}
