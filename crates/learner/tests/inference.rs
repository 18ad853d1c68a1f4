//! lr_find, TTA, prediction, export/load, submissions, precompute, interpretation.

mod common;

use burn::tensor::Device;
use fastburn_data::{AugPolicy, Dihedral, ItemList, Task};
use fastburn_learner::{
    LrFindConfig, Suggest, Tta, blend_tta, label_report, load_learner, read_submission, suggest,
    top_losses, trimmed, write_submission,
};
use fastburn_metrics::ThresholdGrid;

#[test]
fn lr_find_restores_the_learner_exactly_and_suggests() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 40, 32, 8);
    l.fit(1, 1e-3).unwrap(); // some optimiser state and BN statistics to restore
    let before = common::weights(&l);
    let hist = l.history().len();
    let iters = l.iterations().len();
    let r = l
        .lr_find(&LrFindConfig {
            num_it: 40,
            ..Default::default()
        })
        .unwrap();
    assert!(!r.lrs.is_empty() && r.lrs.len() <= 40);
    assert!(r.lrs.windows(2).all(|w| w[1] > w[0]), "exponential sweep");
    assert!((r.lrs[0] - 1e-7).abs() < 1e-20);
    let after = common::weights(&l);
    assert_eq!(
        after.first_difference(&before),
        None,
        "weights and BN statistics restored bitwise"
    );
    assert_eq!(l.history().len(), hist);
    assert_eq!(l.iterations().len(), iters);
    // Training after lr_find equals training without it: the optimiser state is restored.
    let dir2 = tempfile::tempdir().unwrap();
    let mut twin = common::learner(dir2.path(), 40, 32, 8);
    twin.fit(1, 1e-3).unwrap();
    assert_eq!(common::weights(&twin).first_difference(&before), None);
    assert!(r.suggested().is_some());
    let png = dir.path().join("lr_find.png");
    r.plot(&png).unwrap();
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (800, 500));
}

#[test]
fn suggestions_lie_on_the_descending_part_of_a_synthetic_curve() {
    // Flat until 1e-5, descending to 1e-2, exploding after; smoothed like fastai's recorder.
    let n = 100;
    let lrs: Vec<f64> = (0..n)
        .map(|i| 1e-7 * (1e8f64).powf(i as f64 / n as f64))
        .collect();
    let raw: Vec<f64> = lrs
        .iter()
        .map(|&lr| {
            let x = lr.log10();
            if x < -5.0 {
                2.0
            } else if x < -2.0 {
                2.0 - 0.6 * (x + 5.0)
            } else {
                0.2 + 4.0 * (x + 2.0).powi(2)
            }
        })
        .collect();
    let (mut avg, mut smooth) = (0.0, Vec::new());
    for (i, v) in raw.iter().enumerate() {
        avg = 0.98 * avg + 0.02 * v;
        smooth.push(avg / (1.0 - 0.98f64.powi(i as i32 + 1)));
    }
    let (tl, ts) = trimmed(&lrs, &smooth, n);
    for rule in [Suggest::Valley, Suggest::Steep, Suggest::Minimum] {
        let s = suggest(&tl, &ts, rule).unwrap();
        assert!((1e-6..=1e-2).contains(&s), "{rule:?} suggests {s:e}");
    }
    let v = suggest(&tl, &ts, Suggest::Valley).unwrap();
    assert!((1e-5..1e-2).contains(&v), "valley {v:e} is on the descent");
}

#[test]
fn tta_equals_the_blend_of_its_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    l.fit(1, 1e-3).unwrap();
    let inf = l.inference();
    let dl = l.dls().valid.clone();
    for mode in [Tta::Augment { n: 3 }, Tta::Dihedral] {
        let (plain, passes) = inf.tta_passes(&dl, mode).unwrap();
        assert_eq!(passes.len(), if mode == Tta::Dihedral { 8 } else { 3 });
        let tta = inf.tta(&dl, mode, 0.25).unwrap();
        for i in 0..tta.probs.len() {
            let mean: f64 =
                passes.iter().map(|p| f64::from(p.probs[i])).sum::<f64>() / passes.len() as f64;
            let want = 0.25 * f64::from(plain.probs[i]) + 0.75 * mean;
            assert!((f64::from(tta.probs[i]) - want).abs() < 1e-6);
        }
        assert_eq!(tta, blend_tta(&plain, &passes, 0.25));
        assert_ne!(passes[0].probs, passes[1].probs, "passes differ");
    }
    // The identity view of dihedral TTA is the plain pass.
    let (plain, passes) = inf.tta_passes(&dl, Tta::Dihedral).unwrap();
    let max = plain
        .probs
        .iter()
        .zip(&passes[0].probs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(max < 1e-5, "{max}");
}

