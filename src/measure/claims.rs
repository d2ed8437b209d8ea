//! `racy-matrix claims`: the expectations of measured runs that state a claim in words
//! (`claim:` and `source:` in a matrix's `expect`), each with its verdict over the cells
//! it selects and the anomaly rate of those cells pooled, with its interval.
//!
//! A verdict is `held` when every selected cell met every bound, `did not hold` when none
//! did, and `held only on …` when the cells that held differ from the others by one axis
//! (the stack first): the claim is true of some databases or settings only. The rate is
//! what the cells' anomalies say, whatever the bound is about, so a claim about
//! timeouts shows the lost updates beside its own column.

use crate::input::matrix::Expectation;
use crate::measure::cell;
use crate::measure::cell::CellResult;
use crate::measure::expect;
use crate::measure::metrics::{self, Check};

/// How a claim fared over the cells it selects.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Every selected cell met every bound.
    Held,
    /// No selected cell did.
    DidNotHold,
    /// The cells that met the bounds, named by the one axis that sets them apart
    /// (`stack django-postgres`).
    HeldOnlyOn(String),
    /// Some cells met the bounds, and no single axis tells them from the others; `not`
    /// labels the cells that did not.
    HeldIn {
        held: usize,
        of: usize,
        not: Vec<String>,
    },
    /// The runs have no cell the claim selects.
    NotMeasured,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Held => write!(f, "held"),
            Verdict::DidNotHold => write!(f, "did not hold"),
            Verdict::HeldOnlyOn(on) => write!(f, "held only on {on}"),
            Verdict::HeldIn { held, of, not } if not.len() <= 3 => {
                write!(f, "held in {held} of {of} cells, not in {}", not.join("; "))
            }
            Verdict::HeldIn { held, of, .. } => write!(f, "held in {held} of {of} cells"),
            Verdict::NotMeasured => write!(f, "not measured"),
        }
    }
}

/// One claim and what the runs measured of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// Where the claim comes from (`seed 003`); empty when the matrix does not say.
    pub source: String,
    /// The claim in words.
    pub claim: String,
    /// Its bounds as the matrix writes them (`anomalies 0; anomaly_rate_lo >=0.5`).
    pub bounds: String,
    /// What was measured of each bound's column over the selected cells: a count summed,
    /// a rate as its range.
    pub measured: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The anomaly kind of the selected cells (`counter`, `unique`, `task`), when they
    /// share one.
    pub kind: Option<String>,
    /// Anomalies and what they are out of, pooled over the selected cells.
    pub anomalies: (u64, u64),
    /// The 95% interval of the pooled rate, over the bursts of every selected cell.
    pub interval: (f64, f64),
    /// Cells selected.
    pub cells: usize,
}

/// The claims of `expect` (those with a `claim:`) against `cells`, measured with `amount`
/// per request (the matrix's `amount`).
pub fn claims(expect: &[Expectation], cells: &[CellResult], amount: i64) -> Vec<Claim> {
    let cols = cell::columns(cells);
    expect
        .iter()
        .filter_map(|e| {
            let claim = e.claim.clone()?;
            let selected = expect::selected(e, cells);
            let held: Vec<bool> = selected
                .iter()
                .map(|c| expect::misses(e, c, &cols).is_empty())
                .collect();
            let (kind, bursts) = pooled_bursts(&selected, amount);
            Some(Claim {
                source: e.source.clone().unwrap_or_default(),
                claim,
                bounds: e
                    .bounds
                    .iter()
                    .map(|(m, b)| format!("{m} {b}"))
                    .collect::<Vec<_>>()
                    .join("; "),
                measured: measured(e, &selected, &cols),
                verdict: verdict(&selected, &held),
                kind,
                anomalies: bursts
                    .iter()
                    .fold((0, 0), |(k, n), &(bk, bn)| (k + bk, n + bn)),
                interval: metrics::cluster_wilson(&bursts),
                cells: selected.len(),
            })
        })
        .collect()
}

