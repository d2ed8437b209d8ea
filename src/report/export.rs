//! Results as files and tables: one small `Exporter` trait with a CSV, a Markdown and a
//! JSON implementation over the same rows, plus the terminal summary.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use crate::measure::cell::{CellResult, columns, row, text};
use crate::report::model::Model;

/// What exporters render.
pub struct RunReport<'a> {
    /// Matrix name.
    pub matrix: &'a str,
    /// Run id.
    pub run_id: &'a str,
    /// Start time.
    pub started: &'a str,
    /// `K/N` when the run was one shard of a matrix.
    pub shard: Option<&'a str>,
    /// Cells in run order.
    pub cells: &'a [CellResult],
    /// The matrix's expectations (none when unknown).
    pub expect: &'a [crate::input::matrix::Expectation],
}

impl<'a> RunReport<'a> {
    /// The report of a run directory.
    pub fn of(dir: &'a crate::store::results::RunDir) -> RunReport<'a> {
        RunReport {
            matrix: &dir.matrix,
            run_id: &dir.run_id,
            started: &dir.started,
            shard: dir.shard.as_deref(),
            cells: &dir.cells,
            expect: &dir.expect,
        }
    }
}

/// Renders a run in one format.
pub trait Exporter {
    /// The file's bytes.
    fn render(&self, run: &RunReport) -> Result<Vec<u8>>;
}

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// results.csv
    Csv,
    /// results.md
    #[value(name = "md", alias = "markdown")]
    Markdown,
    /// results.json
    Json,
    /// report.html (see `crate::report::html`)
    Html,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [Format::Csv, Format::Markdown, Format::Json, Format::Html];

    /// The file name in a run directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Csv => "results.csv",
            Format::Markdown => "results.md",
            Format::Json => "results.json",
            Format::Html => "report.html",
        }
    }
}

/// The exporter of a format.
pub fn exporter(f: Format) -> Box<dyn Exporter> {
    match f {
        Format::Csv => Box::new(Csv),
        Format::Markdown => Box::new(Markdown),
        Format::Json => Box::new(Json),
        Format::Html => Box::new(crate::report::html::Html::default()),
    }
}

/// Writes every format into `dir`, each through a temporary file and a rename, so a
/// reader never sees half a file.
pub fn write_all(dir: &Path, run: &RunReport) -> Result<()> {
    for f in Format::ALL {
        let bytes = exporter(f).render(run)?;
        crate::store::results::write_atomically(&dir.join(f.file_name()), &bytes)?;
    }
    Ok(())
}

fn text_rows(run: &RunReport) -> (Vec<String>, Vec<Vec<String>>) {
    let cols = columns(run.cells);
    let rows = run
        .cells
        .iter()
        .map(|c| {
            let r = row(c, &cols);
            cols.iter().map(|k| text(k, &r[k])).collect()
        })
        .collect();
    (cols, rows)
}

struct Csv;

impl Exporter for Csv {
    fn render(&self, run: &RunReport) -> Result<Vec<u8>> {
        let (cols, rows) = text_rows(run);
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&cols)?;
        for r in rows {
            w.write_record(&r)?;
        }
        w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
    }
}

struct Markdown;

