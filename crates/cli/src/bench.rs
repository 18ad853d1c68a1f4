//! `fastburn bench`: the measurement lives in the library ([`fastburn::bench`]) so that the
//! criterion benches measure exactly the same step.

pub use fastburn::bench::{BenchConfig, BenchResult, measure};
