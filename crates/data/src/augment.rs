//! Data augmentation with fastai's semantics: dihedral flips/rotations, small rotations,
//! zoom, perspective warp, `RandomResizedCrop` and lighting, all seeded.
//!
//! A policy ([`AugPolicy`]) draws per-item parameters ([`AugParams`]): one 3×3 matrix that
//! maps *output* coordinates to *input* coordinates (every affine and warp step composed, so
//! an image is resampled exactly once, with bilinear interpolation and reflection padding),
//! plus lighting. The same parameters run on the CPU ([`augment_cpu`]) or, batched, on the
//! device ([`crate::augment_batch`]); the two paths agree to float rounding.
//!
//! Coordinates are normalised as PyTorch's `grid_sample` with `align_corners=False`: the
//! image spans `[-1, 1]` in x (left → right) and y (top → bottom), and pixel `j` of `W` has
//! its centre at `(2j + 1) / W − 1`.

use burn::config::Config;
use image::RgbImage;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A 3×3 matrix acting on homogeneous normalised coordinates `(x, y, 1)`.
pub type Mat3 = [[f64; 3]; 3];

/// The identity matrix.
pub const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

/// Matrix product `a · b` (apply `b` first, then `a`).
pub fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    r
}

/// Maps a point through a homography.
#[inline]
pub fn apply_mat(m: &Mat3, x: f64, y: f64) -> (f64, f64) {
    let w = m[2][0] * x + m[2][1] * y + m[2][2];
    (
        (m[0][0] * x + m[0][1] * y + m[0][2]) / w,
        (m[1][0] * x + m[1][1] * y + m[1][2]) / w,
    )
}

/// One of the 8 symmetries of the square: `rotations` quarter turns after an optional
/// horizontal flip. Index `k` in `0..8`: `flip = k >= 4`, `rotations = k % 4`.
///
/// ```
/// use fastburn_data::Dihedral;
/// let img = image::RgbImage::from_fn(3, 3, |x, y| image::Rgb([(x + 3 * y) as u8, 0, 0]));
/// // A quarter turn then its inverse (three more quarter turns) is the identity.
/// let back = Dihedral::new(3).apply(&Dihedral::new(1).apply(&img));
/// assert_eq!(back, img);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dihedral(u8);

impl Dihedral {
    /// All eight elements, identity first.
    pub const ALL: [Dihedral; 8] = [
        Dihedral(0),
        Dihedral(1),
        Dihedral(2),
        Dihedral(3),
        Dihedral(4),
        Dihedral(5),
        Dihedral(6),
        Dihedral(7),
    ];

    /// The element with index `k`.
    ///
    /// # Panics
    /// When `k >= 8`.
    pub fn new(k: u8) -> Self {
        assert!(k < 8, "a dihedral index is in 0..8, got {k}");
        Dihedral(k)
    }

    /// The index in `0..8`.
    pub fn index(self) -> u8 {
        self.0
    }

