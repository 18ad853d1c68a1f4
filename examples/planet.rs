//! The main job (data stage): generate the embedded synthetic Planet-like dataset, print its
//! statistics, split it as fastai does, and write a `show_batch` grid of augmented chips.
//!
//! ```text
//! cargo run --release --example planet -- [OUT_DIR]
//! ```

use std::path::PathBuf;

use fastburn::data::synth::{PLANET_TAGS, SynthConfig};
use fastburn::data::{AugPolicy, CsvConfig, DataLoadersConfig, ShowConfig, Splitter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/planet-synth"));
    let data = out.join("data");
    let labels = data.join("labels.csv");
    let t0 = std::time::Instant::now();
    if labels.is_file() {
        println!("using the cached synthetic dataset in {}", data.display());
    } else {
        let summary = SynthConfig::new(data.clone())
            .with_n(1000)
            .with_n_test(200)
            .generate()?;
        println!(
            "generated 1000 + 200 synthetic Planet-like chips (128 px) in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        let _ = summary;
    }
    let csv = CsvConfig::new(labels, data.join("train-jpg"));
    let list = csv.load()?;
    println!(
        "{} images, {} tags, task {:?}",
        list.len(),
        list.vocab.len(),
        list.task
    );
    let counts = list.class_counts();
    println!("{:<20} {:>6} {:>7}", "tag", "images", "share");
    for (tag, n) in list.vocab.classes().iter().zip(&counts) {
        println!(
            "{tag:<20} {n:>6} {:>6.1}%",
            100.0 * *n as f64 / list.len() as f64
        );
    }
    assert_eq!(list.vocab.len(), PLANET_TAGS.len());

    let split = Splitter::default().split(list.len())?;
    println!(
        "split (valid_pct 0.2, seed 42): {} train, {} valid",
        split.train.len(),
        split.valid.len()
    );
    let dls = DataLoadersConfig::new(128)
        .with_batch_size(16)
        .with_aug(Some(AugPolicy::top_down()))
        .build(&list, &split);
    let grid = out.join("show_batch.png");
    dls.train.show_batch(&grid, &ShowConfig::new())?;
    println!("wrote {}", grid.display());
    Ok(())
}
