//! Image decoding under hostile input (reliability goals 1–5) and parity with Pillow on real
//! Planet chips.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fastburn_data::{
    DecodeOptions, Error, ImageFormat, contain_panics, decode_rgb, load_rgb, load_rgb_with,
};
use image::{Rgb, RgbImage};

fn test_image(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 7 % 256) as u8,
            (y * 13 % 256) as u8,
            ((x + y) * 5 % 256) as u8,
        ])
    })
}

fn jpeg_bytes(img: &RgbImage) -> Vec<u8> {
    let mut b = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut b, 90)
        .encode_image(img)
        .unwrap();
    b
}

fn png_bytes(img: &RgbImage) -> Vec<u8> {
    let mut b = Vec::new();
    img.write_to(&mut Cursor::new(&mut b), image::ImageFormat::Png)
        .unwrap();
    b
}

/// A PNG whose IHDR declares `w × h` (with a valid CRC), followed by no image data.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    b.extend_from_slice(&13u32.to_be_bytes());
    b.extend_from_slice(&chunk);
    b.extend_from_slice(&crc32(&chunk).to_be_bytes());
    b
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Replaces the width and height in a JPEG's SOF0 segment.
fn jpeg_with_dims(mut b: Vec<u8>, w: u16, h: u16) -> Vec<u8> {
    let pos = b
        .windows(2)
        .position(|x| x == [0xFF, 0xC0])
        .expect("baseline SOF0");
    b[pos + 5..pos + 7].copy_from_slice(&h.to_be_bytes());
    b[pos + 7..pos + 9].copy_from_slice(&w.to_be_bytes());
    b
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The malformed corpus: every file must give a typed error naming it, fast, without a panic.
#[test]
fn malformed_corpus_gives_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(64, 48);
    let jpg = jpeg_bytes(&img);
    let png = png_bytes(&img);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.jpg", vec![]),
        ("one_byte.jpg", vec![0xFF]),
        ("two_bytes.jpg", vec![0xFF, 0xD8]),
        ("soi_only.jpg", vec![0xFF, 0xD8, 0xFF]),
        ("jpeg_header_only.jpg", jpg[..20].to_vec()),
        ("jpeg_cut_10.jpg", jpg[..jpg.len() / 10].to_vec()),
        ("jpeg_cut_50.jpg", jpg[..jpg.len() / 2].to_vec()),
        ("jpeg_cut_90.jpg", jpg[..jpg.len() * 9 / 10].to_vec()),
        ("jpeg_no_eoi.jpg", jpg[..jpg.len() - 2].to_vec()),
        ("png_sig_only.png", png[..8].to_vec()),
        ("png_header_only.png", png[..33].to_vec()),
        ("png_cut_10.png", png[..png.len() / 10].to_vec()),
        ("png_cut_50.png", png[..png.len() / 2].to_vec()),
        ("png_cut_90.png", png[..png.len() * 9 / 10].to_vec()),
        ("png_no_iend.png", png[..png.len() - 12].to_vec()),
        (
            "html.jpg",
            b"<!DOCTYPE html><html><body>404</body></html>".to_vec(),
        ),
        (
            "gif.jpg",
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04".to_vec(),
        ),
        ("text.png", b"just some text, not an image\n".to_vec()),
        (
            "bmp.jpg",
            b"BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00".to_vec(),
        ),
        ("webp.jpg", b"RIFF\x1a\x00\x00\x00WEBPVP8 ".to_vec()),
        ("zeros.jpg", vec![0; 4096]),
        ("tiff_header_only.tif", b"II*\x00\x08\x00\x00\x00".to_vec()),
        (
            "tiff_be_garbage.tif",
            b"MM\x00*\xff\xff\xff\xff\x00\x01".to_vec(),
        ),
        ("png_zero_width.png", png_header(0, 10)),
        ("png_bomb.png", png_header(100_000, 100_000)),
        ("jpeg_bomb.jpg", jpeg_with_dims(jpg.clone(), 65535, 65535)),
        ("jpeg_zero_width.jpg", jpeg_with_dims(jpg.clone(), 0, 48)),
    ];
    // Bad CRC in IHDR.
    let mut bad_crc = png.clone();
    bad_crc[29] ^= 0xFF;
    cases.push(("png_bad_crc.png", bad_crc));
    // Bad CRC in IDAT.
    let mut bad_idat = png.clone();
    let idat = bad_idat.windows(4).position(|w| w == b"IDAT").unwrap();
    let len = u32::from_be_bytes(bad_idat[idat - 4..idat].try_into().unwrap()) as usize;
    bad_idat[idat + 4 + len] ^= 0xFF;
    cases.push(("png_bad_idat_crc.png", bad_idat));
    // A JPEG whose markers are garbage after SOI.
    let mut garbage = vec![0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x03, 0x99];
    garbage.extend_from_slice(&[0xFF, 0xD9]);
    cases.push(("jpeg_bad_huffman.jpg", garbage));
    // SOF declaring 5 components.
    let mut five = jpg.clone();
    let sof = five.windows(2).position(|x| x == [0xFF, 0xC0]).unwrap();
    five[sof + 9] = 5;
    cases.push(("jpeg_five_components.jpg", five));
    // Segment length running past the end of the file.
    cases.push((
        "jpeg_long_segment.jpg",
        vec![0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF, 0x00],
    ));
    assert!(cases.len() >= 30, "corpus has {} cases", cases.len());

    for (name, bytes) in &cases {
        let path = write(dir.path(), name, bytes);
        let t0 = Instant::now();
        let r = load_rgb(&path);
        let took = t0.elapsed();
        let err = match r {
            Err(e) => e,
            Ok(img) => panic!(
                "{name}: decoded to {:?} instead of an error",
                img.dimensions()
            ),
        };
        assert_eq!(err.path(), Some(path.as_path()), "{name}: {err}");
        assert!(
            err.to_string().contains(name),
            "{name}: message `{err}` does not name the file"
        );
        assert!(
            !matches!(err, Error::Panic { .. }),
            "{name}: decoder panicked: {err}"
        );
        assert!(took < Duration::from_secs(2), "{name}: took {took:?}");
    }
}

