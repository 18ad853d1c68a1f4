//! A deterministic generator of Planet-like satellite chips: the embedded default dataset of
//! fastburn's examples and tests (real Planet chips may not be redistributed).
//!
//! Each chip has exactly one weather tag (`clear`, `haze`, `partly_cloudy`, `cloudy`; cloudy
//! chips carry no land tag) and land tags drawn at roughly Planet's frequencies, each drawn
//! as a *shape* on a textured background rather than a colour: forest texture (`primary`),
//! large fields (`agriculture`), thin lines (`road`), a sinuous band or a lake (`water`),
//! clusters of small bright squares (`habitation`), small irregular plots (`cultivation`),
//! bare patches (`bare_ground`), and six rare tags. Global colour jitter, haze, clouds,
//! noise and JPEG compression keep it from being separable by mean colour.

use std::path::{Path, PathBuf};

use burn::config::Config;
use image::RgbImage;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::item_seed;
use crate::error::{Error, Result};

/// The 17 Planet tags, sorted.
pub const PLANET_TAGS: [&str; 17] = [
    "agriculture",
    "artisinal_mine",
    "bare_ground",
    "blooming",
    "blow_down",
    "clear",
    "cloudy",
    "conventional_mine",
    "cultivation",
    "habitation",
    "haze",
    "partly_cloudy",
    "primary",
    "road",
    "selective_logging",
    "slash_burn",
    "water",
];

/// What to generate.
#[derive(Config, Debug, PartialEq)]
pub struct SynthConfig {
    /// Output folder: `labels.csv` and `train-jpg/` (and `test-jpg/` + `test_labels.csv`
    /// when `n_test > 0`).
    pub out: PathBuf,
    /// Number of labelled chips.
    #[config(default = 1000)]
    pub n: usize,
    /// Number of held-out chips (written to `test-jpg/`, their tags to `test_labels.csv`).
    #[config(default = 0)]
    pub n_test: usize,
    /// Side of each chip in pixels (Planet: 256).
    #[config(default = 128)]
    pub size: u32,
    /// Seed: the same seed gives byte-identical files.
    #[config(default = 42)]
    pub seed: u64,
    /// JPEG quality.
    #[config(default = 90)]
    pub quality: u8,
    /// Worker threads.
    #[config(default = 2)]
    pub workers: usize,
}

/// What [`SynthConfig::generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    /// The labels file.
    pub labels_csv: PathBuf,
    /// The training image folder.
    pub images: PathBuf,
    /// The held-out image folder, when `n_test > 0`.
    pub test_images: Option<PathBuf>,
    /// The held-out labels, when `n_test > 0`.
    pub test_labels_csv: Option<PathBuf>,
    /// How many chips carry each tag (training chips), in [`PLANET_TAGS`] order.
    pub tag_counts: Vec<usize>,
}

impl SynthConfig {
    /// Writes the dataset. Each image and the CSVs are written atomically (temporary file +
    /// rename); `labels.csv` comes last, so a dataset with a `labels.csv` is complete.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Encode`] naming the file; [`Error::InvalidConfig`] for a size
    /// under 16 px.
    pub fn generate(&self) -> Result<SynthSummary> {
        if self.size < 16 {
            return Err(Error::InvalidConfig {
                key: "size",
                value: self.size.to_string(),
                expected: "at least 16 pixels",
            });
        }
        let images = self.out.join("train-jpg");
        std::fs::create_dir_all(&images).map_err(|e| Error::io(&images, e))?;
        let train_tags = self.write_split(&images, "train", 0, self.n)?;
        let (mut test_images, mut test_labels_csv) = (None, None);
        if self.n_test > 0 {
            let dir = self.out.join("test-jpg");
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let tags = self.write_split(&dir, "test", self.n, self.n_test)?;
            let csv = self.out.join("test_labels.csv");
            write_labels(&csv, "test", &tags)?;
            test_images = Some(dir);
            test_labels_csv = Some(csv);
        }
        let labels_csv = self.out.join("labels.csv");
        write_labels(&labels_csv, "train", &train_tags)?;
        let mut tag_counts = vec![0; PLANET_TAGS.len()];
        for tags in &train_tags {
            for t in tags {
                tag_counts[*t] += 1;
            }
        }
        Ok(SynthSummary {
            labels_csv,
            images,
            test_images,
            test_labels_csv,
            tag_counts,
        })
    }

