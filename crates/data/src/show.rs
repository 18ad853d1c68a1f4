//! `show_batch`: a PNG grid of a batch's images with their tags written beneath, in an
//! embedded 8×8 bitmap font (`font8x8`), so nothing depends on system fonts.

use std::path::Path;

use burn::config::Config;
use image::{Rgb, RgbImage};

use crate::augment::augment_cpu;
use crate::dataset::{AugOn, Transforms};
use crate::error::{Error, Result};
use crate::items::Vocab;
use crate::loader::{CpuBatch, DataLoader};
use crate::synth::write_atomic;

/// Layout of a [`show_batch`] grid.
#[derive(Config, Debug, PartialEq)]
pub struct ShowConfig {
    /// Tiles per row.
    #[config(default = 4)]
    pub cols: usize,
    /// Most images shown.
    #[config(default = 16)]
    pub max_items: usize,
    /// Images smaller than this are enlarged (nearest neighbour) to it.
    #[config(default = 128)]
    pub min_tile: u32,
}

const GLYPH: u32 = 8;
const PAD: u32 = 4;

/// Draws `text` at `(x, y)` in the 8×8 font, clipped to the image.
pub fn draw_text(img: &mut RgbImage, x: u32, y: u32, text: &str, color: Rgb<u8>) {
    use font8x8::UnicodeFonts;
    for (k, ch) in text.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS
            .get(ch)
            .or_else(|| font8x8::BASIC_FONTS.get('?'))
            .unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits >> col & 1 == 1 {
                    let (px, py) = (x + k as u32 * GLYPH + col, y + row as u32);
                    if px < img.width() && py < img.height() {
                        img.put_pixel(px, py, color);
                    }
                }
            }
        }
    }
}

/// Splits `text` into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Lays out captioned images on a white grid.
pub fn render_grid(tiles: &[(RgbImage, String)], cols: usize, min_tile: u32) -> RgbImage {
    let cols = cols.max(1).min(tiles.len().max(1));
    let tile = tiles
        .iter()
        .map(|(i, _)| i.width().max(i.height()))
        .max()
        .unwrap_or(1)
        .max(min_tile);
    let chars = (tile / GLYPH).max(1) as usize;
    let text_lines = tiles
        .iter()
        .map(|(_, t)| wrap(t, chars).len())
        .max()
        .unwrap_or(1) as u32;
    let cell_w = tile + PAD;
    let cell_h = tile + text_lines * (GLYPH + 2) + 2 * PAD;
    let rows = tiles.len().div_ceil(cols) as u32;
    let mut out = RgbImage::from_pixel(
        cols as u32 * cell_w + PAD,
        rows * cell_h + PAD,
        Rgb([255, 255, 255]),
    );
    for (k, (img, caption)) in tiles.iter().enumerate() {
        let (cx, cy) = (
            (k % cols) as u32 * cell_w + PAD,
            (k / cols) as u32 * cell_h + PAD,
        );
        let scale = (tile / img.width().max(img.height()).max(1)).max(1);
        for y in 0..img.height() * scale {
            for x in 0..img.width() * scale {
                if x < tile && y < tile {
                    out.put_pixel(cx + x, cy + y, *img.get_pixel(x / scale, y / scale));
                }
            }
        }
        for (l, line) in wrap(caption, chars).iter().enumerate() {
            let y = cy + tile + PAD + l as u32 * (GLYPH + 2);
            draw_text(&mut out, cx, y, line, Rgb([0, 0, 0]));
        }
    }
    out
}

/// The displayable images of a batch (augmentation applied, normalisation undone).
pub fn batch_images(batch: &CpuBatch, tfms: &Transforms) -> Vec<RgbImage> {
    let s = batch.size;
    let plane = (s * s) as usize;
    let pending = tfms.aug_on == AugOn::Device && tfms.aug.is_some();
    let pad = tfms.aug.as_ref().map(|a| a.pad).unwrap_or_default();
    (0..batch.len())
        .map(|k| {
            let mut px = batch.images[k * 3 * plane..(k + 1) * 3 * plane].to_vec();
            if pending {
                let raw = planar_to_rgb(&px, s);
                augment_cpu(&raw, &batch.params[k], s, s, pad, &mut px);
            } else {
                tfms.normalize.invert(&mut px, plane);
            }
            planar_to_rgb(&px, s)
        })
        .collect()
}

/// Planar `[3, s, s]` values in `[0, 1]` to an RGB image.
pub fn planar_to_rgb(px: &[f32], s: u32) -> RgbImage {
    let plane = (s * s) as usize;
    RgbImage::from_fn(s, s, |x, y| {
        let i = (y * s + x) as usize;
        let v = |c: usize| (px[c * plane + i].clamp(0.0, 1.0) * 255.0).round() as u8;
        Rgb([v(0), v(1), v(2)])
    })
}

/// Writes a grid of a batch's images with their tags beneath as a PNG at `path`
/// (atomically).
///
/// # Errors
/// [`Error::Encode`] / [`Error::Io`] naming `path`.
pub fn show_batch(
    batch: &CpuBatch,
    vocab: &Vocab,
    tfms: &Transforms,
    path: &Path,
    cfg: &ShowConfig,
) -> Result<()> {
    let n = batch.len().min(cfg.max_items);
    let images = batch_images(batch, tfms);
    let tiles: Vec<(RgbImage, String)> = images
        .into_iter()
        .take(n)
        .zip(&batch.labels)
        .map(|(img, labels)| (img, vocab.tags(labels)))
        .collect();
    let grid = render_grid(&tiles, cfg.cols, cfg.min_tile);
    let mut bytes = Vec::new();
    grid.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::Encode {
        path: path.to_path_buf(),
        source: e,
    })?;
    write_atomic(path, &bytes)
}

impl DataLoader {
    /// fastai's `dls.show_batch()`: the first batch of epoch 0, as a PNG grid with tags.
    ///
    /// # Errors
    /// A loading error, or [`Error::Encode`] / [`Error::Io`] naming `path`.
    pub fn show_batch(&self, path: &Path, cfg: &ShowConfig) -> Result<()> {
        let batch = self.epoch(0).next().transpose()?.unwrap_or(CpuBatch {
            indices: vec![],
            images: vec![],
            size: self.dataset().transforms().size,
            params: Vec::new(),
            targets: vec![],
            classes: self.dataset().vocab().len(),
            labels: vec![],
        });
        show_batch(
            &batch,
            self.dataset().vocab(),
            self.dataset().transforms(),
            path,
            cfg,
        )
    }
}