#[test]
fn dihedral_tta_of_symmetric_images_equals_the_plain_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    l.fit(1, 1e-3).unwrap();
    // Images invariant under the 8 symmetries: every view is the same input.
    let sym = dir.path().join("sym");
    std::fs::create_dir_all(&sym).unwrap();
    for k in 0..5u64 {
        let (img, _) = fastburn_data::synth::chip(32, k);
        let mut acc = vec![0u32; 32 * 32 * 3];
        for d in Dihedral::ALL {
            for (i, v) in d.apply(&img).as_raw().iter().enumerate() {
                acc[i] += u32::from(*v);
            }
        }
        let avg: Vec<u8> = acc.iter().map(|v| ((*v + 4) / 8) as u8).collect();
        image::RgbImage::from_raw(32, 32, avg)
            .unwrap()
            .save(sym.join(format!("s{k}.png")))
            .unwrap();
    }
    let inf = l.inference();
    let (_, plain) = inf.predict_folder(&sym, None, 8, 0).unwrap();
    let (_, tta) = inf.predict_folder(&sym, Some(Tta::Dihedral), 8, 0).unwrap();
    let max = plain
        .probs
        .iter()
        .zip(&tta.probs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        max < 1e-5,
        "dihedral TTA of invariant inputs moved predictions by {max}"
    );
}

#[test]
fn export_load_predict_gives_the_learners_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    l.fit(1, 1e-3).unwrap();
    l.set_thresholds(vec![0.3]).unwrap();
    let bundle = dir.path().join("export.fbx");
    l.export(&bundle).unwrap();
    let loaded = load_learner(&bundle, &Device::flex()).unwrap();
    assert_eq!(loaded.vocab(), &l.dls().vocab);
    assert_eq!(loaded.thresholds(), &[0.3]);
    let dl = l.dls().valid.clone();
    let a = l.get_preds(&dl).unwrap();
    let b = loaded.get_preds(&dl).unwrap();
    assert_eq!(a.probs, b.probs, "bitwise equal on the same device");
    let img = &dl.dataset().items()[0].path;
    let p1 = l.predict(img).unwrap();
    let p2 = loaded.predict(img).unwrap();
    assert_eq!(p1, p2);
    // One image alone and the same image in a batch of 8 agree to rounding, not bitwise: the
    // CPU kernels run one GEMM over the whole batch, and the `gemm` crate picks its blocking
    // (so its summation order) from the matrix shape, as oneDNN does in PyTorch. Same batch,
    // same bits (above).
    let row = a.row(0);
    assert_eq!(p1.probs.len(), row.len());
    let gap = p1
        .probs
        .iter()
        .zip(row)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(gap < 1e-5, "predict vs get_preds row 0 differ by {gap}");
    // Corruption is detected and named.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    let bad = dir.path().join("bad.fbx");
    std::fs::write(&bad, &bytes).unwrap();
    let e = load_learner(&bad, &Device::flex()).unwrap_err();
    assert!(
        e.to_string().contains("bad.fbx") && e.to_string().contains("corrupted"),
        "{e}"
    );
    std::fs::write(&bad, &bytes[..100]).unwrap();
    assert!(load_learner(&bad, &Device::flex()).is_err());
    std::fs::write(
        &bad,
        b"not a bundle at all, just text that is long enough to pass a size check....",
    )
    .unwrap();
    let e = load_learner(&bad, &Device::flex()).unwrap_err();
    assert!(
        e.to_string().contains("not a fastburn export bundle"),
        "{e}"
    );
}