    /// The matrix mapping output coordinates to input coordinates.
    pub fn matrix(self) -> Mat3 {
        let flip: Mat3 = if self.0 >= 4 {
            [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
        } else {
            IDENTITY
        };
        // A quarter turn: (x, y) -> (-y, x).
        let quarter: Mat3 = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        let mut m = flip;
        for _ in 0..self.0 % 4 {
            m = mat_mul(&quarter, &m);
        }
        m
    }

    /// Applies the symmetry as an exact permutation of pixels (a quarter turn swaps width and
    /// height).
    pub fn apply(self, img: &RgbImage) -> RgbImage {
        let (w, h) = img.dimensions();
        let (ow, oh) = if self.0 % 2 == 1 { (h, w) } else { (w, h) };
        let m = self.matrix();
        let mut out = RgbImage::new(ow, oh);
        for i in 0..oh {
            for j in 0..ow {
                let (sj, si) = signed_perm_index(&m, j, i, (ow, oh), (w, h));
                out.put_pixel(j, i, *img.get_pixel(sj, si));
            }
        }
        out
    }
}

/// For a signed permutation matrix `m`, the source pixel of output pixel `(j, i)`, computed
/// in integers: centre offsets `u = 2j + 1 − W` are mapped exactly.
fn signed_perm_index(m: &Mat3, j: u32, i: u32, out: (u32, u32), src: (u32, u32)) -> (u32, u32) {
    let u = 2 * i64::from(j) + 1 - i64::from(out.0);
    let v = 2 * i64::from(i) + 1 - i64::from(out.1);
    let su = m[0][0] as i64 * u + m[0][1] as i64 * v;
    let sv = m[1][0] as i64 * u + m[1][1] as i64 * v;
    (
        ((su + i64::from(src.0) - 1) / 2) as u32,
        ((sv + i64::from(src.1) - 1) / 2) as u32,
    )
}

fn is_signed_permutation(m: &Mat3) -> bool {
    let ok = |v: f64| v == 0.0 || v == 1.0 || v == -1.0;
    m[2] == [0.0, 0.0, 1.0]
        && m[0][2] == 0.0
        && m[1][2] == 0.0
        && (0..2).all(|i| (0..2).all(|j| ok(m[i][j])))
        && (m[0][0] != 0.0) != (m[0][1] != 0.0)
        && (m[1][0] != 0.0) != (m[1][1] != 0.0)
}

/// What a sample outside the image reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum PadMode {
    /// Mirror the image at its borders (fastai's default).
    #[default]
    Reflection,
    /// Repeat the edge pixels.
    Border,
    /// Black.
    Zeros,
}

/// Which flips a policy draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FlipMode {
    /// No flip.
    None,
    /// Horizontal flip (fastai's `Flip`).
    Horizontal,
    /// One of the 8 dihedral symmetries, uniformly (fastai's `Dihedral`; satellite and
    /// microscope images have no "up").
    Dihedral,
}

/// How lighting changes pixel values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LightingMode {
    /// fastai v2: in logit space, `y = σ(c · (logit(x) + logit(b)))` with brightness `b`
    /// drawn in `0.5·(1 ± max)` and contrast `c` log-uniform in `[1 − max, 1/(1 − max)]`.
    Logit,
    /// fastai 0.7 (`RandomLighting`): `y = clip((x − μ)·c + μ + b, 0, 1)` with `μ` the image
    /// mean, `b` uniform in `±max` and `c = 1 + u` (or `1/(1 − u)` for `u < 0`), `u` uniform in
    /// `±max`. The mean moves by `b` and the spread scales by `c`.
    Linear,
}

/// Lighting parameters of one image (neutral: `Logit` with `b = 0.5, c = 1`; `Linear` with
/// `b = 0, c = 1`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lighting {
    /// The formula.
    pub mode: LightingMode,
    /// Brightness `b`.
    pub brightness: f64,
    /// Contrast `c`.
    pub contrast: f64,
}

impl Lighting {
    /// True when the parameters change nothing.
    pub fn is_identity(&self) -> bool {
        let b0 = match self.mode {
            LightingMode::Logit => 0.5,
            LightingMode::Linear => 0.0,
        };
        self.brightness == b0 && self.contrast == 1.0
    }

    /// Applies the lighting to values in `[0, 1]` (one image, all channels).
    pub fn apply(&self, values: &mut [f32]) {
        if self.is_identity() || values.is_empty() {
            return;
        }
        match self.mode {
            LightingMode::Logit => {
                let lb = logit(self.brightness as f32);
                let c = self.contrast as f32;
                for v in values.iter_mut() {
                    *v = sigmoid(c * (logit(*v) + lb));
                }
            }
            LightingMode::Linear => {
                let mu = (values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64)
                    as f32;
                let (b, c) = (self.brightness as f32, self.contrast as f32);
                for v in values.iter_mut() {
                    *v = ((*v - mu) * c + mu + b).clamp(0.0, 1.0);
                }
            }
        }
    }
}

