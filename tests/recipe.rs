//! The main job's pipeline at a tiny size: every artefact the README and the CLI promise.

use std::path::Path;

use fastburn::device::DeviceChoice;
use fastburn::models::Arch;
use fastburn::recipe::{PlanetRecipe, Policy, RecipeReport, run_artefacts};

fn is_png(path: &Path) -> bool {
    image::open(path).is_ok_and(|i| i.width() > 0)
}

fn check_report(out: &Path, r: &RecipeReport) {
    for f in run_artefacts(out) {
        assert!(f.is_file(), "missing {}", f.display());
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    for key in [
        "valid_f2",
        "threshold",
        "valid_f2_at_0.2",
        "train_seconds",
        "epochs",
    ] {
        assert!(
            json.get(key).is_some(),
            "metrics.json lacks `{key}`: {json}"
        );
    }
    for e in json["epochs"].as_array().unwrap() {
        for key in ["epoch", "size", "train_loss", "valid_loss", "valid_f2"] {
            assert!(e.get(key).is_some(), "epoch row lacks `{key}`");
        }
    }
    assert!((0.0..=1.0).contains(&r.valid_f2) && (0.0..=1.0).contains(&r.valid_f2_at_02));
    assert!(
        r.valid_f2 >= r.valid_f2_at_02 - 1e-12,
        "the best threshold is at least as good as 0.2 on the grid"
    );
    assert!(is_png(&out.join("losses.png")));
}

#[test]
fn the_planet_recipe_on_synthetic_chips_writes_every_artefact() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let recipe = PlanetRecipe::new(out.clone())
        .with_synth_dir(dir.path().join("data"))
        .with_synth_n(40)
        .with_synth_test(6)
        .with_synth_size(48)
        .with_arch(Arch::ResNet18)
        .with_base_width(4)
        .with_sizes(vec![32, 48])
        .with_policy(Policy::Sgdr)
        .with_epochs(1)
        .with_batch_size(8)
        .with_workers(1)
        .with_device(DeviceChoice::Flex)
        .with_verbose(false);
    let r = recipe.run().unwrap();
    check_report(&out, &r);
    assert!(
        is_png(&out.join("lr_find.png")),
        "lr_find ran (lr auto) and saved its plot"
    );
    assert_eq!(
        r.epochs.iter().map(|e| e.size).collect::<Vec<_>>(),
        vec![32, 48],
        "progressive resizing"
    );
    assert!(r.valid_f2_tta.is_some());
    // The submission: one row per held-out image, every tag known.
    let sub = fastburn::learner::read_submission(&out.join("submission.csv")).unwrap();
    assert_eq!(sub.len(), 6);
    assert_eq!(r.submission_rows, 6);
    let model =
        fastburn::learner::load_learner(&out.join("model.fbx"), &burn::tensor::Device::flex())
            .unwrap();
    for tag in sub.vocab.classes() {
        assert!(model.vocab().index_of(tag).is_some());
    }
    // A second run reuses the cached synthetic data.
    let again = recipe
        .with_lr(Some(1e-3))
        .with_sizes(vec![32])
        .run()
        .unwrap();
    assert_eq!(again.epochs.len(), 1);
}

/// CI runs the recipe on 200 real Planet chips (`../shared/data/planet_tiny`) at 64 px for
/// one epoch.
#[test]
fn the_planet_recipe_on_real_chips() {
    let Some(root) = std::env::var_os("FASTBURN_PLANET_TINY") else {
        eprintln!("FASTBURN_PLANET_TINY is not set: skipping the run on real Planet chips");
        return;
    };
    let root = std::path::PathBuf::from(root);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let t0 = std::time::Instant::now();
    let r = PlanetRecipe::new(out.clone())
        .with_csv(Some(root.join("labels.csv")))
        .with_images(Some(root.join("train-jpg")))
        .with_arch(Arch::ResNet18)
        .with_base_width(16)
        .with_sizes(vec![64])
        .with_policy(Policy::OneCycle)
        .with_epochs(1)
        .with_lr(Some(1e-2))
        .with_batch_size(32)
        .with_device(DeviceChoice::Flex)
        .with_verbose(false)
        .run()
        .unwrap();
    check_report(&out, &r);
    assert_eq!(r.items, (160, 40));
    eprintln!(
        "planet_tiny, 64 px, 1 epoch: {} in {:.1} s",
        r.summary_line(),
        t0.elapsed().as_secs_f64()
    );
}

/// A width the architecture ignores, or its weights cannot have, is refused naming the
/// recipe field, before anything is written.
#[test]
fn a_width_the_architecture_cannot_use_is_refused() {
    use fastburn::recipe::Pretrained;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let base = || {
        PlanetRecipe::new(out.clone())
            .with_device(DeviceChoice::Flex)
            .with_verbose(false)
    };
    for (recipe, key) in [
        (base().with_width_mult(0.5), "width_mult"),
        (
            base().with_arch(Arch::MobileNetV2).with_base_width(8),
            "base_width",
        ),
        (
            base()
                .with_base_width(8)
                .with_pretrained(Pretrained::File("w.pth".into())),
            "base_width",
        ),
        (
            base()
                .with_arch(Arch::EfficientNetB0)
                .with_width_mult(0.5)
                .with_pretrained(Pretrained::ImageNet),
            "width_mult",
        ),
    ] {
        match recipe.run() {
            Err(fastburn::Error::InvalidArgument { key: k, .. }) => assert_eq!(k, key),
            r => panic!("{key}: expected InvalidArgument, got {:?}", r.map(|_| ())),
        }
        assert!(!out.exists(), "nothing written");
    }
}
