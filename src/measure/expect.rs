//! Expectations (`expect:` in a matrix): selectors over axes and bounds over metric
//! columns, checked against the measured cells. A miss makes the run exit 1.

use crate::input::matrix::Expectation;
use crate::measure::cell;
use crate::measure::cell::CellResult;

/// One bound a selected cell did not meet.
#[derive(Clone, Debug, PartialEq)]
pub struct Miss {
    /// Line of the expectation in the matrix file.
    pub line: usize,
    /// The cell, as a label (or a note when the expectation selected nothing).
    pub cell: String,
    /// The metric column.
    pub metric: String,
    /// The bound as written.
    pub bound: String,
    /// What was measured.
    pub measured: String,
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: {}: expected {} {}, measured {}",
            self.line, self.cell, self.metric, self.bound, self.measured
        )
    }
}

/// Whether `value` satisfies `spec`: a comparison (`>0`, `>=2`, `<=0.05`, `<3`, `!=0`,
/// `==1`) against a number, or else equality (numeric when both parse).
pub fn satisfies(value: &str, spec: &str) -> bool {
    let spec = spec.trim();
    for op in [">=", "<=", "!=", "==", ">", "<"] {
        if let Some(rhs) = spec.strip_prefix(op) {
            let (Ok(a), Ok(b)) = (value.trim().parse::<f64>(), rhs.trim().parse::<f64>()) else {
                return op == "!=" && value.trim() != rhs.trim();
            };
            return match op {
                ">=" => a >= b,
                "<=" => a <= b,
                "!=" => a != b,
                "==" => a == b,
                ">" => a > b,
                _ => a < b,
            };
        }
    }
    match (value.trim().parse::<f64>(), spec.parse::<f64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => value.trim() == spec,
    }
}

fn selects(e: &Expectation, c: &CellResult) -> bool {
    e.selector.iter().all(|(axis, wanted)| {
        let v = if axis == "stack" {
            Some(c.cell.stack.as_str())
        } else {
            c.cell.get(axis)
        };
        v.is_some_and(|v| wanted.iter().any(|w| satisfies(v, w)))
    })
}

/// The cells expectation `e` selects.
pub fn selected<'a>(e: &Expectation, cells: &'a [CellResult]) -> Vec<&'a CellResult> {
    cells.iter().filter(|c| selects(e, c)).collect()
}

/// The bounds of `e` that cell `c` did not meet (every bound, when the cell failed);
/// `cols` are the run's columns ([`cell::columns`]).
pub fn misses(e: &Expectation, c: &CellResult, cols: &[String]) -> Vec<Miss> {
    let row = cell::row(c, cols);
    let mut misses = Vec::new();
    for (metric, bound) in &e.bounds {
        let measured = match (&c.error, row.get(metric)) {
            (Some(err), _) => format!("nothing (the cell failed: {err})"),
            (None, Some(v)) if !v.is_null() => cell::text("", v),
            _ => "nothing (no such column)".to_string(),
        };
        let value = row.get(metric).map(|v| v.to_string()).unwrap_or_default();
        if c.error.is_some() || !satisfies(&value, bound) {
            misses.push(Miss {
                line: e.line,
                cell: c.cell.label(),
                metric: metric.clone(),
                bound: bound.clone(),
                measured,
            });
        }
    }
    misses
}

/// Checks every required expectation against the cells (those with `required: false`
/// are only reported, by `claims`); returns how many (expectation, cell) pairs were
/// checked and the misses. With `complete` (the whole matrix ran), an expectation that
/// selects no cell is a miss too, so a typo cannot pass silently.
pub fn check(expect: &[Expectation], cells: &[CellResult], complete: bool) -> (usize, Vec<Miss>) {
    let cols = cell::columns(cells);
    let mut checked = 0;
    let mut misses = Vec::new();
    for e in expect.iter().filter(|e| e.required) {
        let selected = selected(e, cells);
        if selected.is_empty() && complete {
            misses.push(Miss {
                line: e.line,
                cell: "no cell".into(),
                metric: "cells selected".into(),
                bound: ">0".into(),
                measured: "0".into(),
            });
        }
        for c in selected {
            checked += 1;
            misses.extend(self::misses(e, c, &cols));
        }
    }
    (checked, misses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expectation_not_required_is_not_checked() {
        let cell = CellResult::failed(
            crate::input::matrix::Cell {
                stack: "s".into(),
                axes: [("endpoint".to_string(), "e".to_string())].into(),
            },
            1,
            1,
            "it failed",
        );
        let mut e = Expectation {
            selector: Default::default(),
            bounds: [("lost_updates".to_string(), "0".to_string())].into(),
            claim: None,
            source: None,
            required: true,
            line: 4,
        };
        let (checked, misses) = check(std::slice::from_ref(&e), std::slice::from_ref(&cell), true);
        assert_eq!((checked, misses.len()), (1, 1));
        e.required = false;
        let (checked, misses) = check(&[e], &[cell], true);
        assert_eq!((checked, misses.len()), (0, 0));
    }

    #[test]
    fn comparisons() {
        assert!(satisfies("0", "0"));
        assert!(satisfies("0.0", "0"));
        assert!(!satisfies("1", "0"));
        assert!(satisfies("3", ">0"));
        assert!(!satisfies("0", ">0"));
        assert!(satisfies("0.05", "<=0.05"));
        assert!(!satisfies("0.0501", "<=0.05"));
        assert!(satisfies("4", ">=2"));
        assert!(satisfies("2", "!=0"));
        assert!(satisfies("read_committed", "read_committed"));
        assert!(!satisfies("serializable", "read_committed"));
        assert!(satisfies("serializable", "!=read_committed"));
        assert!(!satisfies("abc", ">1"));
    }
}