/// fastai's `logit`, with the input clamped to `[1e-7, 1 − 1e-7]`.
#[inline]
pub fn logit(x: f32) -> f32 {
    let x = x.clamp(1e-7, 1.0 - 1e-7);
    -(1.0 / x - 1.0).ln()
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// fastai's `RandomResizedCrop` (torchvision's parameters): a box of `scale` of the
/// *decoded* image's area with aspect `ratio`, resized to the output size. It runs when an
/// item is decoded ([`ImageDataset::get`](crate::ImageDataset::get)), before any other
/// augmentation, so an 8 %-area crop of a 256 px chip keeps 72 px of detail whatever the
/// training size; validation resizes with fastai's `val_xtra`
/// ([`Transforms::val_xtra`](crate::Transforms)).
#[derive(Config, Debug, PartialEq)]
pub struct RandomResizedCrop {
    /// Smallest area fraction.
    #[config(default = 0.08)]
    pub min_scale: f64,
    /// Largest area fraction.
    #[config(default = 1.0)]
    pub max_scale: f64,
    /// Smallest aspect ratio (width / height).
    #[config(default = 0.75)]
    pub min_ratio: f64,
    /// Largest aspect ratio.
    #[config(default = "4.0 / 3.0")]
    pub max_ratio: f64,
}

/// Per-image augmentation parameters, drawn by [`AugPolicy::sample`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AugParams {
    /// Output → input coordinate map (all affine and warp steps composed).
    pub matrix: Mat3,
    /// Lighting, if any.
    pub lighting: Option<Lighting>,
}

impl Default for AugParams {
    fn default() -> Self {
        Self::identity()
    }
}

impl AugParams {
    /// No change at all.
    pub fn identity() -> Self {
        AugParams {
            matrix: IDENTITY,
            lighting: None,
        }
    }

    /// Only a dihedral symmetry (exact on both paths, used by TTA).
    pub fn dihedral(d: Dihedral) -> Self {
        AugParams {
            matrix: d.matrix(),
            lighting: None,
        }
    }
}

/// An augmentation policy: what to draw, how often, and how much. Defaults are fastai v2's
/// `aug_transforms()` (horizontal flip p=0.5, rotate ±10°, zoom 1–1.1, warp 0.2, lighting 0.2,
/// `p_affine = p_lighting = 0.75`, reflection padding); [`AugPolicy::top_down`] is the Planet
/// lesson's preset.
///
/// ```
/// use fastburn_data::AugPolicy;
/// use rand::SeedableRng;
/// let policy = AugPolicy::top_down();
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let a = policy.sample(&mut rng);
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// assert_eq!(a, policy.sample(&mut rng)); // seeded: same draw
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct AugPolicy {
    /// Which flips to draw.
    #[config(default = "FlipMode::Horizontal")]
    pub flip: FlipMode,
    /// Probability of a flip (for `Dihedral`: of drawing one of the 8 elements uniformly).
    #[config(default = 0.5)]
    pub p_flip: f64,
    /// Largest rotation in degrees (uniform in `±max_rotate`).
    #[config(default = 10.0)]
    pub max_rotate: f64,
    /// Smallest zoom factor (`1` = none).
    #[config(default = 1.0)]
    pub min_zoom: f64,
    /// Largest zoom factor.
    #[config(default = 1.1)]
    pub max_zoom: f64,
    /// Largest perspective-warp magnitude.
    #[config(default = 0.2)]
    pub max_warp: f64,
    /// Probability of each of rotate, zoom and warp.
    #[config(default = 0.75)]
    pub p_affine: f64,
    /// Lighting strength (see [`LightingMode`]).
    #[config(default = 0.2)]
    pub max_lighting: f64,
    /// Lighting formula.
    #[config(default = "LightingMode::Logit")]
    pub lighting: LightingMode,
    /// Probability of each of brightness and contrast.
    #[config(default = 0.75)]
    pub p_lighting: f64,
    /// Padding for samples outside the image.
    #[config(default = "PadMode::Reflection")]
    pub pad: PadMode,
    /// Draw a `RandomResizedCrop` too.
    #[config(default = "None")]
    pub random_resized_crop: Option<RandomResizedCrop>,
}

