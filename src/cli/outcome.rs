//! How a command came out: its failure kinds, its verdicts, and the one place that turns
//! them into an exit code (see docs/architecture.md#exit-codes).

use anyhow::anyhow;

use crate::input::source::InputError;

/// Why a command failed; its kind alone decides the exit code (see [`exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The matrix, a stack file or an argument is wrong; nothing was started.
    #[error("{0:#}")]
    Input(anyhow::Error),
    /// The engine or a stack failed, or the run was interrupted.
    #[error("{0:#}")]
    Engine(anyhow::Error),
    /// A local file (the results store, an output file) or stdout could not be written.
    #[error("{0:#}")]
    Local(anyhow::Error),
}

impl From<InputError> for Failure {
    fn from(e: InputError) -> Self {
        Failure::Input(anyhow!("{e}"))
    }
}

/// How a command that ran to its end came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// All is well.
    Ok,
    /// An expectation of the matrix did not hold.
    ExpectationMissed,
    /// Some cells could not be measured (they are recorded as failed).
    CellsFailed,
    /// `compare` found a significant change of the kind `--fail-on` names.
    Changed,
}

/// The exit code of a command's outcome: the one place that chooses it.
pub fn exit_code(outcome: &Result<Verdict, Failure>) -> u8 {
    match outcome {
        Ok(Verdict::Ok) => 0,
        Ok(Verdict::ExpectationMissed | Verdict::Changed) => 1,
        Err(Failure::Input(_)) => 2,
        Ok(Verdict::CellsFailed) | Err(Failure::Engine(_)) => 3,
        Err(Failure::Local(_)) => 4,
    }
}

/// Shorthands that tag an error with its kind.
pub(crate) trait Kind<T> {
    fn input(self) -> Result<T, Failure>;
    fn engine(self) -> Result<T, Failure>;
    fn local(self) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> Kind<T> for std::result::Result<T, E> {
    fn input(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::Input(e.into()))
    }
    fn engine(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::Engine(e.into()))
    }
    fn local(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::Local(e.into()))
    }
}