impl Exporter for Markdown {
    /// What the terminal shows, grouped by stack and endpoint — the axes that vary, acked,
    /// errors by kind, anomalies with the rate and its interval — with the expectations'
    /// verdicts and the failed cells first; every column in a `<details>` block at the end
    /// (CSV and JSON hold them too).
    fn render(&self, run: &RunReport) -> Result<Vec<u8>> {
        let esc = md_escape;
        let model = Model::of(run);
        let mut out = format!(
            "# racy-matrix: {}\n\n{}\n\n",
            esc(run.matrix),
            model.header(|id| format!("`{id}`"))
        );
        out.push_str(&expectations_md(&model));
        if !model.failed.is_empty() {
            out.push_str("**Failed cells:**\n\n");
            for f in &model.failed {
                out.push_str(&format!(
                    "- {}: {}\n",
                    esc(&f.cell.cell.label()),
                    esc(f.why)
                ));
            }
            out.push('\n');
        }
        for x in &model.excess {
            let note = format!(
                "{}: the balance grew by {} increments with no ledger row (excess_applied)",
                x.cell.cell.label(),
                x.increments
            );
            out.push_str(&format!("**Excess:** {}.\n\n", esc(&note)));
        }
        out.push_str(&summary_md(&model, &esc));
        let (cols, rows) = text_rows(run);
        out.push_str(&format!(
            "<details><summary>Every column ({} cells)</summary>\n\n| {} |\n|{}\n",
            rows.len(),
            cols.join(" | "),
            "---|".repeat(cols.len())
        ));
        for r in rows {
            let cells: Vec<String> = r.iter().map(|c| esc(c)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out.push_str("\n</details>\n");
        Ok(out.into_bytes())
    }
}

/// The expectations' verdicts so far, in a line (all held) or a list of misses.
fn expectations_md(model: &Model) -> String {
    if model.verdicts.is_empty() {
        return String::new();
    }
    let checked: usize = model.verdicts.iter().map(|v| v.checked).sum();
    let misses: Vec<_> = model.verdicts.iter().flat_map(|v| &v.misses).collect();
    if misses.is_empty() {
        return format!(
            "**Expectations:** all {} held over {checked} checked cells.\n\n",
            model.verdicts.len()
        );
    }
    let mut out = format!("**Expectations:** {} missed:\n\n", misses.len());
    for m in misses {
        out.push_str(&format!("- {}\n", md_escape(&m.to_string())));
    }
    out.push('\n');
    out
}

/// Text as one Markdown table cell or list item: `|` and newlines would break the table,
/// and `<`, `>` and `&` would pass HTML from a container's log lines to renderers that
/// allow it (a `<script>` in an error must show as text).
fn md_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace('\n', " ")
}

/// The terminal's summary table, one per stack and endpoint (in run order), under a
/// heading each: readable at hundreds of cells.
fn summary_md(model: &Model, esc: &dyn Fn(&str) -> String) -> String {
    let shape = SummaryShape::of(model.run);
    let header = shape.header();
    // within a group the stack and the endpoint are the heading
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != "stack" && header[i] != "endpoint")
        .collect();
    let mut out = String::new();
    for g in &model.groups {
        out.push_str(&format!("### {} · {}\n\n", g.stack, g.endpoint));
        let head: Vec<&str> = keep.iter().map(|&i| header[i].as_str()).collect();
        out.push_str(&format!(
            "| {} |\n|{}\n",
            head.join(" | "),
            "---|".repeat(head.len())
        ));
        for (_, c) in &g.cells {
            let row = shape.row(c);
            let row: Vec<String> = keep
                .iter()
                .map(|&i| esc(row.get(i).map_or("", String::as_str)))
                .collect();
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out.push('\n');
    }
    out
}

struct Json;

impl Exporter for Json {
    fn render(&self, run: &RunReport) -> Result<Vec<u8>> {
        let cols = columns(run.cells);
        let rows: Vec<Value> = run
            .cells
            .iter()
            .map(|c| Value::Object(row(c, &cols)))
            .collect();
        let doc = json!({
            "matrix": run.matrix,
            "run_id": run.run_id,
            "started": run.started,
            "shard": run.shard,
            "routes": routes(run.cells),
            "engines": engines(run.cells),
            "columns": cols,
            "rows": rows,
            "explanations": crate::measure::explain::run_stories(run.cells),
            "cells": run.cells,
        });
        Ok(serde_json::to_vec_pretty(&doc)?)
    }
}

/// The routes the run's requests took, each once, in order (`[]` when no cell says).
fn routes(cells: &[CellResult]) -> Vec<crate::input::route::Route> {
    let set: BTreeSet<_> = cells.iter().filter_map(|c| c.route).collect();
    set.into_iter().collect()
}

/// The engines that measured the run's cells, each once, in order (`[]` when no cell
/// says).
fn engines(cells: &[CellResult]) -> Vec<&str> {
    let set: BTreeSet<_> = cells.iter().filter_map(|c| c.engine.as_deref()).collect();
    set.into_iter().collect()
}

/// The terminal summary: the axes that vary, then the counts and rates that matter.
pub fn terminal_table(run: &RunReport) -> String {
    let shape = SummaryShape::of(run);
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(shape.header());
    for c in run.cells {
        t.add_row(shape.row(c));
    }
    t.to_string()
}

/// Which columns the summary of a run shows.
struct SummaryShape {
    /// The stack column, when the run has several stacks.
    multi_stack: bool,
    /// The endpoint and every other axis whose value varies.
    axes: Vec<String>,
    /// The excess column, when some cell has an excess: rare, and it must stand out.
    excess: bool,
}

impl SummaryShape {
    fn of(run: &RunReport) -> Self {
        let axes = columns(run.cells)
            .into_iter()
            .take_while(|c| c.as_str() != "repetitions")
            .filter(|c| {
                let vals: BTreeSet<Option<&str>> =
                    run.cells.iter().map(|x| x.cell.get(c)).collect();
                c.as_str() == "endpoint" || (c.as_str() != "stack" && vals.len() > 1)
            })
            .collect();
        let stacks: BTreeSet<&String> = run.cells.iter().map(|c| &c.cell.stack).collect();
        SummaryShape {
            multi_stack: stacks.len() > 1,
            axes,
            excess: run
                .cells
                .iter()
                .any(|c| c.metrics.as_ref().is_some_and(|m| m.excess_applied != 0)),
        }
    }