    fn write_split(
        &self,
        dir: &Path,
        prefix: &str,
        offset: usize,
        n: usize,
    ) -> Result<Vec<Vec<usize>>> {
        let workers = self.workers.max(1);
        type Chips = Vec<(usize, Vec<usize>)>;
        let results: Vec<Result<Chips>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    s.spawn(move || {
                        let mut out = Vec::new();
                        for i in (w..n).step_by(workers) {
                            let (img, tags) = chip(self.size, item_seed(self.seed, 0, offset + i));
                            let path = dir.join(format!("{prefix}_{i}.jpg"));
                            write_jpeg_atomic(&img, &path, self.quality)?;
                            out.push((i, tags));
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("synth worker panicked"))
                .collect()
        });
        let mut all = vec![Vec::new(); n];
        for r in results {
            for (i, tags) in r? {
                all[i] = tags;
            }
        }
        Ok(all)
    }
}

/// Encodes `img` as JPEG at `path` atomically (temporary file in the same folder, then
/// rename).
///
/// # Errors
/// [`Error::Encode`] or [`Error::Io`] naming `path`.
pub fn write_jpeg_atomic(img: &RgbImage, path: &Path, quality: u8) -> Result<()> {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
        .encode_image(img)
        .map_err(|e| Error::Encode {
            path: path.to_path_buf(),
            source: e,
        })?;
    write_atomic(path, &buf)
}

/// [`fastburn_fsio::write_atomic`] with the error as this crate's: writes `bytes` to `path`
/// atomically and durably (a temporary file unique to the call, flushed, renamed, the folder
/// flushed).
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    fastburn_fsio::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}

fn write_labels(path: &Path, prefix: &str, tags: &[Vec<usize>]) -> Result<()> {
    let mut s = String::from("image_name,tags\n");
    for (i, t) in tags.iter().enumerate() {
        let names: Vec<&str> = t.iter().map(|&k| PLANET_TAGS[k]).collect();
        s.push_str(&format!("{prefix}_{i},{}\n", names.join(" ")));
    }
    write_atomic(path, s.as_bytes())
}

fn tag(name: &str) -> usize {
    PLANET_TAGS
        .iter()
        .position(|t| *t == name)
        .expect("a Planet tag")
}

/// A float RGB canvas.
struct Canvas {
    s: usize,
    px: Vec<[f32; 3]>,
}

impl Canvas {
    fn blend(&mut self, x: usize, y: usize, c: [f32; 3], a: f32) {
        let p = &mut self.px[y * self.s + x];
        for k in 0..3 {
            p[k] = p[k] * (1.0 - a) + c[k] * a;
        }
    }
}

/// Smooth value noise in `[0, 1]` with `octaves` octaves, the coarsest with `cells` cells
/// a side.
struct Noise {
    grids: Vec<(usize, Vec<f32>)>,
}

impl Noise {
    fn new(rng: &mut ChaCha8Rng, cells: usize, octaves: usize) -> Self {
        let grids = (0..octaves)
            .map(|o| {
                let c = cells << o;
                (
                    c,
                    (0..(c + 1) * (c + 1))
                        .map(|_| rng.random::<f32>())
                        .collect(),
                )
            })
            .collect();
        Noise { grids }
    }

