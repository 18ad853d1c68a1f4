//! The command line's errors and exit codes: 2 when the user's flags or data are at fault,
//! 1 when the run itself failed.

use std::error::Error as StdError;
use std::fmt;

use fastburn::data::VerifyReport;

/// Exit status for bad flags or bad input data.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit status for a failure of the run itself.
pub const EXIT_RUNTIME: u8 = 1;

/// Why a subcommand failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CliError {
    /// A flag has a value the command does not accept.
    InvalidFlag {
        /// The flag, with its dashes.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// `verify` found problems; the report names each line and file.
    Verify(Box<VerifyReport>),
    /// An error of the library.
    Fastburn(fastburn::Error),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::InvalidFlag {
                flag,
                value,
                expected,
            } => write!(
                f,
                "invalid value `{value}` for `{flag}` (expected {expected})"
            ),
            CliError::Verify(report) => write!(f, "{report}"),
            CliError::Fastburn(e) => write!(f, "{e}"),
        }
    }
}

impl StdError for CliError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            CliError::Fastburn(e) => e.source(),
            _ => None,
        }
    }
}

impl From<fastburn::Error> for CliError {
    fn from(e: fastburn::Error) -> Self {
        CliError::Fastburn(e)
    }
}

impl From<fastburn::data::Error> for CliError {
    fn from(e: fastburn::data::Error) -> Self {
        CliError::Fastburn(e.into())
    }
}

impl From<fastburn::learner::Error> for CliError {
    fn from(e: fastburn::learner::Error) -> Self {
        CliError::Fastburn(e.into())
    }
}

impl From<fastburn::models::Error> for CliError {
    fn from(e: fastburn::models::Error) -> Self {
        CliError::Fastburn(e.into())
    }
}

impl From<fastburn::device::DeviceError> for CliError {
    fn from(e: fastburn::device::DeviceError) -> Self {
        CliError::Fastburn(e.into())
    }
}

impl CliError {
    /// The process exit status: [`EXIT_BAD_INPUT`] when the flags, the data, the weights or
    /// the model bundle are at fault, [`EXIT_RUNTIME`] otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::InvalidFlag { .. } | CliError::Verify(_) => EXIT_BAD_INPUT,
            CliError::Fastburn(e) => fastburn_code(e),
        }
    }

    /// What is printed on stderr: `error: <message>`, then one `caused by:` line for each
    /// underlying error whose text the message does not already contain.
    pub fn report(&self) -> String {
        let mut out = format!("error: {self}\n");
        let mut seen = self.to_string();
        let mut source = self.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !seen.contains(&text) {
                out.push_str(&format!("  caused by: {text}\n"));
                seen.push_str(&text);
            }
            source = s.source();
        }
        out
    }

    /// A flag check: `Ok` when `ok`, else [`CliError::InvalidFlag`].
    ///
    /// # Errors
    /// [`CliError::InvalidFlag`] when `ok` is false.
    pub fn check(
        ok: bool,
        flag: &'static str,
        value: impl fmt::Display,
        expected: &'static str,
    ) -> Result<(), CliError> {
        if ok {
            Ok(())
        } else {
            Err(CliError::InvalidFlag {
                flag,
                value: value.to_string(),
                expected,
            })
        }
    }
}

fn fastburn_code(e: &fastburn::Error) -> u8 {
    use fastburn::Error as E;
    match e {
        E::InvalidArgument { .. } | E::Device(_) | E::NotARunFolder { .. } | E::RunFile { .. } => {
            EXIT_BAD_INPUT
        }
        E::Data(d) => data_code(d),
        E::Model(m) => model_code(m),
        E::Learner(l) => learner_code(l),
        _ => EXIT_RUNTIME,
    }
}

fn data_code(e: &fastburn::data::Error) -> u8 {
    use fastburn::data::Error as E;
    match e {
        // The machine, not the user's data: a write failed, a worker died or got stuck.
        E::Encode { .. } | E::WorkerDied { .. } | E::BatchDeadline { .. } => EXIT_RUNTIME,
        E::Worker { source, .. } => data_code(source),
        // Reading the user's files and folders, decoding their images, their CSV, their
        // settings.
        _ => EXIT_BAD_INPUT,
    }
}

fn model_code(e: &fastburn::models::Error) -> u8 {
    use fastburn::models::Error as E;
    match e {
        E::Download { .. } | E::NoCacheDir => EXIT_RUNTIME,
        // A weights file that is missing, malformed, or does not fit the architecture.
        _ => EXIT_BAD_INPUT,
    }
}

fn learner_code(e: &fastburn::learner::Error) -> u8 {
    use fastburn::learner::Error as E;
    match e {
        E::Data(d) => data_code(d),
        E::Model(m) => model_code(m),
        // A model bundle that is not one, is corrupted, or does not fit; a bad setting.
        E::Checkpoint { .. }
        | E::Record { .. }
        | E::InvalidConfig { .. }
        | E::NoTrainingBatches { .. }
        | E::GroupCount { .. } => EXIT_BAD_INPUT,
        _ => EXIT_RUNTIME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_faults_exit_2_and_run_failures_exit_1() {
        let missing = fastburn::data::Error::Io {
            path: "labels.csv".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(CliError::from(missing).exit_code(), EXIT_BAD_INPUT);
        let nan = fastburn::learner::Error::NonFiniteLoss {
            epoch: 1,
            iteration: 7,
            batch: 3,
            loss: f32::NAN,
        };
        assert_eq!(CliError::from(nan).exit_code(), EXIT_RUNTIME);
        let device = fastburn::device::DeviceError::NotCompiled { backend: "wgpu" };
        assert_eq!(CliError::from(device).exit_code(), EXIT_BAD_INPUT);
        let flag = CliError::check(false, "--bs", 0, "at least 1").unwrap_err();
        assert_eq!(flag.exit_code(), EXIT_BAD_INPUT);
        assert_eq!(
            flag.report(),
            "error: invalid value `0` for `--bs` (expected at least 1)\n"
        );
    }

    #[test]
    fn report_adds_only_causes_the_message_lacks() {
        // `{path}: {source}`: the OS error is already in the message, so no extra line.
        let e = CliError::from(fastburn::data::Error::Io {
            path: "x.csv".into(),
            source: std::io::Error::other("disk on fire"),
        });
        assert_eq!(e.report(), "error: x.csv: disk on fire\n");
    }
}