#[test]
fn submission_has_one_row_per_test_image_and_reads_back_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    l.fit(1, 1e-3).unwrap();
    let preds = l.get_preds(&l.dls().valid.clone()).unwrap();
    let (t, score) = l
        .optimize_thresholds(&preds, 2.0, &ThresholdGrid::wide(), false)
        .unwrap();
    assert_eq!(t.len(), 1);
    assert!((0.0..=1.0).contains(&score));
    let test_dir = dir.path().join("data/test-jpg");
    let inf = l.inference();
    let (names, tp) = inf
        .predict_folder(&test_dir, Some(Tta::Dihedral), 4, 0)
        .unwrap();
    assert_eq!(names.len(), 4);
    let out = dir.path().join("sub/submission.csv");
    write_submission(
        &out,
        &names,
        &tp,
        inf.vocab(),
        inf.thresholds(),
        Task::MultiLabel,
    )
    .unwrap();
    let back = read_submission(&out).unwrap();
    assert_eq!(
        back.items
            .iter()
            .map(|i| i.name.clone())
            .collect::<Vec<_>>(),
        names
    );
    for tag in back.vocab.classes() {
        assert!(l.dls().vocab.index_of(tag).is_some(), "unknown tag {tag}");
    }
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("image_name,tags\n"));
    assert_eq!(text.lines().count(), 5);
}

/// Precompute does what it claims, checked by behaviour rather than by timing: once the
/// activations are cached, fits touch neither the images nor the body — they succeed with
/// the image folder moved away, and every body tensor (BatchNorm statistics included, which
/// any training-mode forward of the body would move) is bitwise unchanged while the head
/// trains — and the validation pass on the cached activations gives the probabilities and
/// the loss of the full forward on the images.
#[test]
fn precompute_trains_the_head_on_cached_activations_and_is_invalidated() {
    use fastburn_learner::{Callback, Flow, Learner, Phase};
    type Probs = std::sync::Arc<std::sync::Mutex<Vec<(usize, Vec<f32>)>>>;
    /// The probabilities of each item in the latest validation pass of a fit.
    struct ValidProbs(Probs);
    impl Callback for ValidProbs {
        fn name(&self) -> String {
            "valid_probs".into()
        }
        fn before_validate(&mut self, l: &mut Learner) -> fastburn_learner::Result<Flow> {
            if l.state().phase == Phase::Valid {
                self.0.lock().unwrap().clear();
            }
            Ok(Flow::Continue)
        }
        fn after_batch(&mut self, l: &mut Learner) -> fastburn_learner::Result<Flow> {
            if l.state().phase == Phase::Valid
                && let Some(out) = l.batch_output()
            {
                let c = out.probs.len() / out.indices.len();
                let mut seen = self.0.lock().unwrap();
                for (k, &i) in out.indices.iter().enumerate() {
                    seen.push((i, out.probs[k * c..(k + 1) * c].to_vec()));
                }
            }
            Ok(Flow::Continue)
        }
    }
    let body = |w: &common::Weights| -> Vec<(String, Vec<f32>)> {
        w.0.iter()
            .filter(|(n, _)| n.starts_with("body"))
            .cloned()
            .collect()
    };

    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 64, 32, 8);
    l.freeze();
    l.fit(2, 1e-2).unwrap();
    let rep = l.precompute().unwrap();
    assert_eq!(rep.train_items + rep.valid_items, 64);
    let head0 = common::weights(&l);
    assert!(body(&head0).len() > 10, "body tensors found by name");

    let images = dir.path().join("data").join("train-jpg");
    let away = dir.path().join("data").join("moved-away");
    std::fs::rename(&images, &away).unwrap();
    let probs: Probs = Default::default();
    l.add_callback(ValidProbs(probs.clone()));
    let fit = l.fit(2, 1e-2);
    std::fs::rename(&away, &images).unwrap();
    fit.expect("a precomputed fit reads no image");
    l.remove_cb::<ValidProbs>();

    let trained = common::weights(&l);
    assert_ne!(trained, head0, "the head trained on the cache");
    assert_eq!(
        body(&trained),
        body(&head0),
        "the body did not run (weights and BatchNorm statistics bitwise unchanged)"
    );
    assert!(l.is_precomputed());
    let last = l.history().last().unwrap().clone();
    assert!(last.metric("f2@0.2").is_some());

    // The same validation items through body and head, from the images.
    let valid = l.dls().valid.clone();
    let full = l.get_preds(&valid).unwrap();
    let c = full.n_classes;
    let mut cached = probs.lock().unwrap().clone();
    cached.sort_by_key(|(i, _)| *i);
    let mut want: Vec<(usize, Vec<f32>)> = full
        .indices
        .iter()
        .enumerate()
        .map(|(k, &i)| (i, full.probs[k * c..(k + 1) * c].to_vec()))
        .collect();
    want.sort_by_key(|(i, _)| *i);
    assert_eq!(cached.len(), rep.valid_items);
    assert_eq!(cached.len(), want.len());
    for ((i, a), (j, b)) in cached.iter().zip(&want) {
        assert_eq!(i, j);
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "item {i}: cached {x} vs full {y}");
        }
    }
    let full_loss =
        full.losses.iter().map(|&v| f64::from(v)).sum::<f64>() / full.losses.len() as f64;
    assert!(
        (last.valid_loss - full_loss).abs() < 1e-5 * full_loss.max(1.0),
        "validation loss on the cache {} vs the full forward {full_loss}",
        last.valid_loss
    );

    l.unfreeze();
    assert!(!l.is_precomputed(), "unfreeze drops the cache");
    l.precompute().unwrap();
    let dls = l.dls().with_size(32);
    l.set_data(dls).unwrap();
    assert!(!l.is_precomputed(), "new data drops the cache");
}