    /// `u, v` in `[0, 1]`.
    fn at(&self, u: f32, v: f32) -> f32 {
        let (mut total, mut amp, mut norm) = (0.0, 1.0, 0.0);
        for (c, g) in &self.grids {
            let (x, y) = (u * *c as f32, v * *c as f32);
            let (x0, y0) = ((x as usize).min(c - 1), (y as usize).min(c - 1));
            let (fx, fy) = (x - x0 as f32, y - y0 as f32);
            let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
            let idx = |i: usize, j: usize| g[j * (c + 1) + i];
            let top = idx(x0, y0) * (1.0 - sx) + idx(x0 + 1, y0) * sx;
            let bot = idx(x0, y0 + 1) * (1.0 - sx) + idx(x0 + 1, y0 + 1) * sx;
            total += amp * (top * (1.0 - sy) + bot * sy);
            norm += amp;
            amp *= 0.5;
        }
        total / norm
    }
}

fn jitter(rng: &mut ChaCha8Rng, c: [f32; 3], amount: f32) -> [f32; 3] {
    let mut out = c;
    for v in &mut out {
        *v = (*v + rng.random_range(-amount..=amount)).clamp(0.0, 1.0);
    }
    out
}

/// Draws a thick polyline following a smooth random walk across the chip.
fn draw_path(cv: &mut Canvas, rng: &mut ChaCha8Rng, color: [f32; 3], width: f32, wiggle: f32) {
    let s = cv.s as f32;
    // Start on an edge, head inwards.
    let side = rng.random_range(0..4u8);
    let t = rng.random_range(0.1..0.9) * s;
    let (mut x, mut y, mut heading) = match side {
        0 => (t, 0.0, std::f32::consts::FRAC_PI_2),
        1 => (s - 1.0, t, std::f32::consts::PI),
        2 => (t, s - 1.0, -std::f32::consts::FRAC_PI_2),
        _ => (0.0, t, 0.0),
    };
    heading += rng.random_range(-0.5..0.5);
    let step = 0.7;
    let mut turn = 0.0f32;
    for _ in 0..(4.0 * s / step) as usize {
        stamp_disc(cv, x, y, width / 2.0, color, 0.9);
        turn = 0.9 * turn + rng.random_range(-wiggle..=wiggle);
        heading += turn * 0.05;
        x += heading.cos() * step;
        y += heading.sin() * step;
        if x < -width || y < -width || x > s + width || y > s + width {
            break;
        }
    }
}

fn stamp_disc(cv: &mut Canvas, cx: f32, cy: f32, r: f32, color: [f32; 3], alpha: f32) {
    let s = cv.s as i64;
    let r2 = r * r;
    let (x0, x1) = ((cx - r).floor() as i64, (cx + r).ceil() as i64);
    let (y0, y1) = ((cy - r).floor() as i64, (cy + r).ceil() as i64);
    for y in y0.max(0)..=y1.min(s - 1) {
        for x in x0.max(0)..=x1.min(s - 1) {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let d2 = dx * dx + dy * dy;
            if d2 <= r2 {
                let edge = ((r2 - d2) / r2.max(1e-3)).min(1.0);
                cv.blend(x as usize, y as usize, color, alpha * edge.sqrt());
            }
        }
    }
}

/// A blob: a noisy-edged disc.
fn draw_blob(cv: &mut Canvas, rng: &mut ChaCha8Rng, r: f32, color: [f32; 3], tex: f32) {
    let s = cv.s as f32;
    let (cx, cy) = (rng.random_range(0.0..s), rng.random_range(0.0..s));
    let noise = Noise::new(rng, 3, 3);
    let phase = rng.random_range(0.0..1.0f32);
    let (x0, x1) = (
        (cx - 1.6 * r).max(0.0) as usize,
        (cx + 1.6 * r).min(s - 1.0) as usize,
    );
    let (y0, y1) = (
        (cy - 1.6 * r).max(0.0) as usize,
        (cy + 1.6 * r).min(s - 1.0) as usize,
    );
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let ang = (dy.atan2(dx) / std::f32::consts::TAU + 0.5 + phase) % 1.0;
            let rr = r * (0.7 + 0.6 * noise.at(ang, 0.5));
            let d = (dx * dx + dy * dy).sqrt();
            if d < rr {
                let t = noise.at(x as f32 / s, y as f32 / s);
                let c = [
                    color[0] * (1.0 - tex + 2.0 * tex * t),
                    color[1] * (1.0 - tex + 2.0 * tex * t),
                    color[2] * (1.0 - tex + 2.0 * tex * t),
                ];
                let a = ((rr - d) / 2.0).clamp(0.0, 1.0);
                cv.blend(x, y, c, a);
            }
        }
    }
}