/// Every burst of the measured cells as `(anomalies, out of)`, when the cells share one
/// anomaly kind; the kind with them. Cells of different kinds do not pool: no kind, no
/// bursts.
fn pooled_bursts(cells: &[&CellResult], amount: i64) -> (Option<String>, Vec<(u64, u64)>) {
    let kinds: std::collections::BTreeSet<&str> = cells
        .iter()
        .filter_map(|c| c.metrics.as_ref())
        .map(|m| m.anomaly_kind.as_str())
        .collect();
    let [kind] = kinds.into_iter().collect::<Vec<_>>()[..] else {
        return (None, Vec::new());
    };
    let Some(check) = Check::from_name(kind) else {
        return (None, Vec::new());
    };
    let bursts = cells
        .iter()
        .filter(|c| c.metrics.is_some())
        .flat_map(|c| metrics::anomaly_bursts(&c.reps, amount, &check))
        .collect();
    (Some(kind.to_string()), bursts)
}

/// The verdict of cells of which `held[i]` met every bound.
fn verdict(cells: &[&CellResult], held: &[bool]) -> Verdict {
    let n_held = held.iter().filter(|h| **h).count();
    if cells.is_empty() {
        return Verdict::NotMeasured;
    }
    if n_held == cells.len() {
        return Verdict::Held;
    }
    if n_held == 0 {
        return Verdict::DidNotHold;
    }
    // An axis whose values in the cells that held are none of its values in the others.
    let mut axes = vec!["stack".to_string()];
    axes.extend(cells[0].cell.axes.keys().cloned());
    let value = |c: &CellResult, axis: &str| -> String {
        if axis == "stack" {
            c.cell.stack.clone()
        } else {
            c.cell.get(axis).unwrap_or_default().to_string()
        }
    };
    for axis in axes {
        let mut yes = std::collections::BTreeSet::new();
        let mut no = std::collections::BTreeSet::new();
        for (c, h) in cells.iter().zip(held) {
            if *h { &mut yes } else { &mut no }.insert(value(c, &axis));
        }
        if yes.is_disjoint(&no) {
            let values = yes.into_iter().collect::<Vec<_>>().join(", ");
            return Verdict::HeldOnlyOn(format!("{axis} {values}"));
        }
    }
    Verdict::HeldIn {
        held: n_held,
        of: cells.len(),
        not: cells
            .iter()
            .zip(held)
            .filter(|(_, h)| !**h)
            .map(|(c, _)| c.cell.label())
            .collect(),
    }
}