#[test]
fn specific_failures_have_specific_variants() {
    let dir = tempfile::tempdir().unwrap();
    let jpg = jpeg_bytes(&test_image(32, 32));
    let cut = write(dir.path(), "cut.jpg", &jpg[..jpg.len() * 9 / 10]);
    assert!(matches!(
        load_rgb(&cut),
        Err(Error::Truncated {
            format: ImageFormat::Jpeg,
            ..
        })
    ));
    let empty = write(dir.path(), "e.jpg", b"");
    assert!(matches!(load_rgb(&empty), Err(Error::EmptyFile { .. })));
    let html = write(dir.path(), "h.jpg", b"<html>");
    match load_rgb(&html) {
        Err(Error::UnsupportedFormat { magic, .. }) => assert_eq!(magic, "3C 68 74 6D 6C 3E"),
        other => panic!("{other:?}"),
    }
    let bomb = write(dir.path(), "bomb.png", &png_header(100_000, 100_000));
    assert!(
        matches!(
            load_rgb(&bomb),
            Err(Error::DimensionLimit {
                width: 100_000,
                height: 100_000,
                ..
            })
        ),
        "{:?}",
        load_rgb(&bomb)
    );
    let jbomb = write(
        dir.path(),
        "bomb.jpg",
        &jpeg_with_dims(jpg.clone(), 65535, 65535),
    );
    assert!(
        matches!(
            load_rgb(&jbomb),
            Err(Error::DimensionLimit { width: 65535, .. })
        ),
        "{:?}",
        load_rgb(&jbomb)
    );
    let missing = dir.path().join("missing.jpg");
    assert!(matches!(load_rgb(&missing), Err(Error::Io { .. })));
}

