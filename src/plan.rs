//! `racy-matrix plan`: the cells in run order, which services each one recreates, and an
//! estimated duration, computed from the files alone (no engine calls).

use std::collections::BTreeSet;
use std::fmt::Write;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::matrix::{Cell, Matrix, parse_delay};
use crate::stack::StackCatalog;

/// Seconds to bring a stack up with images present.
const STACK_START_S: f64 = 12.0;
/// Seconds to apply a live change (Gunicorn workers grown or shrunk in place).
const LIVE_S: f64 = 1.0;
/// Seconds to recreate a service and wait until it is ready again.
const RESTART_S: f64 = 3.0;
/// Seconds of reset, observation and quiescence per repetition.
const REPETITION_OVERHEAD_S: f64 = 0.1;

/// Estimated seconds of one repetition's burst: launches spread by `wait_ms`, then the
/// requests served `workers` at a time at the mean delay.
pub fn burst_estimate_s(m: &Matrix, cell: &Cell) -> f64 {
    let wait = cell.wait_ms() as f64 * (m.requests.saturating_sub(1)) as f64;
    let (lo, hi) = cell
        .get("delay_ms")
        .and_then(|d| parse_delay(d).ok())
        .unwrap_or((0, 0));
    let mean = (lo + hi) as f64 / 2.0;
    let workers: f64 = cell
        .get("workers")
        .and_then(|w| w.parse().ok())
        .unwrap_or(1.0_f64)
        .max(1.0);
    let rounds = (m.requests as f64 / workers).ceil();
    (wait + rounds * mean) / 1000.0 + 0.05
}

/// What must change before each cell: `None` for a fresh stack start, else the services
/// whose variables changed ("recreate app") and the live changes ("workers 1->4 in app").
pub fn transitions(cells: &[Cell], catalog: &StackCatalog) -> Vec<Option<Vec<String>>> {
    let mut out = Vec::with_capacity(cells.len());
    let mut prev: Option<&Cell> = None;
    for c in cells {
        match prev {
            Some(p) if p.stack == c.stack => {
                let s = &catalog.stacks[&c.stack];
                let mut steps = Vec::new();
                let recreated = s.services_changed(&p.axes, &c.axes);
                if !recreated.is_empty() {
                    steps.push(format!("recreate {}", recreated.join(", ")));
                }
                for l in s.live_changes(&p.axes, &c.axes).unwrap_or_default() {
                    steps.push(format!(
                        "{} {}->{} in {}",
                        l.var, l.from, l.to, l.live.service
                    ));
                }
                out.push(Some(steps));
            }
            _ => out.push(None),
        }
        prev = Some(c);
    }
    out
}

/// The plan as text: a table of cells and a summary line.
pub fn render(m: &Matrix, cells: &[Cell], catalog: &StackCatalog) -> String {
    let varying: Vec<String> = {
        let mut names = BTreeSet::new();
        for c in cells {
            names.extend(c.axes.keys().cloned());
        }
        names
            .into_iter()
            .filter(|n| {
                let vals: BTreeSet<_> = cells.iter().map(|c| c.get(n)).collect();
                vals.len() > 1
            })
            .collect()
    };
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    let mut header = vec!["#".to_string(), "stack".to_string()];
    header.extend(varying.iter().cloned());
    header.push("before it".into());
    header.push("est. s".into());
    table.set_header(header);
    let mut total = 0.0;
    let mut starts = 0;
    for (i, (c, t)) in cells.iter().zip(transitions(cells, catalog)).enumerate() {
        let mut row = vec![(i + 1).to_string(), c.stack.clone()];
        row.extend(varying.iter().map(|a| c.get(a).unwrap_or("").to_string()));
        let (what, cost) = match t {
            None => {
                starts += 1;
                ("start stack".to_string(), STACK_START_S)
            }
            Some(s) if s.is_empty() => (String::new(), 0.0),
            Some(s) if s.iter().all(|x| !x.starts_with("recreate")) => (s.join("; "), LIVE_S),
            Some(s) => (s.join("; "), RESTART_S),
        };
        let est = cost + m.repetitions as f64 * (burst_estimate_s(m, c) + REPETITION_OVERHEAD_S);
        total += est;
        row.push(what);
        row.push(format!("{est:.1}"));
        table.add_row(row);
    }
    let mut out = format!("{table}\n");
    let _ = writeln!(
        out,
        "{} cells x {} repetitions x {} requests; {} stack starts, {} restarts; estimated {} (images present)",
        cells.len(),
        m.repetitions,
        m.requests,
        starts,
        crate::matrix::restarts(cells, catalog),
        human(total)
    );
    out
}

fn human(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(5.2), "5s");
        assert_eq!(human(75.0), "1m15s");
        assert_eq!(human(3725.0), "1h02m");
    }
}