/// `Ok` when `lo ≤ v ≤ hi` (and `v` is a number), else the typed error naming `key`.
fn in_range(key: &'static str, v: f64, lo: f64, hi: f64, expected: &'static str) -> Result<()> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            key,
            value: v.to_string(),
            expected,
        })
    }
}

impl RandomResizedCrop {
    /// Checks the ranges: `0 < min_scale ≤ max_scale ≤ 1`, `0 < min_ratio ≤ max_ratio`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        in_range("min_scale", self.min_scale, 1e-6, 1.0, "in (0, 1]")?;
        in_range(
            "max_scale",
            self.max_scale,
            self.min_scale,
            1.0,
            "in [min_scale, 1]",
        )?;
        in_range("min_ratio", self.min_ratio, 1e-3, 1e3, "in (0, 1000]")?;
        in_range(
            "max_ratio",
            self.max_ratio,
            self.min_ratio,
            1e3,
            "in [min_ratio, 1000]",
        )
    }
}

impl AugPolicy {
    /// Checks every field's range (probabilities in [0, 1], `min_zoom ≤ max_zoom`, …), so a
    /// bad policy is refused where it is given rather than drawing nonsense or panicking
    /// in a worker.
    ///
    /// ```
    /// use fastburn_data::{AugPolicy, RandomResizedCrop};
    /// assert!(AugPolicy::top_down().validate().is_ok());
    /// let bad = AugPolicy::fastai().with_random_resized_crop(Some(
    ///     RandomResizedCrop::new().with_min_scale(0.9).with_max_scale(0.5),
    /// ));
    /// assert!(bad.validate().unwrap_err().to_string().contains("max_scale"));
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        in_range("p_flip", self.p_flip, 0.0, 1.0, "a probability in [0, 1]")?;
        in_range(
            "max_rotate",
            self.max_rotate,
            0.0,
            180.0,
            "degrees in [0, 180]",
        )?;
        in_range("min_zoom", self.min_zoom, 0.01, 100.0, "in [0.01, 100]")?;
        in_range(
            "max_zoom",
            self.max_zoom,
            self.min_zoom,
            100.0,
            "in [min_zoom, 100]",
        )?;
        // A strength below 1: 1 would collapse the image.
        in_range(
            "max_warp",
            self.max_warp,
            0.0,
            1.0 - f64::EPSILON,
            "in [0, 1)",
        )?;
        in_range(
            "p_affine",
            self.p_affine,
            0.0,
            1.0,
            "a probability in [0, 1]",
        )?;
        // A strength below 1: 1 would collapse the image.
        in_range(
            "max_lighting",
            self.max_lighting,
            0.0,
            1.0 - f64::EPSILON,
            "in [0, 1)",
        )?;
        in_range(
            "p_lighting",
            self.p_lighting,
            0.0,
            1.0,
            "a probability in [0, 1]",
        )?;
        match &self.random_resized_crop {
            Some(rrc) => rrc.validate(),
            None => Ok(()),
        }
    }

    /// fastai v2's `aug_transforms()` defaults.
    pub fn fastai() -> Self {
        AugPolicy::new()
    }

    /// The Planet lesson's "top-down" preset (fastai 0.7 `transforms_top_down`, `max_zoom =
    /// 1.05`): any dihedral symmetry, rotation ±10° (p 0.75), zoom up to 1.05, linear lighting
    /// ±0.05, no warp, reflection padding.
    pub fn top_down() -> Self {
        AugPolicy::new()
            .with_flip(FlipMode::Dihedral)
            .with_p_flip(1.0)
            .with_max_rotate(10.0)
            .with_min_zoom(1.0)
            .with_max_zoom(1.05)
            .with_max_warp(0.0)
            .with_p_affine(0.75)
            .with_max_lighting(0.05)
            .with_lighting(LightingMode::Linear)
            .with_p_lighting(1.0)
    }

    /// A policy that draws nothing (validation).
    pub fn none() -> Self {
        AugPolicy::new()
            .with_flip(FlipMode::None)
            .with_max_rotate(0.0)
            .with_max_zoom(1.0)
            .with_max_warp(0.0)
            .with_max_lighting(0.0)
            .with_p_affine(0.0)
            .with_p_lighting(0.0)
    }

    /// Draws the parameters of one image.
    pub fn sample<R: rand::Rng>(&self, rng: &mut R) -> AugParams {
        let mut m = IDENTITY;
        // The random resized crop is not a matrix here: it crops the decoded image
        // (`RandomResizedCrop::sample_box`).
        if self.flip != FlipMode::None && rng.random::<f64>() < self.p_flip {
            let d = match self.flip {
                FlipMode::Horizontal => Dihedral(4),
                _ => Dihedral(rng.random_range(0..8u8)),
            };
            m = mat_mul(&m, &d.matrix());
        }
        if self.max_rotate > 0.0 && rng.random::<f64>() < self.p_affine {
            let deg = rng.random_range(-self.max_rotate..=self.max_rotate);
            m = mat_mul(&m, &rotation(deg));
        }
        if self.max_zoom > self.min_zoom && rng.random::<f64>() < self.p_affine {
            let s = rng.random_range(self.min_zoom..=self.max_zoom);
            let (c, r) = (rng.random::<f64>(), rng.random::<f64>());
            m = mat_mul(&m, &zoom(s, c, r));
        }
        if self.max_warp > 0.0 && rng.random::<f64>() < self.p_affine {
            let mx = rng.random_range(-self.max_warp..=self.max_warp);
            let my = rng.random_range(-self.max_warp..=self.max_warp);
            m = mat_mul(&m, &warp(mx, my));
        }
        let lighting = if self.max_lighting > 0.0 {
            let max = self.max_lighting;
            let (mut b, mut c) = match self.lighting {
                LightingMode::Logit => (0.5, 1.0),
                LightingMode::Linear => (0.0, 1.0),
            };
            if rng.random::<f64>() < self.p_lighting {
                b = match self.lighting {
                    LightingMode::Logit => rng.random_range(0.5 * (1.0 - max)..=0.5 * (1.0 + max)),
                    LightingMode::Linear => rng.random_range(-max..=max),
                };
            }
            if rng.random::<f64>() < self.p_lighting {
                c = match self.lighting {
                    LightingMode::Logit => {
                        let l = (1.0 - max).ln();
                        rng.random_range(l..=-l).exp()
                    }
                    LightingMode::Linear => {
                        let u: f64 = rng.random_range(-max..=max);
                        if u < 0.0 { -1.0 / (u - 1.0) } else { u + 1.0 }
                    }
                };
            }
            let l = Lighting {
                mode: self.lighting,
                brightness: b,
                contrast: c,
            };
            (!l.is_identity()).then_some(l)
        } else {
            None
        };
        AugParams {
            matrix: m,
            lighting,
        }
    }
}