    fn header(&self) -> Vec<String> {
        let mut header: Vec<String> = Vec::new();
        if self.multi_stack {
            header.push("stack".into());
        }
        header.extend(self.axes.iter().cloned());
        header.extend(
            [
                "acked",
                "errors (ser/lock/busy/dup/gw/other)",
                "rows",
                "applied",
                "anomalies",
                "rate [95% CI]",
            ]
            .map(String::from),
        );
        if self.excess {
            header.push("excess".into());
        }
        header.extend(["pids", "spread µs", "skew ms", "p50 ms"].map(String::from));
        header
    }

    fn row(&self, c: &CellResult) -> Vec<String> {
        let mut r: Vec<String> = Vec::new();
        if self.multi_stack {
            r.push(c.cell.stack.clone());
        }
        r.extend(
            self.axes
                .iter()
                .map(|a| c.cell.get(a).unwrap_or("").to_string()),
        );
        let Some(m) = &c.metrics else {
            let reason = c.error.as_deref().unwrap_or("").lines().next();
            r.push(format!("failed: {}", reason.unwrap_or("")));
            return r;
        };
        let ms = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_default();
        r.extend([
            m.acked.to_string(),
            format!(
                "{} ({}/{}/{}/{}/{}/{})",
                m.failed + m.timeouts + m.conn_errors,
                m.serialization_failures,
                m.lock_timeouts,
                m.database_locked,
                m.integrity_errors,
                m.worker_timeouts,
                m.other_errors + m.timeouts + m.conn_errors
            ),
            m.ledger_rows.to_string(),
            m.applied.to_string(),
            // for counters the anomalies are the lost updates
            format!("{} {}", m.anomalies, m.anomaly_kind),
            format!(
                "{:.3} [{:.3}, {:.3}]",
                m.anomaly_rate, m.anomaly_rate_lo, m.anomaly_rate_hi
            ),
        ]);
        if self.excess {
            r.push(m.excess_applied.to_string());
        }
        r.extend([
            m.distinct_pids.map(|n| n.to_string()).unwrap_or_default(),
            ms(m.release_spread_us),
            m.start_skew_ms
                .map(|x| format!("{x:.3}"))
                .unwrap_or_default(),
            ms(m.p50_ms),
        ]);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::matrix::Cell;
    use crate::measure::metrics::{Observation, Outcome, Repetition, RequestRecord};
    use std::collections::BTreeMap;

    fn sample() -> Vec<CellResult> {
        let cell = Cell {
            stack: "django-mysql".into(),
            axes: BTreeMap::from([
                ("endpoint".into(), "atomic_long_delay".into()),
                ("workers".into(), "4".into()),
                ("wait_ms".into(), "0".into()),
                ("delay_ms".into(), "200".into()),
                ("isolation".into(), "serializable".into()),
            ]),
        };
        let rec = RequestRecord {
            repetition: 0,
            index: 0,
            outcome: Outcome::Response,
            status: Some(200),
            sent_unix_ns: 7,
            latency_ms: Some(12.5),
            body: Some(json!({"pid": 9, "t_read": 1})),
            error: None,
        };
        let reps = vec![Repetition {
            before: Observation::default(),
            after: Observation {
                balance: 100,
                ledger_rows: 2,
                ledger_total: 200,
                ..Default::default()
            },
            burst_ms: 30.0,
            records: vec![rec],
        }];
        let metrics = crate::measure::metrics::compute(
            &reps,
            100,
            0,
            &crate::measure::metrics::Check::Counter,
            None,
        );
        vec![
            CellResult::measured(cell.clone(), 1, 1, metrics, reps),
            CellResult::failed(cell, 1, 1, "db died | badly").with_attempts(2),
        ]
    }

    fn report(cells: &[CellResult]) -> RunReport<'_> {
        RunReport {
            expect: &[],
            matrix: "t",
            run_id: "r1",
            started: "now",
            shard: None,
            cells,
        }
    }