/// A field: a rotated rectangle with a row texture.
fn draw_field(cv: &mut Canvas, rng: &mut ChaCha8Rng, min: f32, max: f32, color: [f32; 3]) {
    let s = cv.s as f32;
    let (cx, cy) = (rng.random_range(0.0..s), rng.random_range(0.0..s));
    let (hw, hh) = (
        rng.random_range(min..max) * s / 2.0,
        rng.random_range(min..max) * s / 2.0,
    );
    let ang: f32 = rng.random_range(0.0..std::f32::consts::PI);
    let (sn, cs) = ang.sin_cos();
    let rows = rng.random_range(2.0..5.0f32);
    let reach = (hw * hw + hh * hh).sqrt();
    let (x0, x1) = (
        (cx - reach).max(0.0) as usize,
        (cx + reach).min(s - 1.0) as usize,
    );
    let (y0, y1) = (
        (cy - reach).max(0.0) as usize,
        (cy + reach).min(s - 1.0) as usize,
    );
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let (u, v) = (dx * cs + dy * sn, -dx * sn + dy * cs);
            if u.abs() <= hw && v.abs() <= hh {
                let stripe = 0.92 + 0.08 * ((v / rows).sin());
                let c = [color[0] * stripe, color[1] * stripe, color[2] * stripe];
                cv.blend(x, y, c, 0.95);
            }
        }
    }
}