/// Rotation by `deg` degrees (fastai's `rotate_mat`).
pub fn rotation(deg: f64) -> Mat3 {
    let (s, c) = deg.to_radians().sin_cos();
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

/// Zoom by `scale` towards the point at fractions `(col, row)` (fastai's `zoom_mat`).
pub fn zoom(scale: f64, col: f64, row: f64) -> Mat3 {
    let inv = 1.0 / scale;
    [
        [inv, 0.0, (1.0 - inv) * (2.0 * col - 1.0)],
        [0.0, inv, (1.0 - inv) * (2.0 * row - 1.0)],
        [0.0, 0.0, 1.0],
    ]
}

/// fastai's perspective warp: the homography moving the corners `(±1, ±1)` by the
/// magnitudes `mx`, `my`.
pub fn warp(mx: f64, my: f64) -> Mat3 {
    let from = [(-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)];
    let to = [
        (-1.0 - my, -1.0 - mx),
        (-1.0 + my, 1.0 + mx),
        (1.0 + my, -1.0 + mx),
        (1.0 - my, 1.0 - mx),
    ];
    homography(&from, &to)
}

/// The homography mapping four points onto four others (solved with `h33 = 1`).
///
/// # Panics
/// When the points are degenerate (three collinear).
pub fn homography(from: &[(f64, f64); 4], to: &[(f64, f64); 4]) -> Mat3 {
    let mut a = [[0.0f64; 9]; 8];
    for k in 0..4 {
        let ((x, y), (u, v)) = (from[k], to[k]);
        a[2 * k] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * k + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    // Gauss–Jordan elimination with partial pivoting.
    for col in 0..8 {
        let piv = (col..8)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .expect("non-empty range");
        assert!(a[piv][col].abs() > 1e-12, "degenerate homography points");
        a.swap(col, piv);
        let pivot = a[col];
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot[col];
                for (v, p) in row.iter_mut().zip(pivot.iter()).skip(col) {
                    *v -= f * p;
                }
            }
        }
    }
    let h: Vec<f64> = (0..8).map(|i| a[i][8] / a[i][i]).collect();
    [[h[0], h[1], h[2]], [h[3], h[4], h[5]], [h[6], h[7], 1.0]]
}