/// Each bound's column over the cells: integers summed (`worker_timeouts 24`), other
/// numbers as their range (`anomaly_rate_lo 0.52–0.89`); failed cells left out.
fn measured(e: &Expectation, cells: &[&CellResult], cols: &[String]) -> String {
    let rows: Vec<_> = cells
        .iter()
        .filter(|c| c.error.is_none())
        .map(|c| cell::row(c, cols))
        .collect();
    e.bounds
        .keys()
        .map(|metric| {
            let values: Vec<&serde_json::Value> = rows
                .iter()
                .filter_map(|r| r.get(metric))
                .filter(|v| v.is_number())
                .collect();
            if values.is_empty() {
                return format!("{metric} —");
            }
            if values.iter().all(|v| v.is_i64() || v.is_u64()) {
                let sum: i64 = values.iter().filter_map(|v| v.as_i64()).sum();
                return format!("{metric} {sum}");
            }
            let xs: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if format!("{lo:.2}") == format!("{hi:.2}") {
                format!("{metric} {lo:.2}")
            } else {
                format!("{metric} {lo:.2}–{hi:.2}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The claims as a Markdown table: source, claim, verdict, the pooled rate with its
/// interval, and what the bounds' columns measured.
pub fn markdown(claims: &[Claim]) -> String {
    let mut out = String::from(
        "| source | claim | verdict | anomalies, rate [95% CI] | measured (bound) |\n|---|---|---|---|---|\n",
    );
    for c in claims {
        let rate = match &c.kind {
            Some(kind) if c.anomalies.1 > 0 => format!(
                "{} of {} {}, {:.2} [{:.2}, {:.2}]",
                c.anomalies.0,
                c.anomalies.1,
                match kind.as_str() {
                    "counter" => "lost".to_string(),
                    "unique" => "duplicates".to_string(),
                    "task" => "tasks missed".to_string(),
                    "start" => "starts failed".to_string(),
                    invariant => format!("violated {invariant}"),
                },
                c.anomalies.0 as f64 / c.anomalies.1 as f64,
                c.interval.0,
                c.interval.1
            ),
            _ => "—".to_string(),
        };
        let cell = |s: &str| s.replace('|', "\\|");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} ({}) |\n",
            cell(&c.source),
            cell(&c.claim),
            c.verdict,
            rate,
            cell(&c.measured),
            cell(&c.bounds)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::matrix::Cell;
    use crate::measure::metrics::{Observation, Repetition};
    use std::collections::BTreeMap;

    const AMOUNT: i64 = 100;

    /// A counter burst of 8 that lost `k`.
    fn burst(k: i64) -> Repetition {
        Repetition {
            before: Observation::default(),
            after: Observation {
                balance: (8 - k) * AMOUNT,
                ledger_rows: 8,
                ledger_total: 8 * AMOUNT,
                extra: BTreeMap::new(),
            },
            burst_ms: 1.0,
            records: vec![],
        }
    }

    fn cell(stack: &str, workers: u32, lost: &[i64]) -> CellResult {
        let reps: Vec<Repetition> = lost.iter().map(|&k| burst(k)).collect();
        CellResult::measured(
            Cell {
                stack: stack.into(),
                axes: BTreeMap::from([
                    ("endpoint".to_string(), "e".to_string()),
                    ("workers".to_string(), workers.to_string()),
                ]),
            },
            reps.len() as u32,
            8,
            metrics::compute(&reps, AMOUNT, 0, &Check::Counter, None),
            reps,
        )
    }

    fn expectation(selector: &[(&str, &str)], bounds: &[(&str, &str)]) -> Expectation {
        Expectation {
            selector: selector
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect(),
            bounds: bounds
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            claim: Some("nothing is lost".into()),
            source: Some("seed 001".into()),
            required: true,
            line: 3,
        }
    }

    fn run() -> Vec<CellResult> {
        vec![
            cell("django-mysql", 1, &[0, 0, 0, 0]),
            cell("django-postgres", 1, &[0, 0, 0, 0]),
            cell("django-mysql", 4, &[6, 6, 0, 0]),
            cell("django-postgres", 4, &[0, 0, 0, 0]),
        ]
    }

    #[test]
    fn verdicts_name_where_a_claim_held() {
        let cells = run();
        let one = expectation(&[("workers", "1")], &[("lost_updates", "0")]);
        let four = expectation(&[("workers", "4")], &[("lost_updates", "0")]);
        let lossy = expectation(&[("workers", "4")], &[("lost_updates", ">0")]);
        let none = expectation(&[("workers", "9")], &[("lost_updates", "0")]);
        let all = expectation(&[], &[("lost_updates", "0")]);
        let c = claims(&[one, four, lossy, none, all], &cells, AMOUNT);
        assert_eq!(c[0].verdict, Verdict::Held);
        // the MariaDB cell lost 12: only PostgreSQL's kept the claim
        assert_eq!(
            c[1].verdict,
            Verdict::HeldOnlyOn("stack django-postgres".into())
        );
        assert_eq!(
            c[2].verdict,
            Verdict::HeldOnlyOn("stack django-mysql".into())
        );
        assert_eq!(c[3].verdict, Verdict::NotMeasured);
        // over all four cells neither the stack nor the worker count tells the one cell
        // that lost from the three that did not: it is named
        assert_eq!(
            c[4].verdict,
            Verdict::HeldIn {
                held: 3,
                of: 4,
                not: vec!["django-mysql e workers=4".into()]
            }
        );
        assert_eq!(
            c[4].verdict.to_string(),
            "held in 3 of 4 cells, not in django-mysql e workers=4"
        );
        let none_held = expectation(&[("workers", "4")], &[("lost_updates", ">100")]);
        let c = claims(&[none_held], &cells, AMOUNT);
        assert_eq!(c[0].verdict, Verdict::DidNotHold);
    }

    #[test]
    fn no_single_axis_names_the_cells_that_did_not_hold() {
        let cells = vec![
            cell("a", 1, &[0, 0]),
            cell("a", 4, &[1, 0]),
            cell("b", 1, &[1, 0]),
            cell("b", 4, &[0, 0]),
        ];
        let e = expectation(&[], &[("lost_updates", "0")]);
        let c = claims(&[e], &cells, AMOUNT);
        let not = vec!["a e workers=4".to_string(), "b e workers=1".to_string()];
        assert_eq!(
            c[0].verdict,
            Verdict::HeldIn {
                held: 2,
                of: 4,
                not
            }
        );
        assert_eq!(
            c[0].verdict.to_string(),
            "held in 2 of 4 cells, not in a e workers=4; b e workers=1"
        );
        // more than three cells that did not hold are only counted
        let many = Verdict::HeldIn {
            held: 1,
            of: 5,
            not: vec!["x".into(); 4],
        };
        assert_eq!(many.to_string(), "held in 1 of 5 cells");
    }

    #[test]
    fn the_rate_pools_every_burst_of_the_selected_cells() {
        let cells = run();
        let e = expectation(&[("workers", "4")], &[("lost_updates", "0")]);
        let c = &claims(&[e], &cells, AMOUNT)[0];
        // 12 lost in 8 bursts of 8: 6, 6, 0, 0 and 0, 0, 0, 0
        assert_eq!(c.anomalies, (12, 64));
        assert_eq!(c.kind.as_deref(), Some("counter"));
        assert_eq!(c.cells, 2);
        // by hand: p = 12/64 = 0.1875; Σ(k_i − p·8)² = 2·(6−1.5)² + 6·1.5² = 54, times
        // m/(m−1) = 8/7, over n² = 4096: var = 0.015067; the binomial variance is
        // p(1−p)/64 = 0.0023804, deff = 6.3296, n_eff = 64/6.3296 = 10.111; Wilson of
        // x = 1.8959 in n = 10.111 at z = 1.96: centre (x + z²/2)/(n + z²) = 0.2735,
        // half-width z·√(p(1−p)n + z²/4)/(n + z²) = 0.2221, so [0.0514, 0.4957].
        let (lo, hi) = c.interval;
        assert!((lo - 0.0514).abs() < 0.0005, "{lo}");
        assert!((hi - 0.4957).abs() < 0.0005, "{hi}");
        assert_eq!(
            c.interval,
            metrics::cluster_wilson(&[
                (6, 8),
                (6, 8),
                (0, 8),
                (0, 8),
                (0, 8),
                (0, 8),
                (0, 8),
                (0, 8)
            ])
        );
        assert_eq!(c.measured, "lost_updates 12");
        assert_eq!(c.bounds, "lost_updates 0");
    }

    #[test]
    fn rates_show_as_their_range_and_failed_cells_as_not_held() {
        let mut cells = run();
        cells[1].error = Some("service app exited with code 1".into());
        cells[1].metrics = None;
        let e = expectation(&[("workers", "1")], &[("lost_rate", "<=0.5")]);
        let c = &claims(&[e], &cells, AMOUNT)[0];
        assert_eq!(c.verdict, Verdict::HeldOnlyOn("stack django-mysql".into()));
        assert_eq!(c.measured, "lost_rate 0.00");
        let e = expectation(&[], &[("lost_rate_hi", "<1")]);
        let c = &claims(&[e], &cells, AMOUNT)[0];
        assert!(
            c.measured.starts_with("lost_rate_hi 0.11–0."),
            "{}",
            c.measured
        );
    }

    #[test]
    fn the_table_has_a_row_per_claim_and_escapes_pipes() {
        let cells = run();
        let mut e = expectation(&[("workers", "4")], &[("lost_updates", ">0")]);
        e.claim = Some("a | b".into());
        let table = markdown(&claims(&[e], &cells, AMOUNT));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert_eq!(
            lines[2],
            "| seed 001 | a \\| b | held only on stack django-mysql | 12 of 64 lost, 0.19 [0.05, 0.50] | lost_updates 12 (lost_updates >0) |"
        );
    }
}