#[test]
fn top_losses_and_label_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    l.fit(1, 1e-3).unwrap();
    let dl = l.dls().valid.clone();
    let preds = l.get_preds(&dl).unwrap();
    let top = top_losses(&preds, &dl, &l.dls().vocab, &[0.2], Task::MultiLabel, 3);
    assert_eq!(top.len(), 3);
    assert!(top[0].loss >= top[1].loss && top[1].loss >= top[2].loss);
    let max = preds.losses.iter().copied().fold(f32::MIN, f32::max);
    assert_eq!(top[0].loss, max);
    let rep = label_report(&preds, &l.dls().vocab, &[0.2]).unwrap();
    assert_eq!(rep.len(), l.dls().vocab.len());
    let support: u64 = rep.iter().map(|r| r.counts.support()).sum();
    let ones = preds.targets.iter().filter(|&&t| t > 0.5).count() as u64;
    assert_eq!(support, ones);
}

#[test]
fn progressive_resizing_keeps_model_and_optimiser() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    l.fit(1, 1e-3).unwrap();
    let w = common::weights(&l);
    let bigger = l.dls().with_size(48);
    l.set_data(bigger).unwrap();
    assert_eq!(common::weights(&l), w);
    l.fit(1, 1e-3).unwrap();
    assert_eq!(l.history().last().unwrap().size, 48);
    // Another vocabulary is refused.
    let mut list = ItemList::from_test_folder(
        dir.path().join("data/test-jpg"),
        &fastburn_data::Vocab::new(["x"]),
        Task::MultiLabel,
    )
    .unwrap();
    list.items.truncate(2);
    let other = fastburn_data::DataLoadersConfig::new(32)
        .with_aug(Some(AugPolicy::none()))
        .build(
            &list,
            &fastburn_data::Split {
                train: vec![0],
                valid: vec![1],
            },
        );
    assert!(l.set_data(other).is_err());
}

/// A copy of bundle `src` at `dst` with its metadata JSON edited and the checksum trailer
/// recomputed, so only the edit is wrong.
fn edit_bundle(
    src: &std::path::Path,
    dst: &std::path::Path,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    let b = std::fs::read(src).unwrap();
    let json_len = u64::from_le_bytes(b[20..28].try_into().unwrap()) as usize;
    let mut meta: serde_json::Value = serde_json::from_slice(&b[28..28 + json_len]).unwrap();
    edit(&mut meta);
    let json = serde_json::to_vec(&meta).unwrap();
    let mut out = b[..20].to_vec();
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&b[28 + json_len..b.len() - 32]);
    let hex = fastburn_learner::sha256_hex(&out);
    let digest: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    out.extend_from_slice(&digest);
    std::fs::write(dst, out).unwrap();
}