impl RandomResizedCrop {
    /// fastai's crop box `(left, top, width, height)` in pixels of a `w × h` image: up to
    /// ten draws of an area fraction in `[min_scale, max_scale]` and a log-uniform aspect
    /// ratio whose rounded box fits; otherwise the largest centred box of an allowed ratio.
    ///
    /// ```
    /// use fastburn_data::RandomResizedCrop;
    /// use rand::SeedableRng;
    /// let rrc = RandomResizedCrop::new();
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    /// for _ in 0..100 {
    ///     let (l, t, w, h) = rrc.sample_box(&mut rng, 256, 200);
    ///     assert!(l >= 0.0 && t >= 0.0 && l + w <= 256.0 && t + h <= 200.0);
    ///     let area = w * h / (256.0 * 200.0);
    ///     assert!(area > 0.06 && area <= 1.0, "{area}");
    /// }
    /// ```
    pub fn sample_box<R: rand::Rng>(&self, rng: &mut R, w: u32, h: u32) -> (f64, f64, f64, f64) {
        let (wf, hf) = (f64::from(w), f64::from(h));
        let (lo, hi) = (self.min_ratio.ln(), self.max_ratio.ln());
        for _ in 0..10 {
            let area = rng.random_range(self.min_scale..=self.max_scale) * wf * hf;
            let ratio = rng.random_range(lo..=hi).exp();
            let nw = (area * ratio).sqrt().round().max(1.0);
            let nh = (area / ratio).sqrt().round().max(1.0);
            if nw <= wf && nh <= hf {
                let left = rng.random_range(0..=(w - nw as u32)) as f64;
                let top = rng.random_range(0..=(h - nh as u32)) as f64;
                return (left, top, nw, nh);
            }
        }
        let (cw, ch) = if wf / hf < self.min_ratio {
            (wf, (wf / self.min_ratio).floor())
        } else if wf / hf > self.max_ratio {
            ((hf * self.max_ratio).floor(), hf)
        } else {
            (wf, hf)
        };
        (((wf - cw) / 2.0).floor(), ((hf - ch) / 2.0).floor(), cw, ch)
    }
}