    #[test]
    fn csv_header_and_row() {
        let cells = sample();
        let text = String::from_utf8(Csv.render(&report(&cells)).unwrap()).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "stack,endpoint,workers,wait_ms,delay_ms,isolation,repetitions,requests,acked,failed,\
             errors_4xx,errors_5xx,timeouts,conn_errors,serialization_failures,lock_timeouts,\
             worker_timeouts,other_errors,retries,integrity_errors,database_locked,ledger_rows,applied,lost_updates,\
             excess_applied,lost_rate,lost_rate_lo,lost_rate_hi,ack_gap,distinct_pids,release_spread_us,\
             start_skew_ms,p50_ms,p95_ms,max_ms,\
             burst_ms,anomaly_kind,anomalies,anomaly_rate,anomaly_rate_lo,anomaly_rate_hi,status,error"
        );
        let row = lines.next().unwrap();
        assert!(
            row.starts_with(
                "django-mysql,atomic_long_delay,4,0,200,serializable,1,1,1,0,0,0,0,0,0,0,0,0,0,0,0,2,1,1,0,0.5000,"
            ),
            "{row}"
        );
        // one repetition is one burst: Wilson(0.5, 1) = [0.0546, 0.9454], where the
        // pooled Wilson(1, 2) would say [0.0945, 0.9055]
        assert!(
            row.ends_with(",30.0,counter,1,0.5000,0.0546,0.9454,ok,"),
            "{row}"
        );
        assert!(lines.next().unwrap().ends_with(",failed,db died | badly"));
    }

    #[test]
    fn markdown_shows_html_from_logs_as_text() {
        let cell = sample()[0].cell.clone();
        let cells = [CellResult::failed(
            cell,
            1,
            1,
            "<script>alert(1)</script> & <img src=x onerror=alert(2)> | died",
        )];
        let md = String::from_utf8(Markdown.render(&report(&cells)).unwrap()).unwrap();
        assert!(!md.contains("<script") && !md.contains("<img"), "{md}");
        assert!(
            md.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img"),
            "{md}"
        );
    }

