//! Augmentation: exact dihedral symmetries, identities, CPU and device paths agreeing, and
//! lighting changing mean and spread as specified.

use burn::tensor::{Device, Tensor, TensorData};
use fastburn_data::{
    AugParams, AugPolicy, Dihedral, FlipMode, IDENTITY, Lighting, LightingMode, PadMode,
    RandomResizedCrop, apply_mat, augment_batch, augment_cpu, homography, mat_mul, rotation, warp,
    zoom,
};
use image::{Rgb, RgbImage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w.max(2)) as u8,
            (y * 255 / h.max(2)) as u8,
            ((x * 31 + y * 17) % 256) as u8,
        ])
    })
}

fn planar(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0; 3 * plane];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = f32::from(p.0[c]) / 255.0;
        }
    }
    out
}

#[test]
fn dihedral_is_an_exact_permutation_and_its_8_elements_are_distinct() {
    let img = RgbImage::from_fn(5, 5, |x, y| Rgb([(x + 5 * y) as u8, 0, 0]));
    let mut seen = Vec::new();
    for d in Dihedral::ALL {
        let out = d.apply(&img);
        // A permutation: the multiset of values is unchanged, every value once.
        let mut vals: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        vals.sort_unstable();
        assert_eq!(vals, (0..25).collect::<Vec<u8>>());
        assert!(
            !seen.contains(&out),
            "element {} repeats another",
            d.index()
        );
        seen.push(out.clone());
        // The CPU augmentation path gives the same pixels exactly.
        let mut buf = vec![0.0; 75];
        augment_cpu(
            &img,
            &AugParams::dihedral(d),
            5,
            5,
            PadMode::Reflection,
            &mut buf,
        );
        assert_eq!(
            buf,
            planar(&out),
            "augment_cpu disagrees for element {}",
            d.index()
        );
    }
    assert_eq!(Dihedral::new(0).apply(&img), img);
    // Element 4 is the horizontal flip.
    assert_eq!(Dihedral::new(4).apply(&img).get_pixel(0, 0).0[0], 4);
    // Quarter turn of a non-square image swaps its sides.
    assert_eq!(Dihedral::new(1).apply(&gradient(6, 4)).dimensions(), (4, 6));
}

#[test]
fn identity_parameters_return_the_input() {
    let img = gradient(17, 17);
    let mut buf = vec![0.0; 3 * 17 * 17];
    augment_cpu(
        &img,
        &AugParams::identity(),
        17,
        17,
        PadMode::Reflection,
        &mut buf,
    );
    assert_eq!(buf, planar(&img));
    // A nearly-identity matrix goes through bilinear sampling and still returns the input.
    let p = AugParams {
        matrix: mat_mul(&rotation(0.0), &zoom(1.0, 0.3, 0.7)),
        lighting: Some(Lighting {
            mode: LightingMode::Logit,
            brightness: 0.5,
            contrast: 1.0,
        }),
    };
    augment_cpu(&img, &p, 17, 17, PadMode::Reflection, &mut buf);
    let max = buf
        .iter()
        .zip(planar(&img))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(max < 1e-6, "{max}");
    // A policy that draws nothing draws the identity.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    assert_eq!(AugPolicy::none().sample(&mut rng), AugParams::identity());
}

#[test]
fn matrices_compose_as_documented() {
    // Zoom by 2 towards the centre maps the output corner (1, 1) to input (0.5, 0.5).
    let (x, y) = apply_mat(&zoom(2.0, 0.5, 0.5), 1.0, 1.0);
    assert!((x - 0.5).abs() < 1e-12 && (y - 0.5).abs() < 1e-12);
    // A quarter turn: (x, y) -> (-y, x).
    let (x, y) = apply_mat(&rotation(90.0), 1.0, 0.0);
    assert!(x.abs() < 1e-12 && (y - 1.0).abs() < 1e-12);
    // The homography maps its four points exactly.
    let from = [(-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)];
    let to = [(-1.1, -0.9), (-0.95, 1.05), (1.0, -1.0), (0.9, 1.1)];
    let h = homography(&from, &to);
    for (f, t) in from.iter().zip(&to) {
        let (x, y) = apply_mat(&h, f.0, f.1);
        assert!((x - t.0).abs() < 1e-9 && (y - t.1).abs() < 1e-9);
    }
    assert_eq!(
        warp(0.0, 0.0).map(|r| r.map(|v| (v * 1e9).round() / 1e9)),
        IDENTITY
    );
}

