//! A cell's measured result: its axes, metrics (or why it failed), timing, route and
//! every repetition with its request records. The store persists it; reports read it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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

impl CellResult {
    /// A measured cell of `repetitions` bursts of `requests`, its first attempt, with no
    /// timing, route or engine recorded (the `with_*` methods add them).
    pub fn measured(
        cell: Cell,
        repetitions: u32,
        requests: u32,
        metrics: CellMetrics,
        reps: Vec<Repetition>,
    ) -> CellResult {
        CellResult {
            cell,
            repetitions,
            requests,
            metrics: Some(metrics),
            error: None,
            attempts: 1,
            timing: None,
            route: None,
            engine: None,
            reps,
        }
    }

    /// A cell that could not be measured, and why.
    pub fn failed(
        cell: Cell,
        repetitions: u32,
        requests: u32,
        error: impl Into<String>,
    ) -> CellResult {
        CellResult {
            cell,
            repetitions,
            requests,
            metrics: None,
            error: Some(error.into()),
            attempts: 1,
            timing: None,
            route: None,
            engine: None,
            reps: vec![],
        }
    }

    /// The same, after `attempts` attempts.
    pub fn with_attempts(self, attempts: u32) -> CellResult {
        CellResult { attempts, ..self }
    }

    /// The same, with how long it took.
    pub fn with_timing(self, timing: CellTiming) -> CellResult {
        CellResult {
            timing: Some(timing),
            ..self
        }
    }

    /// The same, with the route its requests took and the engine that measured it.
    pub fn with_place(
        self,
        route: Option<crate::input::route::Route>,
        engine: Option<String>,
    ) -> CellResult {
        CellResult {
            route,
            engine,
            ..self
        }
    }
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

pub const FIRST_AXES: &[&str] = &["stack", "endpoint", "workers", "wait_ms", "delay_ms"];
/// The metric columns: the fields of [`CellMetrics`], in the order it declares them
/// (docs/metrics.md#columns), so that a new metric is a new field and nothing else.
pub fn metric_columns() -> Vec<String> {
    match serde_json::to_value(CellMetrics::default()) {
        Ok(Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => unreachable!("CellMetrics serializes as an object"),
    }
}

/// Column names of a run: the fixed axes, the other axes sorted, then the counts,
/// metrics and status.
pub fn columns(cells: &[CellResult]) -> Vec<String> {
    let mut cols: Vec<String> = FIRST_AXES.iter().map(|s| s.to_string()).collect();
    let others: BTreeSet<&String> = cells
        .iter()
        .flat_map(|c| c.cell.axes.keys())
        .filter(|k| !FIRST_AXES.contains(&k.as_str()))
        .collect();
    cols.extend(others.into_iter().cloned());
    cols.extend(["repetitions", "requests"].map(String::from));
    cols.extend(metric_columns());
    cols.extend(["status", "error"].map(String::from));
    cols
}

/// One row as typed JSON values, keyed by column.
pub fn row(c: &CellResult, cols: &[String]) -> serde_json::Map<String, Value> {
    let metrics = c
        .metrics
        .as_ref()
        .map(|m| serde_json::to_value(m).expect("metrics serialize"))
        .unwrap_or(Value::Null);
    let metric_names = metric_columns();
    let mut out = serde_json::Map::new();
    for col in cols {
        let v = match col.as_str() {
            "stack" => json!(c.cell.stack),
            "repetitions" => json!(c.repetitions),
            "requests" => json!(c.requests),
            "status" => json!(if c.error.is_some() { "failed" } else { "ok" }),
            "error" => json!(c.error.clone().unwrap_or_default()),
            col if metric_names.iter().any(|m| m == col) => {
                metrics.get(col).cloned().unwrap_or(Value::Null)
            }
            axis => c.cell.get(axis).map(|v| json!(v)).unwrap_or(Value::Null),
        };
        out.insert(col.clone(), v);
    }
    out
}

/// A value as table text: rates with 4 decimals, milliseconds and microseconds with 1
/// (the start skew, measured to the microsecond, with 3), empty for null.
pub fn text(col: &str, v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(0.0);
            if col == "start_skew_ms" {
                format!("{x:.3}")
            } else if col.ends_with("_ms") || col.ends_with("_us") {
                format!("{x:.1}")
            } else {
                format!("{x:.4}")
            }
        }
        other => other.to_string(),
    }
}