    #[test]
    fn markdown_is_the_summary_then_every_column() {
        let cells = sample();
        let text = String::from_utf8(Markdown.render(&report(&cells)).unwrap()).unwrap();
        let (summary, details) = text.split_once("<details>").expect("a details block");
        // the summary: counts, the failed cell with its reason, one group per endpoint
        assert!(
            summary.contains("2 cells, 1 measured, 1 failed."),
            "{summary}"
        );
        assert!(
            summary.contains("- django-mysql atomic_long_delay "),
            "{summary}"
        );
        assert!(summary.contains(": db died \\| badly"), "{summary}");
        assert!(
            summary.contains("### django-mysql · atomic_long_delay"),
            "{summary}"
        );
        let table: Vec<&str> = summary.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(table.len(), 4, "header, rule, two rows: {summary}");
        assert!(
            table[0].starts_with("| acked | errors"),
            "no axis varies: {}",
            table[0]
        );
        assert!(
            table[2].contains("| 1 counter | 0.500 [0.055, 0.945] |"),
            "{}",
            table[2]
        );
        // every column, for those who want them
        let full: Vec<&str> = details.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(full.len(), 4);
        let pipes = |l: &str| l.matches(" | ").count();
        assert_eq!(pipes(full[0]), pipes(full[2]));
        assert!(full[0].contains("lost_rate_lo"));
        assert!(full[3].contains("db died \\| badly"));
    }

    #[test]
    fn json_round_trips_records() {
        let cells = sample();
        let bytes = Json.render(&report(&cells)).unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["rows"][0]["lost_updates"], 1);
        assert_eq!(v["rows"][0]["lost_rate"], 0.5);
        assert_eq!(v["rows"][1]["status"], "failed");
        let back: Vec<CellResult> = serde_json::from_value(v["cells"].clone()).unwrap();
        assert_eq!(back[0].reps[0].records[0].latency_ms, Some(12.5));
        assert_eq!(back[0].reps[0].records[0].pid(), Some(9));
        assert_eq!(back[1].error.as_deref(), Some("db died | badly"));
    }

    #[test]
    fn terminal_summary() {
        let cells = sample();
        let t = terminal_table(&report(&cells));
        assert!(t.contains("atomic_long_delay"));
        assert!(t.contains("0.500 ["), "{t}");
        assert!(t.contains("failed: db died"), "{t}");
        assert!(
            !t.contains("excess"),
            "no column while nothing is in excess: {t}"
        );
    }

    #[test]
    fn an_excess_is_shown_where_people_look() {
        let mut cells = sample();
        let m = cells[0].metrics.as_mut().unwrap();
        (m.excess_applied, m.lost_updates) = (3, -3);
        let t = terminal_table(&report(&cells));
        let header = t
            .lines()
            .find(|l| l.contains("excess"))
            .expect("an excess column");
        let row = t.lines().find(|l| l.contains("atomic_long_delay")).unwrap();
        let col = |line: &str, i: usize| line.split('┆').nth(i).map(|c| c.trim().to_string());
        let at = (0..40).find(|&i| {
            col(header, i)
                .as_deref()
                .is_some_and(|c| c.contains("excess"))
        });
        assert_eq!(at.and_then(|i| col(row, i)).as_deref(), Some("3"), "{t}");
        let md = String::from_utf8(Markdown.render(&report(&cells)).unwrap()).unwrap();
        assert!(
            md.contains("**Excess:** django-mysql atomic_long_delay")
                && md.contains("grew by 3 increments"),
            "{md}"
        );
        assert!(
            !String::from_utf8(Markdown.render(&report(&sample())).unwrap())
                .unwrap()
                .contains("Excess")
        );
    }

    #[test]
    fn skew_to_the_microsecond_spread_to_a_tenth() {
        assert_eq!(text("start_skew_ms", &json!(1.2345)), "1.234");
        assert_eq!(text("release_spread_us", &json!(12.25)), "12.2");
        assert_eq!(text("p50_ms", &json!(12.25)), "12.2");
        assert_eq!(text("start_skew_ms", &Value::Null), "");
    }
}
