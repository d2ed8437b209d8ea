//! `racy-matrix plan`: the cells in run order, which services each one recreates, and an
//! estimated duration, computed from the files alone (no engine calls), or the estimates
//! of a matrix's shards.

use std::collections::BTreeSet;
use std::fmt::Write;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::input::matrix::{Cell, Matrix, Shard};
use crate::input::setup::{Setup, Shape};
use crate::plan::cost::{Costs, Timings, setup};
use crate::plan::shard::{self, Estimate};

/// The plan as text: a table of cells and a summary line.
pub fn render(m: &Matrix, cells: &[Cell], costs: &Costs) -> String {
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
    let mut prev = None;
    for (i, c) in cells.iter().enumerate() {
        let mut row = vec![(i + 1).to_string(), c.stack.clone()];
        row.extend(varying.iter().map(|a| c.get(a).unwrap_or("").to_string()));
        let (kind, steps) = setup(prev, c, costs.catalog);
        let what = match kind {
            Setup::Start => {
                starts += 1;
                "start stack".to_string()
            }
            _ => steps.join("; "),
        };
        let est = costs.setup_s(prev, c) + costs.work_s(c);
        total += est;
        row.push(what);
        // a measured time is marked, so that the model's guesses stand apart
        let mark = if costs.is_measured(c) { "*" } else { "" };
        row.push(format!("{est:.1}{mark}"));
        table.add_row(row);
        prev = Some(c);
    }
    let mut out = format!("{table}\n");
    let _ = writeln!(
        out,
        "{} cells x {} repetitions x {} requests; {} stack starts, {} restarts; estimated {} (images present)",
        cells.len(),
        m.repetitions,
        m.requests,
        starts,
        crate::input::matrix::restarts(cells, costs.catalog),
        human(total)
    );
    out
}

/// `plan --shard K/N`: the shard's cells as [`render`] shows them, then the shard's
/// estimate beside those of the other shards.
pub fn render_shard(m: &Matrix, cells: &[Cell], s: Shard, costs: &Costs) -> String {
    let all = shard::estimates(cells, s.n, costs);
    let mine = shard::shard(cells, s.k, s.n, costs);
    let mut out = render(m, &mine, costs);
    let (mean, max) = mean_max(&all);
    let _ = writeln!(
        out,
        "shard {s}: estimated {}; the {} shards (balanced by cost): mean {}, slowest {}, max/mean {:.2}",
        human(all[s.k - 1].seconds),
        s.n,
        human(mean),
        human(max),
        shard::max_over_mean(&all)
    );
    out
}

/// `plan --shards N [--parallel P]`: every shard's cells, setups and estimate, and the
/// slowest over the mean, against the split by count; with P > 1 also each shard's wall
/// time on P stack instances (the slowest of its P slices, split as `run --parallel`
/// splits; this assumes the runner has the cores for P instances, so that they do not
/// slow each other).
pub fn render_shards(
    m: &Matrix,
    cells: &[Cell],
    n: usize,
    parallel: usize,
    costs: &Costs,
) -> String {
    let all = shard::estimates(cells, n, costs);
    let walls: Vec<f64> = (1..=n)
        .map(|k| {
            let mine = shard::shard(cells, k, n, costs);
            shard::estimates(&mine, parallel.clamp(1, mine.len().max(1)), costs)
                .iter()
                .map(|e| e.seconds)
                .fold(0.0, f64::max)
        })
        .collect();
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header([
        "shard",
        "cells",
        "starts",
        "restarts",
        "estimated",
        "est. s",
        "/ mean",
        "wall",
    ]);
    let (mean, max) = mean_max(&all);
    for (k, e) in all.iter().enumerate() {
        table.add_row([
            format!("{}/{n}", k + 1),
            e.cells.to_string(),
            e.starts.to_string(),
            e.restarts.to_string(),
            human(e.seconds),
            format!("{:.0}", e.seconds),
            format!("{:.3}", if mean > 0.0 { e.seconds / mean } else { 1.0 }),
            human(walls[k]),
        ]);
    }
    let by_count = shard::max_over_mean(&shard::count_estimates(cells, n, costs));
    let mut out = format!("{table}\n");
    let _ = writeln!(
        out,
        "{} cells of {} in {n} shards: mean {}, slowest {}; max/mean {:.3} (split by count: {:.3})",
        cells.len(),
        m.name,
        human(mean),
        human(max),
        shard::max_over_mean(&all),
        by_count
    );
    let _ = writeln!(
        out,
        "slowest shard's wall time on {parallel} stack instance(s) (run --parallel {parallel}): {}",
        human(walls.iter().copied().fold(0.0, f64::max))
    );
    out
}

/// What the measurements given with `--timings` changed: how many cells they cover and
/// the fitted constants; empty without `--timings`.
pub fn render_timings(cells: &[Cell], timings: &Timings, costs: &Costs) -> String {
    if timings.sources.is_empty() {
        return String::new();
    }
    let measured = cells.iter().filter(|c| costs.is_measured(c)).count();
    let mut out = format!(
        "timings: {measured} of {} cells measured in {} (marked *); the rest estimated",
        cells.len(),
        crate::plan::cost::sources_label(&timings.sources)
    );
    if timings.untimed > 0 {
        let _ = write!(out, "; {} cells there had no duration", timings.untimed);
    }
    out.push('\n');
    let f = &costs.fit;
    if f.cells == 0 {
        out.push_str("timings: no durations to fit the model to; its constants are the defaults\n");
        return out;
    }
    let _ = writeln!(
        out,
        "model fitted: start {:.1} s ({} starts), restart {:.1} s ({}), with the database \
         {:.1} s ({}), live change {:.1} s ({}); a repetition {:.2} x its burst estimate + \
         {:.2} s ({} cells)",
        f.model.start_s,
        f.setups[0],
        f.model.restart_s,
        f.setups[1],
        f.model.restart_database_s,
        f.setups[2],
        f.model.live_s,
        f.setups[3],
        f.model.burst_scale,
        f.model.repetition_s,
        f.cells
    );
    let factors: Vec<String> = f
        .endpoints
        .iter()
        .filter(|(_, e)| e.shape != Shape::Parallel || (e.factor - 1.0).abs() >= 0.1)
        .map(|(name, e)| match e.shape {
            Shape::Parallel => format!("{name} {:.2}", e.factor),
            other => format!("{name} {:.2} ({})", e.factor, other.name()),
        })
        .collect();
    if !factors.is_empty() {
        let _ = writeln!(
            out,
            "model fitted: bursts of {} endpoints in their own shape and factor: {}",
            factors.len(),
            factors.join(", ")
        );
    }
    out
}

fn mean_max(all: &[Estimate]) -> (f64, f64) {
    let mean = all.iter().map(|e| e.seconds).sum::<f64>() / all.len().max(1) as f64;
    let max = all.iter().map(|e| e.seconds).fold(0.0, f64::max);
    (mean, max)
}

/// Seconds as `5s`, `1m15s`, `1h02m`.
pub fn human(s: f64) -> String {
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