/// Generates one chip and its sorted tag indices (into [`PLANET_TAGS`]).
///
/// ```
/// let (img, tags) = fastburn_data::synth::chip(64, 7);
/// assert_eq!(img.dimensions(), (64, 64));
/// let weather = ["clear", "cloudy", "haze", "partly_cloudy"];
/// let n_weather = tags.iter().filter(|&&t| weather.contains(&fastburn_data::synth::PLANET_TAGS[t])).count();
/// assert_eq!(n_weather, 1);
/// ```
pub fn chip(size: u32, seed: u64) -> (RgbImage, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let s = size as usize;
    let sf = size as f32;
    let mut tags = Vec::new();

    // Weather: exactly one (Planet: clear 70 %, partly_cloudy 18 %, haze 7 %, cloudy 5 %).
    let w: f32 = rng.random();
    let weather = if w < 0.70 {
        "clear"
    } else if w < 0.88 {
        "partly_cloudy"
    } else if w < 0.95 {
        "haze"
    } else {
        "cloudy"
    };
    tags.push(tag(weather));
    let cloudy = weather == "cloudy";

    // Land tags (none under full cloud), with Planet-like co-occurrence.
    let p = |rng: &mut ChaCha8Rng, prob: f32| rng.random::<f32>() < prob;
    let primary = !cloudy && p(&mut rng, 0.975);
    let agriculture = !cloudy && p(&mut rng, 0.32);
    let road = !cloudy && p(&mut rng, if agriculture { 0.45 } else { 0.09 });
    let habitation = !cloudy && p(&mut rng, if road { 0.33 } else { 0.02 });
    let cultivation = !cloudy && p(&mut rng, if agriculture { 0.27 } else { 0.05 });
    let water = !cloudy && p(&mut rng, 0.19);
    let bare_ground = !cloudy && p(&mut rng, 0.022);
    let selective_logging = primary && p(&mut rng, 0.009);
    let artisinal_mine = !cloudy && p(&mut rng, 0.009);
    let blooming = primary && p(&mut rng, 0.009);
    let slash_burn = !cloudy && p(&mut rng, 0.006);
    let blow_down = primary && p(&mut rng, 0.003);
    let conventional_mine = !cloudy && p(&mut rng, 0.003);
    for (on, name) in [
        (primary, "primary"),
        (agriculture, "agriculture"),
        (road, "road"),
        (habitation, "habitation"),
        (cultivation, "cultivation"),
        (water, "water"),
        (bare_ground, "bare_ground"),
        (selective_logging, "selective_logging"),
        (artisinal_mine, "artisinal_mine"),
        (blooming, "blooming"),
        (slash_burn, "slash_burn"),
        (blow_down, "blow_down"),
        (conventional_mine, "conventional_mine"),
    ] {
        if on {
            tags.push(tag(name));
        }
    }
    tags.sort_unstable();

    // Background: forest texture (primary) or open savanna; both vary in tone.
    let tone = rng.random_range(-0.06..0.06f32);
    let forest = jitter(&mut rng, [0.16 + tone, 0.30 + tone, 0.14 + tone], 0.04);
    let savanna = jitter(&mut rng, [0.42 + tone, 0.40 + tone, 0.26 + tone], 0.05);
    let fine = Noise::new(&mut rng, 16, 2);
    let coarse = Noise::new(&mut rng, 3, 3);
    let mut cv = Canvas {
        s,
        px: vec![[0.0; 3]; s * s],
    };
    for y in 0..s {
        for x in 0..s {
            let (u, v) = (x as f32 / sf, y as f32 / sf);
            let px = if primary {
                // Canopy: high-frequency bumps on a slowly varying base.
                let k = 0.75 + 0.5 * fine.at(u, v) + 0.2 * (coarse.at(u, v) - 0.5);
                [forest[0] * k, forest[1] * k, forest[2] * k]
            } else {
                let k = 0.9 + 0.2 * coarse.at(u, v);
                [savanna[0] * k, savanna[1] * k, savanna[2] * k]
            };
            cv.px[y * s + x] = px;
        }
    }

    if agriculture {
        let fields = rng.random_range(2..6);
        for _ in 0..fields {
            let c = if rng.random::<bool>() {
                [0.55, 0.62, 0.33]
            } else {
                [0.62, 0.52, 0.38]
            };
            let c = jitter(&mut rng, c, 0.06);
            draw_field(&mut cv, &mut rng, 0.25, 0.55, c);
        }
    }
    if cultivation {
        for _ in 0..rng.random_range(3..7) {
            let c = jitter(&mut rng, [0.45, 0.47, 0.30], 0.06);
            draw_field(&mut cv, &mut rng, 0.05, 0.12, c);
        }
    }
    if bare_ground {
        for _ in 0..rng.random_range(1..3) {
            let c = jitter(&mut rng, [0.66, 0.55, 0.42], 0.04);
            draw_blob(&mut cv, &mut rng, sf * 0.12, c, 0.1);
        }
    }
    if water {
        let c = jitter(&mut rng, [0.10, 0.16, 0.22], 0.03);
        if rng.random::<f32>() < 0.6 {
            let width = rng.random_range(0.03..0.07) * sf;
            draw_path(&mut cv, &mut rng, c, width.max(2.5), 1.2);
        } else {
            let r = sf * rng.random_range(0.08..0.16);
            draw_blob(&mut cv, &mut rng, r, c, 0.05);
        }
    }
    if road {
        let c = jitter(&mut rng, [0.68, 0.62, 0.55], 0.05);
        for _ in 0..rng.random_range(1..3) {
            draw_path(&mut cv, &mut rng, c, (sf / 80.0).max(1.3), 0.15);
        }
    }
    if habitation {
        let (cx, cy) = (
            rng.random_range(0.2..0.8) * sf,
            rng.random_range(0.2..0.8) * sf,
        );
        for _ in 0..rng.random_range(8..20) {
            let (x, y) = (
                cx + rng.random_range(-0.15..0.15) * sf,
                cy + rng.random_range(-0.15..0.15) * sf,
            );
            let half = (sf / 90.0).max(1.0);
            let c = jitter(&mut rng, [0.85, 0.82, 0.78], 0.08);
            for yy in (y - half) as i64..=(y + half) as i64 {
                for xx in (x - half) as i64..=(x + half) as i64 {
                    if xx >= 0 && yy >= 0 && (xx as usize) < s && (yy as usize) < s {
                        cv.blend(xx as usize, yy as usize, c, 0.9);
                    }
                }
            }
        }
    }
    if selective_logging {
        let c = jitter(&mut rng, [0.40, 0.33, 0.24], 0.03);
        for _ in 0..3 {
            draw_path(&mut cv, &mut rng, c, 1.0, 0.6);
        }
    }
    if artisinal_mine {
        let c = jitter(&mut rng, [0.80, 0.62, 0.35], 0.04);
        draw_blob(&mut cv, &mut rng, sf * 0.06, c, 0.3);
        let w = [0.25, 0.35, 0.30];
        draw_blob(&mut cv, &mut rng, sf * 0.03, w, 0.1);
    }
    if blooming {
        for _ in 0..rng.random_range(10..25) {
            let (x, y) = (rng.random_range(0.0..sf), rng.random_range(0.0..sf));
            stamp_disc(&mut cv, x, y, (sf / 60.0).max(1.2), [0.62, 0.60, 0.30], 0.8);
        }
    }
    if slash_burn {
        let c = jitter(&mut rng, [0.08, 0.07, 0.06], 0.02);
        draw_blob(&mut cv, &mut rng, sf * 0.07, c, 0.3);
    }
    if blow_down {
        let c = [0.40, 0.52, 0.28];
        for _ in 0..rng.random_range(4..8) {
            draw_path(&mut cv, &mut rng, c, (sf / 64.0).max(1.5), 0.05);
        }
    }
    if conventional_mine {
        let c = jitter(&mut rng, [0.58, 0.58, 0.60], 0.03);
        draw_blob(&mut cv, &mut rng, sf * 0.18, c, 0.25);
    }

    // Atmosphere.
    match weather {
        "haze" => {
            let a = rng.random_range(0.35..0.6f32);
            let c = jitter(&mut rng, [0.72, 0.72, 0.74], 0.05);
            for p in &mut cv.px {
                for k in 0..3 {
                    p[k] = p[k] * (1.0 - a) + c[k] * a;
                }
            }
        }
        "partly_cloudy" => {
            for _ in 0..rng.random_range(2..6) {
                let c = jitter(&mut rng, [0.92, 0.92, 0.94], 0.04);
                let r = sf * rng.random_range(0.08..0.22);
                draw_blob(&mut cv, &mut rng, r, c, 0.08);
            }
        }
        "cloudy" => {
            let n = Noise::new(&mut rng, 4, 3);
            let base = rng.random_range(0.75..0.95f32);
            for y in 0..s {
                for x in 0..s {
                    let v = base * (0.85 + 0.3 * n.at(x as f32 / sf, y as f32 / sf));
                    cv.blend(x, y, [v, v, v * 1.02], 0.92);
                }
            }
        }
        _ => {}
    }

    // Sensor: per-chip gain/offset and pixel noise.
    let gain = rng.random_range(0.85..1.15f32);
    let offset = rng.random_range(-0.04..0.04f32);
    let mut img = RgbImage::new(size, size);
    for (i, p) in cv.px.iter().enumerate() {
        let mut out = [0u8; 3];
        for k in 0..3 {
            let noise = rng.random_range(-0.02..0.02f32);
            out[k] = ((p[k] * gain + offset + noise).clamp(0.0, 1.0) * 255.0).round() as u8;
        }
        img.put_pixel((i % s) as u32, (i / s) as u32, image::Rgb(out));
    }
    (img, tags)
}
