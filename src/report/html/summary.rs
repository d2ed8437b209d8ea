//! The report's head: the run, the expectations' verdicts, the failed cells and the
//! excesses, as the report model has them.

use super::*;

/// The header: the run, its cell counts, the expectations' verdicts, the failed cells,
/// excesses, and links to each endpoint's heatmap.
pub(super) fn summary(out: &mut String, model: &Model) {
    let (run, endpoints) = (model.run, &model.groups);
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
        model.measured(),
        model.failed.len()
    );
    expectations(out, model);
    if !model.failed.is_empty() {
        out.push_str("<p><b>Failed cells:</b></p><ul>\n");
        for f in &model.failed {
            let n = f.n;
            let _ = writeln!(
                out,
                "<li><a href=\"#cell-{n}\">cell {n}</a> {}: {}</li>",
                esc(&f.cell.cell.label()),
                esc(f.why)
            );
        }
        out.push_str("</ul>\n");
    }
    for x in &model.excess {
        let n = x.n;
        let _ = writeln!(
            out,
            "<p class=\"flag\">Excess: <a href=\"#cell-{n}\">cell {n}</a> {}: the balance grew \
             by {} increments with no ledger row.</p>",
            esc(&x.cell.cell.label()),
            x.increments
        );
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
pub(super) fn expectations(out: &mut String, model: &Model) {
    if model.verdicts.is_empty() {
        return;
    }
    out.push_str("<p><b>Expectations:</b></p><ul>\n");
    for v in &model.verdicts {
        let (e, checked, misses) = (v.expectation, v.checked, &v.misses);
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
