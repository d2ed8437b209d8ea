//! The one model of a run that every view formats: its cells numbered in run order,
//! grouped by stack and endpoint, the failed cells and why, the cells with excess
//! increments, and each expectation's verdict. Computed once per rendering; Markdown,
//! HTML and the terminal only format it.

use crate::input::matrix::Expectation;
use crate::measure::cell::CellResult;
use crate::measure::expect::{Miss, check};
use crate::report::export::RunReport;

/// A cell and its number in the run (1-based, in run order).
pub type Numbered<'a> = (usize, &'a CellResult);

/// One stack and endpoint: its cells in run order.
pub struct Group<'a> {
    /// The stack.
    pub stack: &'a str,
    /// The endpoint.
    pub endpoint: &'a str,
    /// Its cells.
    pub cells: Vec<Numbered<'a>>,
}

/// A cell that could not be measured.
pub struct Failed<'a> {
    /// Its number.
    pub n: usize,
    /// The cell.
    pub cell: &'a CellResult,
    /// The first line of why.
    pub why: &'a str,
}

/// A cell whose balance grew by more increments than its ledger has rows.
pub struct Excess<'a> {
    /// Its number.
    pub n: usize,
    /// The cell.
    pub cell: &'a CellResult,
    /// The increments with no ledger row (`excess_applied`).
    pub increments: i64,
}

/// An expectation and how it fared over the cells measured so far.
pub struct Verdict<'a> {
    /// The expectation.
    pub expectation: &'a Expectation,
    /// Cells it was checked on.
    pub checked: usize,
    /// Where it did not hold.
    pub misses: Vec<Miss>,
}

/// What every view of a run shows.
pub struct Model<'a> {
    /// The run.
    pub run: &'a RunReport<'a>,
    /// The cells by stack and endpoint, in the order each first ran.
    pub groups: Vec<Group<'a>>,
    /// The failed cells, in run order.
    pub failed: Vec<Failed<'a>>,
    /// The cells with excess increments, in run order.
    pub excess: Vec<Excess<'a>>,
    /// Each expectation's verdict, in the matrix's order.
    pub verdicts: Vec<Verdict<'a>>,
}

impl<'a> Model<'a> {
    /// The model of `run`.
    pub fn of(run: &'a RunReport<'a>) -> Model<'a> {
        let numbered = (1..).zip(run.cells);
        let mut groups: Vec<Group> = Vec::new();
        for (n, c) in numbered.clone() {
            let (stack, endpoint) = (c.cell.stack.as_str(), c.cell.endpoint());
            match groups
                .iter_mut()
                .find(|g| g.stack == stack && g.endpoint == endpoint)
            {
                Some(g) => g.cells.push((n, c)),
                None => groups.push(Group {
                    stack,
                    endpoint,
                    cells: vec![(n, c)],
                }),
            }
        }
        let failed = numbered
            .clone()
            .filter(|(_, c)| c.metrics.is_none())
            .map(|(n, cell)| Failed {
                n,
                cell,
                why: cell
                    .error
                    .as_deref()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or(""),
            })
            .collect();
        let excess = numbered
            .filter_map(|(n, cell)| {
                let m = cell.metrics.as_ref()?;
                (m.excess_applied != 0).then_some(Excess {
                    n,
                    cell,
                    increments: m.excess_applied,
                })
            })
            .collect();
        let verdicts = run
            .expect
            .iter()
            .map(|e| {
                let (checked, misses) = check(std::slice::from_ref(e), run.cells, false);
                Verdict {
                    expectation: e,
                    checked,
                    misses,
                }
            })
            .collect();
        Model {
            run,
            groups,
            failed,
            excess,
            verdicts,
        }
    }

    /// How many cells were measured.
    pub fn measured(&self) -> usize {
        self.run.cells.len() - self.failed.len()
    }

    /// The run's heading line: its id, start, shard and cell counts (`code` wraps the id).
    pub fn header(&self, code: fn(&str) -> String) -> String {
        let run = self.run;
        format!(
            "run {}, started {}{}: {} cells, {} measured, {} failed.",
            code(run.run_id),
            run.started,
            run.shard
                .map(|s| format!(", shard {s}"))
                .unwrap_or_default(),
            run.cells.len(),
            self.measured(),
            self.failed.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::matrix::Cell;
    use crate::measure::metrics::CellMetrics;

    fn cell(endpoint: &str, excess: i64) -> CellResult {
        let cell = Cell {
            stack: "s".into(),
            axes: [("endpoint".to_string(), endpoint.to_string())].into(),
        };
        let metrics = CellMetrics {
            excess_applied: excess,
            ..Default::default()
        };
        CellResult::measured(cell, 1, 1, metrics, vec![])
    }

    #[test]
    fn groups_failures_and_excess_keep_run_order_and_numbers() {
        let failed = CellResult::failed(cell("a", 0).cell, 1, 1, "db died\nlogs");
        let cells = [cell("a", 0), cell("b", 2), failed, cell("b", 0)];
        let run = RunReport {
            matrix: "m",
            run_id: "r",
            started: "now",
            shard: Some("1/2"),
            cells: &cells,
            expect: &[],
        };
        let m = Model::of(&run);
        let groups: Vec<(&str, Vec<usize>)> = m
            .groups
            .iter()
            .map(|g| (g.endpoint, g.cells.iter().map(|(n, _)| *n).collect()))
            .collect();
        assert_eq!(groups, [("a", vec![1, 3]), ("b", vec![2, 4])]);
        assert_eq!(m.failed.len(), 1);
        assert_eq!((m.failed[0].n, m.failed[0].why), (3, "db died"));
        assert_eq!(m.excess.len(), 1);
        assert_eq!((m.excess[0].n, m.excess[0].increments), (2, 2));
        assert_eq!(
            m.header(|s| format!("`{s}`")),
            "run `r`, started now, shard 1/2: 4 cells, 3 measured, 1 failed."
        );
    }
}