/// Every prefix of a valid JPEG and PNG either decodes or gives an error: none panics, and
/// in strict mode every strict prefix is an error.
#[test]
fn truncation_sweep_never_panics_and_strict_refuses_every_prefix() {
    let img = test_image(40, 24);
    let opts = DecodeOptions::default();
    for (name, bytes) in [
        ("sweep.jpg", jpeg_bytes(&img)),
        ("sweep.png", png_bytes(&img)),
    ] {
        let path = Path::new(name);
        let step = (bytes.len() / 200).max(1);
        let mut k = 0;
        while k < bytes.len() {
            let r = decode_rgb(&bytes[..k], path, &opts);
            match r {
                Ok(_) => panic!(
                    "{name}: prefix of {k}/{} bytes decoded in strict mode",
                    bytes.len()
                ),
                Err(Error::Panic { message, .. }) => panic!("{name}: panic at {k}: {message}"),
                Err(_) => {}
            }
            k += step;
        }
        let full = decode_rgb(&bytes, path, &opts).unwrap();
        assert_eq!(full.image.dimensions(), (40, 24));
        assert!(!full.truncated);
    }
}

#[test]
fn lenient_mode_decodes_a_truncated_jpeg_and_says_so() {
    let jpg = jpeg_bytes(&test_image(64, 64));
    let cut = &jpg[..jpg.len() * 8 / 10];
    let opts = DecodeOptions {
        strict: false,
        ..Default::default()
    };
    let d = decode_rgb(cut, Path::new("cut.jpg"), &opts).unwrap();
    assert!(d.truncated);
    assert_eq!(d.image.dimensions(), (64, 64));
}

#[test]
fn limits_are_inclusive_at_the_limit_and_refuse_one_more() {
    let opts = DecodeOptions {
        max_width: 64,
        max_height: 64,
        max_pixels: 64 * 64,
        ..Default::default()
    };
    for (w, ok) in [(63, true), (64, true), (65, false)] {
        for (kind, bytes) in [
            ("jpg", jpeg_bytes(&test_image(w, 8))),
            ("png", png_bytes(&test_image(w, 8))),
        ] {
            let r = decode_rgb(&bytes, Path::new(kind), &opts);
            assert_eq!(r.is_ok(), ok, "{kind} width {w}: {r:?}");
            if !ok {
                assert!(
                    matches!(r, Err(Error::DimensionLimit { .. })),
                    "{kind}: {r:?}"
                );
            }
        }
    }
    // The pixel-count limit on its own.
    let px = DecodeOptions {
        max_pixels: 16 * 16 - 1,
        ..Default::default()
    };
    let r = decode_rgb(&png_bytes(&test_image(16, 16)), Path::new("p.png"), &px);
    assert!(matches!(r, Err(Error::DimensionLimit { .. })));
    // The file-size limit is checked before reading.
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "big.png", &png_bytes(&test_image(16, 16)));
    let small = DecodeOptions {
        max_file_bytes: 10,
        ..Default::default()
    };
    assert!(matches!(
        load_rgb_with(&p, &small),
        Err(Error::FileTooLarge { .. })
    ));
}

