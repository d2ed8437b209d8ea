//! The report's head: the run, the expectations' verdicts and the failed cells; and the
//! grouping of the cells by stack and endpoint that the rest follows.

use super::*;

/// One stack and endpoint: its cells in run order.
pub(super) struct Endpoint<'a> {
    pub(super) stack: &'a str,
    pub(super) endpoint: &'a str,
    pub(super) cells: Vec<Numbered<'a>>,
}

/// The run's cells grouped by stack and endpoint, in the order they first ran.
pub(super) fn endpoints(cells: &[CellResult]) -> Vec<Endpoint<'_>> {
    let mut out: Vec<Endpoint> = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        let (stack, endpoint) = (c.cell.stack.as_str(), c.cell.endpoint());
        match out
            .iter_mut()
            .find(|e| e.stack == stack && e.endpoint == endpoint)
        {
            Some(e) => e.cells.push((i + 1, c)),
            None => out.push(Endpoint {
                stack,
                endpoint,
                cells: vec![(i + 1, c)],
            }),
        }
    }
    out
}

/// The header: the run, its cell counts, the expectations' verdicts, the failed cells,
/// excesses, and links to each endpoint's heatmap.
pub(super) fn summary(out: &mut String, run: &RunReport, endpoints: &[Endpoint]) {
    let failed: Vec<Numbered> = (1..)
        .zip(run.cells)
        .filter(|(_, c)| c.metrics.is_none())
        .collect();
    let _ = write!(
        out,
        "<h1>racy-matrix: {}</h1>\n<p class=\"meta\">run <code>{}</code>, started {}{}: \
         <b>{} cells</b>, {} measured, {} failed.</p>\n",
        esc(run.matrix),
        esc(run.run_id),
        esc(run.started),
        run.shard
            .map(|s| format!(", shard {}", esc(s)))
            .unwrap_or_default(),
        run.cells.len(),
        run.cells.len() - failed.len(),
        failed.len()
    );
    expectations(out, run);
    if !failed.is_empty() {
        out.push_str("<p><b>Failed cells:</b></p><ul>\n");
        for (n, c) in &failed {
            let _ = writeln!(
                out,
                "<li><a href=\"#cell-{n}\">cell {n}</a> {}: {}</li>",
                esc(&c.cell.label()),
                esc(first_line(c))
            );
        }
        out.push_str("</ul>\n");
    }
    for (n, c) in (1..).zip(run.cells) {
        if let Some(m) = c.metrics.as_ref().filter(|m| m.excess_applied != 0) {
            let _ = writeln!(
                out,
                "<p class=\"flag\">Excess: <a href=\"#cell-{n}\">cell {n}</a> {}: the balance grew \
                 by {} increments with no ledger row.</p>",
                esc(&c.cell.label()),
                m.excess_applied
            );
        }
    }
    out.push_str("<p class=\"meta\">Heatmaps: ");
    for (i, e) in endpoints.iter().enumerate() {
        let _ = write!(
            out,
            "<a href=\"#ep-{}\">{} · {}</a>{}",
            i + 1,
            esc(e.stack),
            esc(e.endpoint),
            if i + 1 < endpoints.len() { ", " } else { "" }
        );
    }
    out.push_str("</p>\n");
}

/// Each expectation with its verdict over the cells measured so far.
pub(super) fn expectations(out: &mut String, run: &RunReport) {
    if run.expect.is_empty() {
        return;
    }
    out.push_str("<p><b>Expectations:</b></p><ul>\n");
    for e in run.expect {
        let (checked, misses) =
            crate::measure::expect::check(std::slice::from_ref(e), run.cells, false);
        let sel: Vec<String> = e
            .selector
            .iter()
            .map(|(a, v)| format!("{a}={}", v.join("|")))
            .collect();
        let bounds: Vec<String> = e.bounds.iter().map(|(m, b)| format!("{m} {b}")).collect();
        let what = format!(
            "line {}: where {} → {}",
            e.line,
            if sel.is_empty() {
                "every cell".to_string()
            } else {
                sel.join(", ")
            },
            bounds.join(", ")
        );
        if misses.is_empty() {
            let _ = writeln!(
                out,
                "<li><code>{}</code> <span class=\"held\">held</span> over {checked} cells</li>",
                esc(&what)
            );
            continue;
        }
        let _ = writeln!(
            out,
            "<li><code>{}</code> <span class=\"missed\">missed</span> ({} of {checked}):<ul>",
            esc(&what),
            misses.len()
        );
        for m in misses {
            let _ = writeln!(out, "<li>{}</li>", esc(&m.to_string()));
        }
        out.push_str("</ul></li>\n");
    }
    out.push_str("</ul>\n");
}
