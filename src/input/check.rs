//! What an endpoint's race breaks: the kind of anomaly its check counts, as a stack file
//! names it. How each kind is counted lives in `measure`.

use serde::{Deserialize, Serialize};

/// What an endpoint's race breaks, and so what counts as an anomaly. An endpoint names its
/// check in `x-racy.endpoints`; every check but `counter` has its own observe query there.
/// A new kind is a variant here and its arm in `measure::metrics::anomalies`.
#[derive(
    Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// A counter that lost increments: ledger rows missing from the balance.
    #[default]
    Counter,
    /// Rows that should be unique: `total` rows, `distinct_values` among them.
    Unique,
    /// Background tasks that did not find their row: `tasks` run, `missed` of them.
    Task,
    /// Apps that failed at start (seed 000): `starts` reported, `failed` of them.
    Start,
}

impl Check {
    /// The check's name, as in stack files and the `anomaly_kind` column.
    pub fn name(self) -> &'static str {
        match self {
            Check::Counter => "counter",
            Check::Unique => "unique",
            Check::Task => "task",
            Check::Start => "start",
        }
    }

    /// The check of a name (as [`Check::name`] gives it), if it is one.
    pub fn from_name(name: &str) -> Option<Check> {
        [Check::Counter, Check::Unique, Check::Task, Check::Start]
            .into_iter()
            .find(|c| c.name() == name)
    }

    /// The integer columns its observe query must return (none for `counter`, which
    /// reads the balance and the ledger).
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Check::Counter => &[],
            Check::Unique => &["total", "distinct_values"],
            Check::Task => &["tasks", "missed"],
            Check::Start => &["starts", "failed"],
        }
    }
}
