//! Deterministic randomness on top of Burn's device RNG.
//!
//! Burn's CPU backends draw dropout masks and lazy parameter initialisations from one
//! process-wide generator. Two learners training in one process (or tests running in
//! parallel) would interleave their draws and lose reproducibility. fastburn therefore
//! seeds the device and draws inside one process-wide lock, with a seed derived from the
//! learner's seed and the position in training: each training step's dropout masks, and
//! each model's initial weights, depend only on the seed — not on what else runs.

use std::sync::Mutex;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

static RNG_LOCK: Mutex<()> = Mutex::new(());

/// Runs `f` with `device`'s generator seeded with `seed`, while no other fastburn code
/// draws from it.
pub fn with_seed<T>(device: &Device, seed: u64, f: impl FnOnce() -> T) -> T {
    let _guard = RNG_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    device.seed(seed);
    f()
}

/// Draws every lazily initialised parameter of a module now.
pub fn materialize<M: Module>(module: &M) {
    struct V;
    impl ModuleVisitor for V {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let _ = p.val();
        }
    }
    module.visit(&mut V);
}