#[test]
fn lighting_changes_mean_and_spread_as_specified() {
    // Linear (fastai 0.7): mean moves by b, spread scales by c (no clipping in range).
    let img = RgbImage::from_fn(32, 32, |x, y| {
        let v = 80 + ((x * 3 + y * 5) % 90) as u8;
        Rgb([v, v, v])
    });
    let base = planar(&img);
    let stats = |v: &[f32]| {
        let m = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let s =
            (v.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        (m, s)
    };
    let (m0, s0) = stats(&base);
    let mut lit = base.clone();
    Lighting {
        mode: LightingMode::Linear,
        brightness: 0.05,
        contrast: 1.2,
    }
    .apply(&mut lit);
    let (m1, s1) = stats(&lit);
    assert!((m1 - (m0 + 0.05)).abs() < 1e-5, "{m0} -> {m1}");
    assert!((s1 / s0 - 1.2).abs() < 1e-4, "{s0} -> {s1}");
    // Logit (fastai v2): brightness > 0.5 brightens, contrast > 1 spreads.
    let mut b = base.clone();
    Lighting {
        mode: LightingMode::Logit,
        brightness: 0.6,
        contrast: 1.0,
    }
    .apply(&mut b);
    assert!(stats(&b).0 > m0 + 0.05);
    let mut c = base.clone();
    Lighting {
        mode: LightingMode::Logit,
        brightness: 0.5,
        contrast: 1.5,
    }
    .apply(&mut c);
    assert!(stats(&c).1 > s0 * 1.3);
    // Logit brightness b maps 0.5 to b exactly.
    let mut half = vec![0.5f32];
    Lighting {
        mode: LightingMode::Logit,
        brightness: 0.7,
        contrast: 1.0,
    }
    .apply(&mut half);
    assert!((half[0] - 0.7).abs() < 1e-6);
}

#[test]
fn policies_are_seeded_and_stay_in_range() {
    let policy = AugPolicy::fastai()
        .with_flip(FlipMode::Dihedral)
        .with_random_resized_crop(Some(RandomResizedCrop::new()));
    let draw = |seed| policy.sample(&mut ChaCha8Rng::seed_from_u64(seed));
    assert_eq!(draw(3), draw(3));
    assert_ne!(draw(3), draw(4));
    let top = AugPolicy::top_down();
    for seed in 0..200 {
        let p = top.sample(&mut ChaCha8Rng::seed_from_u64(seed));
        // Zoom ≤ 1.05 and rotation ≤ 10° keep the determinant of the linear part in range.
        let det = p.matrix[0][0] * p.matrix[1][1] - p.matrix[0][1] * p.matrix[1][0];
        assert!(
            (1.0 / 1.05f64.powi(2) - 1e-9..=1.0 + 1e-9).contains(&det.abs()),
            "{det}"
        );
        let l = p.lighting.expect("top_down always lights");
        assert!(l.brightness.abs() <= 0.05 && (1.0 / 1.05..=1.05 + 1e-12).contains(&l.contrast));
    }
}

fn device_augment(
    img: &RgbImage,
    params: &[AugParams],
    pad: PadMode,
    mode: LightingMode,
) -> Vec<f32> {
    let device = Device::flex();
    let (w, h) = img.dimensions();
    let one = planar(img);
    let mut data = Vec::new();
    for _ in params {
        data.extend_from_slice(&one);
    }
    let t = Tensor::<4>::from_data(
        TensorData::new(data, [params.len(), 3, h as usize, w as usize]),
        &device,
    );
    augment_batch(t, params, pad, mode)
        .try_into_vec_as::<f32>()
        .unwrap()
}

#[test]
fn cpu_and_device_paths_agree() {
    let img = gradient(24, 24);
    for (policy, pad) in [
        (AugPolicy::fastai(), PadMode::Reflection),
        (AugPolicy::top_down(), PadMode::Reflection),
        (AugPolicy::fastai().with_pad(PadMode::Zeros), PadMode::Zeros),
        (
            AugPolicy::fastai()
                .with_pad(PadMode::Border)
                .with_max_rotate(45.0),
            PadMode::Border,
        ),
        (
            AugPolicy::fastai().with_random_resized_crop(Some(RandomResizedCrop::new())),
            PadMode::Reflection,
        ),
    ] {
        let params: Vec<AugParams> = (0..6)
            .map(|s| policy.sample(&mut ChaCha8Rng::seed_from_u64(s)))
            .collect();
        let dev = device_augment(&img, &params, pad, policy.lighting);
        let plane = 3 * 24 * 24;
        let mut max = 0.0f32;
        for (k, p) in params.iter().enumerate() {
            let mut cpu = vec![0.0; plane];
            augment_cpu(&img, p, 24, 24, pad, &mut cpu);
            for (a, b) in cpu.iter().zip(&dev[k * plane..(k + 1) * plane]) {
                max = max.max((a - b).abs());
            }
        }
        assert!(max < 2e-4, "{pad:?}: CPU and device differ by {max}");
    }
}

/// A 256 px checkerboard of 8 px cells, as a dataset of one item at `size` px.
fn checker_dataset(
    dir: &std::path::Path,
    tfms: fastburn_data::Transforms,
) -> fastburn_data::ImageDataset {
    let img = RgbImage::from_fn(256, 256, |x, y| {
        let v = if (x / 8 + y / 8) % 2 == 0 { 255 } else { 0 };
        image::Rgb([v, v, v])
    });
    let path = dir.join("c.png");
    img.save(&path).unwrap();
    let list = fastburn_data::ItemList {
        items: vec![fastburn_data::Item {
            name: "c".into(),
            path,
            labels: vec![],
            line: None,
        }],
        vocab: fastburn_data::Vocab::new(vec!["a".to_string()]),
        task: fastburn_data::Task::MultiLabel,
    };
    fastburn_data::ImageDataset::new(list, tfms, 0)
}

fn spread(pixels: &[f32]) -> f32 {
    let m = pixels.iter().sum::<f32>() / pixels.len() as f32;
    (pixels.iter().map(|p| (p - m).powi(2)).sum::<f32>() / pixels.len() as f32).sqrt()
}

#[test]
fn random_resized_crop_crops_the_decoded_image_not_the_presized_one() {
    let dir = tempfile::tempdir().unwrap();
    let small = RandomResizedCrop::new()
        .with_min_scale(0.08)
        .with_max_scale(0.08);
    let policy = AugPolicy::none().with_random_resized_crop(Some(small));
    let no_norm = fastburn_data::Normalize::new()
        .with_mean([0.0; 3])
        .with_std([1.0; 3]);
    let tfms = fastburn_data::Transforms::new(32)
        .with_aug(Some(policy))
        .with_normalize(no_norm.clone());
    let ds = checker_dataset(dir.path(), tfms.clone());
    // An 8 % box of the 256 px image is ~72 px: 9 cells over 32 px keep their contrast.
    // Presized to 32 px first, the 8 px cells would be 1 px and the crop a grey blur.
    for epoch in 0..5 {
        let s = ds.get(0, epoch).unwrap();
        assert!(
            spread(&s.pixels) > 0.35,
            "epoch {epoch}: {}",
            spread(&s.pixels)
        );
    }
    // The same dataset without augmentation and fastai's val_xtra: the centre 32/40 of
    // the image, resized; the 1 px cells blur to grey.
    let valid = checker_dataset(
        dir.path(),
        fastburn_data::Transforms::new(32)
            .with_normalize(no_norm)
            .with_val_xtra(Some(0.14)),
    );
    let v = valid.get(0, 0).unwrap();
    assert!(spread(&v.pixels) < 0.3, "{}", spread(&v.pixels));
}
