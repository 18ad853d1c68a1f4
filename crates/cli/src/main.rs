//! The `fastburn` command line.

fn main() {
    println!("fastburn {}", env!("CARGO_PKG_VERSION"));
}
