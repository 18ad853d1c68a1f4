//! The kernels themselves: plain functions over `f32` slices in NCHW order, with no Burn
//! types, so each can be tested and benchmarked on its own. The backend extension
//! ([`crate::ext`]) moves Burn's flex tensors in and out of them.

pub mod conv;
pub mod norm;

pub use crate::Activation;

/// Below this many multiply-adds a GEMM runs on the calling thread: splitting it costs more
/// than it saves.
const PARALLEL_GEMM_MIN: usize = 1 << 18;

pub(crate) fn gemm_parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_GEMM_MIN
        && rayon::current_num_threads() > 1
    {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    }
}

/// A reusable `f32` buffer from this thread's pool: the patch matrices and GEMM results of
/// successive layers reuse the same memory instead of faulting fresh pages in each call.
/// Its contents on arrival are unspecified (callers overwrite every element they read).
pub(crate) struct Scratch(Vec<f32>);

thread_local! {
    static POOL: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Buffers kept per thread (a convolution's backward pass holds three at once).
const POOL_SIZE: usize = 4;

pub(crate) fn scratch(len: usize) -> Scratch {
    let mut v = POOL.with(|p| {
        let mut p = p.borrow_mut();
        // The smallest buffer that fits, else the largest (to grow).
        let fit = (0..p.len())
            .filter(|&i| p[i].capacity() >= len)
            .min_by_key(|&i| p[i].capacity())
            .or_else(|| (0..p.len()).max_by_key(|&i| p[i].capacity()));
        fit.map(|i| p.swap_remove(i)).unwrap_or_default()
    });
    v.resize(len, 0.0);
    Scratch(v)
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_SIZE {
                p.push(v);
            }
        });
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}
