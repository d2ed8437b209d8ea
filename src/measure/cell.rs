//! A cell's measured result: its axes, metrics (or why it failed), timing, route and
//! every repetition with its request records. The store persists it; reports read it.

use serde::{Deserialize, Serialize};

use crate::input::matrix::Cell;
use crate::measure::metrics::{CellMetrics, Repetition};

/// One cell of a run: its axes, its metrics (or why it failed), and every record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellResult {
    /// The cell.
    pub cell: Cell,
    /// Repetitions asked for.
    pub repetitions: u32,
    /// Requests per repetition.
    pub requests: u32,
    /// Metrics; `None` when the cell failed.
    pub metrics: Option<CellMetrics>,
    /// Why it failed (with the services' last log lines).
    pub error: Option<String>,
    /// Attempts it took (1 unless it was retried on a fresh stack).
    #[serde(default = "one")]
    pub attempts: u32,
    /// How long the attempt that measured it took; `None` for a failed cell, and in runs
    /// recorded before durations were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<CellTiming>,
    /// The route its requests took to the stack; `None` for a failed cell, and in runs
    /// recorded before routes were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<crate::input::route::Route>,
    /// The engine that measured it (`local`, or the URL given to `--engine`); `None` for
    /// a failed cell, and in runs recorded before engines were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Every repetition with its request records.
    pub reps: Vec<Repetition>,
}

fn one() -> u32 {
    1
}

/// How long a cell took: what `plan` and `--shard` read back with `--timings`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellTiming {
    /// Wall seconds of the attempt that measured the cell: its setup and every
    /// repetition.
    pub seconds: f64,
    /// What the setup before it was.
    pub setup: crate::input::setup::Setup,
    /// Wall seconds of that setup (included in `seconds`).
    pub setup_seconds: f64,
}
