//! Antialiased resizing (through `fast_image_resize`, SIMD convolution like Pillow's) and the
//! item-level "presize" step that brings every image to one square size.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// How a non-square image becomes square at the item level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum ResizeMethod {
    /// Stretch to the target size (no pixel lost; aspect changes).
    Squish,
    /// Resize the shorter side to the target, then crop a square: at a random position while
    /// training, in the centre for validation (fastai's `Resize` default).
    #[default]
    Crop,
}

/// The resampling filter used when resizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum ResizeFilter {
    /// Bilinear with antialiasing (Pillow's `BILINEAR`, torchvision's default).
    #[default]
    Bilinear,
    /// Lanczos-3 (sharper; used for the resize cache).
    Lanczos3,
    /// Box / area averaging (OpenCV's `INTER_AREA` for downscaling).
    Area,
}

impl ResizeFilter {
    fn alg(self) -> ResizeAlg {
        ResizeAlg::Convolution(match self {
            ResizeFilter::Bilinear => FilterType::Bilinear,
            ResizeFilter::Lanczos3 => FilterType::Lanczos3,
            ResizeFilter::Area => FilterType::Box,
        })
    }
}

/// Resizes (a crop of) an RGB image to `width × height`.
///
/// `crop` is `(left, top, width, height)` in source pixels; `None` uses the whole image.
///
/// # Panics
/// When `width` or `height` is 0 or the crop lies outside the image.
pub fn resize_rgb(
    img: &RgbImage,
    width: u32,
    height: u32,
    filter: ResizeFilter,
    crop: Option<(f64, f64, f64, f64)>,
) -> RgbImage {
    assert!(width > 0 && height > 0, "resize target must be non-empty");
    if crop.is_none() && img.dimensions() == (width, height) {
        return img.clone();
    }
    let src = ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3)
        .expect("an RgbImage buffer has the size its dimensions imply");
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let mut opts = ResizeOptions::new().resize_alg(filter.alg());
    if let Some((l, t, w, h)) = crop {
        opts = opts.crop(l, t, w, h);
    }
    Resizer::new()
        .resize(&src, &mut dst, &opts)
        .expect("source and destination pixel types agree");
    RgbImage::from_raw(width, height, dst.into_vec()).expect("buffer matches dimensions")
}

/// The size of an image whose shorter side is `short`, keeping the aspect ratio.
///
/// ```
/// assert_eq!(fastburn_data::short_side_size(256, 128, 64), (128, 64));
/// assert_eq!(fastburn_data::short_side_size(100, 100, 83), (83, 83));
/// ```
pub fn short_side_size(width: u32, height: u32, short: u32) -> (u32, u32) {
    if width <= height {
        let h = (f64::from(height) * f64::from(short) / f64::from(width)).round() as u32;
        (short, h.max(1))
    } else {
        let w = (f64::from(width) * f64::from(short) / f64::from(height)).round() as u32;
        (w.max(1), short)
    }
}

/// Brings an image to `size × size`.
///
/// With [`ResizeMethod::Crop`], `crop_pos` (each in `[0, 1]`, `0.5` = centre) places the
/// square crop along the longer side.
pub fn presize(
    img: &RgbImage,
    size: u32,
    method: ResizeMethod,
    crop_pos: (f64, f64),
    filter: ResizeFilter,
) -> RgbImage {
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    match method {
        ResizeMethod::Squish => resize_rgb(img, size, size, filter, None),
        ResizeMethod::Crop => {
            if img.width() == img.height() {
                return resize_rgb(img, size, size, filter, None);
            }
            let side = w.min(h);
            let left = (w - side) * crop_pos.0.clamp(0.0, 1.0);
            let top = (h - side) * crop_pos.1.clamp(0.0, 1.0);
            resize_rgb(img, size, size, filter, Some((left, top, side, side)))
        }
    }
}
