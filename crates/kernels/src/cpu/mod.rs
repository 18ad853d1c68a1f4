//! The kernels themselves: plain functions over `f32` slices in NCHW order, with no Burn
//! types, so each can be tested and benchmarked on its own. The backend extension
//! ([`crate::ext`]) moves Burn's flex tensors in and out of them.

/// Compiles a function body three times — for AVX-512 (x86-64-v4), AVX2 + FMA (v3) and the
/// baseline — and picks one at run time, like the `gemm` crate does for its kernels: the
/// crate itself is built for the baseline, where the loops here would run 4-wide SSE.
///
/// No fused multiply-add is formed (Rust never contracts `a * b + c`), so every version
/// returns the same bits and results do not depend on the machine's instruction set.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[inline(never)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
                fn v4($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
                fn v3($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                if $crate::cpu::has_v4() {
                    // SAFETY: the CPU has every feature `v4` is compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if $crate::cpu::has_v3() {
                    // SAFETY: the CPU has every feature `v3` is compiled for.
                    return unsafe { v3($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub mod conv;
pub mod depthwise;
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

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_v4() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512dq")
        && has_v3()
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_v3() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("bmi1")
        && std::is_x86_feature_detected!("bmi2")
        && std::is_x86_feature_detected!("lzcnt")
        && std::is_x86_feature_detected!("popcnt")
}
