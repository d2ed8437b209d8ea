//! The run directory: the cells measured so far, rewritten to results.csv, results.md and
//! results.json after every cell so a run that dies keeps what it measured; loading and
//! merging run directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::export::{self, CellResult, RunReport};

/// The copy of the matrix file a run directory keeps.
pub const MATRIX_FILE: &str = "matrix.yaml";

/// A run directory and the cells it holds.
pub struct RunDir {
    /// The directory.
    pub path: PathBuf,
    /// Matrix name.
    pub matrix: String,
    /// Run id (the engine label value).
    pub run_id: String,
    /// Start time, RFC 3339.
    pub started: String,
    /// `K/N` when the run was one shard of its matrix.
    pub shard: Option<String>,
    /// Cells in the order they ran.
    pub cells: Vec<CellResult>,
}

impl RunDir {
    /// Creates (or reuses, if empty) the directory.
    pub fn create(path: &Path, matrix: &str) -> Result<RunDir> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create the output directory {}", path.display()))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            matrix: matrix.to_string(),
            run_id: String::new(),
            started: chrono::Local::now().to_rfc3339(),
            shard: None,
            cells: vec![],
        })
    }

    /// The report view of this directory.
    pub fn report(&self) -> RunReport<'_> {
        RunReport {
            matrix: &self.matrix,
            run_id: &self.run_id,
            started: &self.started,
            shard: self.shard.as_deref(),
            cells: &self.cells,
        }
    }

    /// Adds a finished cell and rewrites every results file.
    pub fn push(&mut self, cell: CellResult) -> Result<()> {
        self.cells.push(cell);
        self.write()
    }

    /// Rewrites every results file.
    pub fn write(&self) -> Result<()> {
        export::write_all(&self.path, &self.report())
    }

    /// Reads a run directory back from its results.json.
    pub fn load(path: &Path) -> Result<RunDir> {
        let file = path.join("results.json");
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "{} is not a run directory (no readable results.json)",
                path.display()
            )
        })?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", file.display()))?;
        let cells: Vec<CellResult> = serde_json::from_value(v["cells"].clone())
            .with_context(|| format!("{}: unexpected cells", file.display()))?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Ok(RunDir {
            path: path.to_path_buf(),
            matrix: s("matrix"),
            run_id: s("run_id"),
            started: s("started"),
            shard: v["shard"].as_str().map(str::to_string),
            cells,
        })
    }
}

/// Merges run directories (e.g. the shards of one matrix): cells are keyed by their
/// identity; the same cell measured twice is an error.
pub fn merge(dirs: &[RunDir], output: &Path) -> Result<RunDir> {
    let Some(first) = dirs.first() else {
        bail!("merge needs at least one run directory");
    };
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut out = RunDir::create(output, &first.matrix)?;
    out.run_id = dirs
        .iter()
        .map(|d| d.run_id.as_str())
        .collect::<Vec<_>>()
        .join("+");
    out.started = first.started.clone();
    // The merged directory is checked against the matrix of its shards.
    let matrix_file = first.path.join(MATRIX_FILE);
    if matrix_file.is_file() {
        std::fs::copy(&matrix_file, output.join(MATRIX_FILE))
            .with_context(|| format!("copying {}", matrix_file.display()))?;
    }
    for d in dirs {
        if d.matrix != first.matrix {
            bail!(
                "{} holds matrix '{}' but {} holds '{}': merge only the shards of one matrix",
                d.path.display(),
                d.matrix,
                first.path.display(),
                first.matrix
            );
        }
        for c in &d.cells {
            if let Some(prev) = seen.insert(c.cell.key(), d.path.clone()) {
                bail!(
                    "cell {} is in both {} and {}",
                    c.cell.label(),
                    prev.display(),
                    d.path.display()
                );
            }
            out.cells.push(c.clone());
        }
    }
    out.write()?;
    Ok(out)
}
