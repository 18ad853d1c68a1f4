//! The `fastburn` command line; see the `fastburn_cli` crate documentation.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap prints usage errors as `error: …` and exits with status 2 itself.
    let cli = fastburn_cli::Cli::parse();
    match fastburn_cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", e.report());
            ExitCode::from(e.exit_code())
        }
    }
}