/// PyTorch's `reflect_coordinates` + `clip_coordinates` for `align_corners=False`, in pixel
/// units: reflect about `−0.5` and `size − 0.5`, then clamp to `[0, size − 1]`.
#[inline]
pub fn reflect_coord(x: f64, size: u32) -> f64 {
    let span = f64::from(size);
    let min = -0.5;
    let v = (x - min).abs();
    let extra = v % span;
    let flips = (v / span).floor() as i64;
    let r = if flips % 2 == 0 {
        extra + min
    } else {
        span - extra + min
    };
    r.clamp(0.0, span - 1.0)
}

/// Resamples `src` through `params` into `out` (planar `[3, out_h, out_w]`, values in
/// `[0, 1]`), then applies lighting. A pure dihedral symmetry at equal sizes is an exact
/// pixel permutation; everything else is one bilinear resampling with `pad`.
///
/// # Panics
/// When `out.len() != 3 * out_w * out_h`.
pub fn augment_cpu(
    src: &RgbImage,
    params: &AugParams,
    out_w: u32,
    out_h: u32,
    pad: PadMode,
    out: &mut [f32],
) {
    let plane = (out_w * out_h) as usize;
    assert_eq!(
        out.len(),
        3 * plane,
        "output buffer must hold 3 × out_h × out_w values"
    );
    let (w, h) = src.dimensions();
    let raw = src.as_raw();
    let m = &params.matrix;
    if is_signed_permutation(m) && (out_w, out_h) == (w, h) && (w == h || m[0][1] == 0.0) {
        for i in 0..out_h {
            for j in 0..out_w {
                let (sj, si) = signed_perm_index(m, j, i, (out_w, out_h), (w, h));
                let s = ((si * w + sj) * 3) as usize;
                let o = (i * out_w + j) as usize;
                for c in 0..3 {
                    out[c * plane + o] = f32::from(raw[s + c]) / 255.0;
                }
            }
        }
    } else {
        let (wf, hf) = (f64::from(w), f64::from(h));
        for i in 0..out_h {
            let oy = (2.0 * f64::from(i) + 1.0) / f64::from(out_h) - 1.0;
            for j in 0..out_w {
                let ox = (2.0 * f64::from(j) + 1.0) / f64::from(out_w) - 1.0;
                let (ix, iy) = apply_mat(m, ox, oy);
                let px = ((ix + 1.0) * wf - 1.0) / 2.0;
                let py = ((iy + 1.0) * hf - 1.0) / 2.0;
                let o = (i * out_w + j) as usize;
                let rgb = sample_bilinear(raw, w, h, px, py, pad);
                for c in 0..3 {
                    out[c * plane + o] = rgb[c];
                }
            }
        }
    }
    if let Some(l) = &params.lighting {
        l.apply(out);
    }
}

/// Bilinear sample at pixel coordinates `(px, py)` of an interleaved RGB8 buffer; values in
/// `[0, 1]`.
#[inline]
fn sample_bilinear(raw: &[u8], w: u32, h: u32, px: f64, py: f64, pad: PadMode) -> [f32; 3] {
    let (px, py) = match pad {
        PadMode::Reflection => (reflect_coord(px, w), reflect_coord(py, h)),
        PadMode::Border => (
            px.clamp(0.0, f64::from(w) - 1.0),
            py.clamp(0.0, f64::from(h) - 1.0),
        ),
        PadMode::Zeros => (px, py),
    };
    let (x0, y0) = (px.floor(), py.floor());
    let (fx, fy) = ((px - x0) as f32, (py - y0) as f32);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let mut acc = [0.0f32; 3];
    for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
        for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
            let wgt = wx * wy;
            if wgt == 0.0 {
                continue;
            }
            let (x, y) = (x0 + dx, y0 + dy);
            if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
                continue; // zeros padding; the other modes never leave the image
            }
            let s = ((y as usize) * (w as usize) + x as usize) * 3;
            for c in 0..3 {
                acc[c] += wgt * f32::from(raw[s + c]);
            }
        }
    }
    [acc[0] / 255.0, acc[1] / 255.0, acc[2] / 255.0]
}