/// Issue 13 item 9: a bundle's metadata was trusted. Thresholds of the wrong length
/// panicked in `tags_of`, unsorted classes were re-sorted (wrong tag names, silently), and
/// sizes, dropout and decoder limits came in unchecked.
#[test]
fn bundle_metadata_is_validated_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    let bundle = dir.path().join("export.fbx");
    l.export(&bundle).unwrap();
    let bad = dir.path().join("bad.fbx");
    // The unedited copy loads: the helper itself is sound.
    edit_bundle(&bundle, &bad, |_| {});
    load_learner(&bad, &Device::flex()).unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "thresholds",
            Box::new(|m| m["thresholds"] = serde_json::json!([0.1, 0.2])),
        ),
        (
            "thresholds",
            Box::new(|m| m["thresholds"] = serde_json::json!([1.5])),
        ),
        (
            "classes",
            Box::new(|m| m["classes"].as_array_mut().unwrap().reverse()),
        ),
        (
            "classes",
            Box::new(|m| {
                let first = m["classes"][0].clone();
                m["classes"].as_array_mut().unwrap()[1] = first;
            }),
        ),
        (
            "model.base_width",
            Box::new(|m| m["model"]["base_width"] = 0.into()),
        ),
        (
            "model.width_mult",
            Box::new(|m| m["model"]["width_mult"] = 0.0.into()),
        ),
        (
            "model.width_mult",
            Box::new(|m| m["model"]["width_mult"] = 1e6.into()),
        ),
        ("model.ps", Box::new(|m| m["model"]["ps"] = 1.0.into())),
        (
            "model.in_channels",
            Box::new(|m| m["model"]["in_channels"] = 100000.into()),
        ),
        (
            "transforms.size",
            Box::new(|m| m["transforms"]["size"] = 100000.into()),
        ),
        (
            "transforms.decode",
            Box::new(|m| m["transforms"]["decode"]["max_pixels"] = u64::MAX.into()),
        ),
    ];
    for (key, edit) in cases {
        edit_bundle(&bundle, &bad, edit);
        let e = load_learner(&bad, &Device::flex()).unwrap_err();
        assert!(
            e.to_string().contains(key) && e.to_string().contains("bad.fbx"),
            "{key}: {e}"
        );
    }
    // Bundles written before `width_mult` existed (ResNet only) load at width 1.0.
    edit_bundle(&bundle, &bad, |m| {
        m["model"].as_object_mut().unwrap().remove("width_mult");
    });
    let old = load_learner(&bad, &Device::flex()).unwrap();
    assert_eq!(old.model().config().unwrap().width_mult, 1.0);
    // The same checks guard the setters.
    assert!(l.set_thresholds(vec![0.2; 2]).is_err());
    assert!(l.set_thresholds(vec![f32::NAN]).is_err());
    let n = l.dls().vocab.len();
    l.set_thresholds(vec![0.2; n]).unwrap();
    let mut inf = l.inference();
    assert!(inf.set_thresholds(vec![0.5; n + 1]).is_err());
}

/// Issue 13 item 12: activations cached for the old weights must not outlive them.
#[test]
fn precomputed_activations_are_dropped_when_weights_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    l.freeze();
    let weights = dir.path().join("w.bpk");
    l.save_weights(&weights).unwrap();
    let ck = l.save_checkpoint(&dir.path().join("ck")).unwrap();
    l.precompute().unwrap();
    l.load_weights(&weights).unwrap();
    assert!(!l.is_precomputed(), "load_weights");
    l.precompute().unwrap();
    l.load_checkpoint(&ck).unwrap();
    assert!(!l.is_precomputed(), "load_checkpoint");
    l.precompute().unwrap();
    let m = l.model().clone();
    l.set_model(m);
    assert!(!l.is_precomputed(), "set_model");
}

/// Issue 13 item 13: `load_weights` read any file whole. One over the cap is refused from its
/// size (a sparse file: nothing is written or read).
#[test]
fn load_weights_refuses_a_file_over_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = common::learner(dir.path(), 24, 32, 8);
    let big = dir.path().join("huge.bpk");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(fastburn_learner::MAX_BUNDLE_BYTES + 1)
        .unwrap();
    let e = l.load_weights(&big).unwrap_err();
    assert!(
        e.to_string().contains("huge.bpk") && e.to_string().contains("limit"),
        "{e}"
    );
}
