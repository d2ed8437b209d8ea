//! The one way the commands that read a finished run (`report`, `explain`, `claims`,
//! `compare`, `merge`) open it: the run directory's store, read and closed, and the copy
//! of its matrix when the command needs what the matrix says.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::cli::commands::{catalog, stacks_root};
use crate::cli::outcome::{Failure, Kind};
use crate::input::matrix::{self, Matrix};
use crate::store::results::{MATRIX_FILE, RunDir};

/// Whether a command needs the run's matrix.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Matrixed {
    /// It must be there (`claims`).
    Required,
    /// Read when there (`report` checks the expectations of a run that has one).
    IfPresent,
    /// Not read.
    No,
}

/// A finished run, opened.
pub(crate) struct Finished {
    /// Its cells, in run order; the store is closed.
    pub run: RunDir,
    /// Its matrix, as the command asked.
    pub matrix: Option<Matrix>,
    /// Where its matrix is (or would be).
    pub matrix_file: PathBuf,
}

/// Opens the run directory `dir` (its stacks looked up as `--stacks` says, or beside its
/// matrix).
pub(crate) async fn open(
    dir: &Path,
    stacks: Option<&Path>,
    want: Matrixed,
) -> Result<Finished, Failure> {
    let mut run = RunDir::load(dir).await.input()?;
    let _ = run.close().await;
    let matrix_file = dir.join(MATRIX_FILE);
    let matrix = match (want, matrix_file.is_file()) {
        (Matrixed::No, _) | (Matrixed::IfPresent, false) => None,
        (Matrixed::Required, false) => {
            return Err(Failure::Input(anyhow!(
                "{} has no {MATRIX_FILE}: it was not made by `racy-matrix run`",
                dir.display()
            )));
        }
        (_, true) => {
            let catalog = catalog(&stacks_root(stacks, Some(&matrix_file)))?;
            Some(matrix::load(&matrix_file, &catalog)?)
        }
    };
    if let Some(m) = &matrix {
        run.expect = m.expect.clone();
    }
    Ok(Finished {
        run,
        matrix,
        matrix_file,
    })
}