#[test]
fn format_comes_from_magic_bytes_not_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let img = test_image(10, 6);
    let png_as_jpg = write(dir.path(), "really_png.jpg", &png_bytes(&img));
    let d = load_rgb_with(&png_as_jpg, &DecodeOptions::default()).unwrap();
    assert_eq!(d.format, ImageFormat::Png);
    assert_eq!(d.image, img);
    let jpg_as_png = write(dir.path(), "really_jpg.png", &jpeg_bytes(&img));
    assert_eq!(
        load_rgb_with(&jpg_as_png, &DecodeOptions::default())
            .unwrap()
            .format,
        ImageFormat::Jpeg
    );
    // TIFF decodes too.
    let mut tif = Vec::new();
    img.write_to(&mut Cursor::new(&mut tif), image::ImageFormat::Tiff)
        .unwrap();
    let t = write(dir.path(), "x.tif", &tif);
    assert_eq!(load_rgb(&t).unwrap(), img);
    // Grey and alpha PNGs become RGB.
    let grey = image::GrayImage::from_fn(3, 2, |x, _| image::Luma([x as u8 * 100]));
    let g = dir.path().join("grey.png");
    grey.save(&g).unwrap();
    assert_eq!(load_rgb(&g).unwrap().get_pixel(2, 0).0, [200, 200, 200]);
}

#[test]
fn an_injected_panicking_decoder_becomes_an_error_for_that_sample() {
    let r: Result<(), Error> =
        contain_panics(Path::new("bad.jpg"), || panic!("injected decoder panic"));
    match r {
        Err(Error::Panic { path, message }) => {
            assert_eq!(path, Path::new("bad.jpg"));
            assert!(message.contains("injected"));
        }
        other => panic!("{other:?}"),
    }
}

/// Decoded RGB of real Planet chips (4-component CMYK JPEGs) equals Pillow's
/// `convert("RGB")`, from `scripts/fixtures/data_reference.py`.
#[test]
fn planet_chips_match_pillow() {
    let Some(root) = std::env::var_os("FASTBURN_PLANET_TINY") else {
        eprintln!(
            "FASTBURN_PLANET_TINY is not set: skipping the Pillow parity check on real chips"
        );
        return;
    };
    let root = PathBuf::from(root);
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/pillow_planet_tiny.json")).unwrap();
    let (mut max_diff, mut sum_diff, mut n) = (0i64, 0i64, 0i64);
    let mut max_mean_diff = 0.0f64;
    for chip in fixture["chips"].as_array().unwrap() {
        let name = chip["name"].as_str().unwrap();
        let img = load_rgb(root.join("train-jpg").join(format!("{name}.jpg"))).unwrap();
        let size: Vec<u32> = serde_json::from_value(chip["size"].clone()).unwrap();
        assert_eq!(img.dimensions(), (size[0], size[1]));
        for s in chip["samples"].as_array().unwrap() {
            let (x, y) = (s[0].as_u64().unwrap() as u32, s[1].as_u64().unwrap() as u32);
            let want: Vec<i64> = serde_json::from_value(s[2].clone()).unwrap();
            let got = img.get_pixel(x, y).0;
            for c in 0..3 {
                let d = (i64::from(got[c]) - want[c]).abs();
                max_diff = max_diff.max(d);
                sum_diff += d;
                n += 1;
            }
        }
        let sums: Vec<i64> = serde_json::from_value(chip["channel_sums"].clone()).unwrap();
        let npx = f64::from(size[0] * size[1]);
        for (c, want) in sums.iter().enumerate() {
            let ours: i64 = img.pixels().map(|p| i64::from(p.0[c])).sum();
            max_mean_diff = max_mean_diff.max((ours - want).abs() as f64 / npx);
        }
    }
    let mean = sum_diff as f64 / n as f64;
    eprintln!(
        "Pillow parity on planet_tiny: max |Δ| = {max_diff}, mean |Δ| = {mean:.3} over {n} samples, \
         max channel-mean |Δ| = {max_mean_diff:.3}"
    );
    // libjpeg (Pillow) and zune-jpeg differ only in IDCT / upsampling rounding: measured
    // max |Δ| = 1, mean |Δ| = 0.006 (Pillow 13.0, zune-jpeg 0.5.15).
    assert!(max_diff <= 2, "max |Δ| {max_diff}");
    assert!(mean < 0.05, "mean |Δ| {mean}");
    assert!(max_mean_diff < 0.05, "channel mean |Δ| {max_mean_diff}");
}
