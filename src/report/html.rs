//! The HTML report (`report.html`): one self-contained file — inline CSS and SVG drawn
//! here, no script, nothing fetched — that a browser shows offline. A summary (the
//! run, the expectations' verdicts, the failed cells), then per stack and endpoint a
//! heatmap of the anomaly rate over the two axes that vary most, each heatmap cell linked
//! to its cell's drill-down: the counts, a timeline of the first bursts (one bar per
//! request, from the server's read to its write) and the explanations of its losses.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::Result;

use crate::measure::cell::CellResult;
use crate::measure::explain::{self, BurstStory, Loss};
use crate::measure::metrics::{self, CellMetrics, Check, Outcome, Repetition, RequestRecord};
use crate::report::export::{Exporter, RunReport};
use crate::report::model::{Group as Endpoint, Model, Numbered};

mod cell;
mod heatmap;
mod summary;

use cell::*;
use heatmap::*;
use summary::*;

/// Bursts drawn as a timeline per cell, in a run of at most [`LARGE_RUN`] cells.
pub const TIMELINE_BURSTS: usize = 3;
/// A run of more cells draws one burst per cell: enough to see how a burst went, few
/// enough that a nightly of 828 cells of 16 requests stays a file a browser opens at once
/// (about 8 MB; the explanations of every burst are kept, they are text).
pub const LARGE_RUN: usize = 100;

/// How many bursts of each cell a run of `cells` cells draws.
pub fn timeline_bursts(cells: usize) -> usize {
    if cells <= LARGE_RUN {
        TIMELINE_BURSTS
    } else {
        1
    }
}

/// The HTML exporter; `x` and `y` name the heatmaps' axes (chosen per endpoint when
/// `None`, see [`choose_axes`]).
#[derive(Clone, Debug, Default)]
pub struct Html {
    /// The axis across (columns).
    pub x: Option<String>,
    /// The axis down (rows).
    pub y: Option<String>,
}

impl Html {
    /// An exporter with the axes the user asked for, each checked against the run's axes
    /// (see [`run_axes`]); the error names the valid ones.
    pub fn with_axes(
        cells: &[CellResult],
        x: Option<String>,
        y: Option<String>,
    ) -> Result<Html, String> {
        let valid = run_axes(cells);
        for (flag, axis) in [("--x", &x), ("--y", &y)] {
            if let Some(a) = axis.as_deref().filter(|a| !valid.iter().any(|v| v == a)) {
                return Err(format!(
                    "{flag} {a}: the run has no such axis; its axes are: {}",
                    valid.join(", ")
                ));
            }
        }
        if x.is_some() && x == y {
            return Err("--x and --y name the same axis".into());
        }
        Ok(Html { x, y })
    }
}
/// HTML-escapes text (element content and attribute values alike).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The sequential colour scale of the heatmaps (ColorBrewer's YlOrRd): pale yellow at a
/// rate of 0, through orange and red, to dark red at 1; clamped to [0, 1].
pub fn colour(rate: f64) -> (u8, u8, u8) {
    const STOPS: [(u8, u8, u8); 5] = [
        (255, 255, 204),
        (254, 217, 118),
        (253, 141, 60),
        (227, 26, 28),
        (128, 0, 38),
    ];
    let t = if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    } * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `#rrggbb`.
fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Relative luminance (WCAG) of a colour, 0 (black) to 1 (white).
pub fn luminance((r, g, b): (u8, u8, u8)) -> f64 {
    let lin = |c: u8| {
        let c = c as f64 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
}

/// A cell's anomalies and what they are out of, `(k, n)`, as its rate and interval count
/// them. `n` is the sum of the per-burst totals of [`metrics::anomaly_bursts`] (ledger
/// rows, rows, tasks: none depends on the matrix's `amount`, which a cell does not keep);
/// `k` is `rate · n`, exact since the rate is that `k` over that `n`: the per-burst
/// anomalies clamped as the interval clamps them, so a burst with an excess counts 0.
pub fn counts(m: &CellMetrics, reps: &[Repetition]) -> (u64, u64) {
    let check = Check::from_name(&m.anomaly_kind).unwrap_or_default();
    let n: u64 = metrics::anomaly_bursts(reps, 1, &check)
        .iter()
        .map(|b| b.1)
        .sum();
    ((m.anomaly_rate * n as f64).round() as u64, n)
}

/// `k/n`.
pub fn k_of_n(k: u64, n: u64) -> String {
    format!("{k}/{n}")
}

/// The rate and its interval as a heatmap shows them: `0.75 [0.58, 0.87]`; a lower
/// bound above 0 that two decimals would round to 0 is shown as `<0.01`, so that a
/// square with a solid border (see [`excludes_zero`]) never reads `[0.00, …]`.
pub fn rate_text(m: &CellMetrics) -> String {
    let lo = if excludes_zero(m) && m.anomaly_rate_lo < 0.005 {
        "<0.01".to_string()
    } else {
        format!("{:.2}", m.anomaly_rate_lo)
    };
    format!("{:.2} [{lo}, {:.2}]", m.anomaly_rate, m.anomaly_rate_hi)
}

/// Whether a cell's 95% interval excludes 0 (`lo > 0`, beyond rounding noise: the
/// interval of a cell with no anomaly can come out at 1e-17). Wilson's lower bound is
/// above 0 exactly when some anomaly was counted, so this marks the cells where the race
/// was seen at all; how far from 0 the interval sits is in the numbers.
pub fn excludes_zero(m: &CellMetrics) -> bool {
    m.anomaly_rate_lo > 1e-9
}

/// What an anomaly kind counts, out of what.
fn kind_text(kind: &str) -> String {
    match Check::from_name(kind) {
        Some(Check::Counter) => "lost updates of ledger rows".into(),
        Some(Check::Unique) => "duplicate rows of rows".into(),
        Some(Check::Task) => "missed tasks of tasks".into(),
        Some(Check::Start) => "failed starts of starts".into(),
        Some(Check::Invariant(name)) => format!("violations of invariant {name}"),
        None => "anomalies".into(),
    }
}

/// The first line of a failed cell's error.
fn first_line(c: &CellResult) -> &str {
    c.error
        .as_deref()
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("")
}

/// The page's style sheet (`html/style.css`), inlined.
const STYLE: &str = include_str!("html/style.css");

impl Exporter for Html {
    /// The page: summary, legend, heatmaps per endpoint, then every cell.
    fn render(&self, run: &RunReport) -> Result<Vec<u8>> {
        let model = Model::of(run);
        let endpoints = &model.groups;
        let mut out = String::with_capacity(64 * 1024 + run.cells.len() * 8 * 1024);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>racy-matrix: {}</title><style>{STYLE}</style></head><body>\n",
            esc(run.matrix)
        );
        summary(&mut out, &model);
        out.push_str("<h2 id=\"heatmaps\">Anomaly rate per endpoint</h2>\n");
        out.push_str(&heatmap_legend());
        out.push_str("<div class=\"grid\">\n");
        let order = run_axes(run.cells);
        for (i, ep) in endpoints.iter().enumerate() {
            endpoint_section(&mut out, i, ep, &order, self);
        }
        out.push_str("</div>\n<h2 id=\"cells\">Cells</h2>\n");
        out.push_str(&timeline_legend());
        let drawn = timeline_bursts(run.cells.len());
        for (n, c) in (1..).zip(run.cells) {
            let ep = endpoints
                .iter()
                .position(|e| e.cells.iter().any(|&(m, _)| m == n))
                .unwrap_or(0);
            cell_section(&mut out, n, c, ep, drawn);
        }
        out.push_str("</body></html>\n");
        Ok(out.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::matrix::Cell;
    use crate::measure::metrics::Observation;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn cell(endpoint: &str, axes: &[(&str, &str)]) -> Cell {
        let mut map = BTreeMap::from([("endpoint".to_string(), endpoint.to_string())]);
        map.extend(axes.iter().map(|(a, v)| (a.to_string(), v.to_string())));
        Cell {
            stack: "django-mysql".into(),
            axes: map,
        }
    }

    /// Request `index` of burst `rep`: read `read` at `t_read` ms, wrote `read + 100` at
    /// `t_write` ms, served by `pid`.
    fn req(rep: u32, index: u32, pid: i64, read: i64, t: (i64, i64)) -> RequestRecord {
        let body = json!({
            "pid": pid, "t_start": 0, "t_end": t.1 * 1_000_000 + 1,
            "t_read": t.0 * 1_000_000, "t_write": t.1 * 1_000_000,
            "read_balance": read, "written_balance": read + 100,
        });
        RequestRecord::answered(rep, index, 200, body)
    }

    fn obs(balance: i64, rows: i64) -> Observation {
        Observation {
            balance,
            ledger_rows: rows,
            ledger_total: rows * 100,
            extra: BTreeMap::new(),
        }
    }

    /// A measured counter cell: per burst, two requests that read 0 (one lost) when
    /// `racy`, else two in a row.
    fn measured(c: Cell, bursts: u32, racy: bool) -> CellResult {
        let reps: Vec<Repetition> = (0..bursts)
            .map(|r| {
                let second = if racy { (0, (2, 11)) } else { (100, (12, 20)) };
                Repetition {
                    before: obs(0, 0),
                    after: obs(if racy { 100 } else { 200 }, 2),
                    burst_ms: 20.0,
                    records: vec![req(r, 0, 7, 0, (1, 10)), req(r, 1, 8, second.0, second.1)],
                }
            })
            .collect();
        let metrics = metrics::compute(&reps, 100, 0, &Check::Counter, None);
        CellResult::measured(c, bursts, 2, metrics, reps)
    }

    fn numbered(cells: &[CellResult]) -> Vec<Numbered<'_>> {
        (1..).zip(cells).collect()
    }

    fn order(axes: &[&str]) -> Vec<String> {
        axes.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_axes_that_vary_most_are_chosen() {
        let mut cells = Vec::new();
        for w in ["1", "4"] {
            for iso in ["read_committed", "repeatable_read", "serializable"] {
                let axes = [("workers", w), ("wait_ms", "0"), ("isolation", iso)];
                cells.push(measured(cell("e", &axes), 1, false));
            }
        }
        let all = order(&["workers", "wait_ms", "delay_ms", "isolation"]);
        let got = choose_axes(&numbered(&cells), &all, None, None);
        assert_eq!(got.x.as_deref(), Some("isolation"), "3 values before 2");
        assert_eq!(got.y.as_deref(), Some("workers"));
        assert!(got.rest.is_empty(), "wait_ms does not vary: {got:?}");
        // the user's choice, even of an axis that does not vary; the best of the rest
        let got = choose_axes(&numbered(&cells), &all, Some("wait_ms"), None);
        assert_eq!(
            (got.x.as_deref(), got.y.as_deref()),
            (Some("wait_ms"), Some("isolation"))
        );
        assert_eq!(got.rest, vec!["workers"]);
        let got = choose_axes(&numbered(&cells), &all, None, Some("isolation"));
        assert_eq!(
            (got.x.as_deref(), got.y.as_deref()),
            (Some("workers"), Some("isolation"))
        );
    }

    #[test]
    fn ties_keep_the_column_order_and_extra_axes_slice() {
        let mut cells = Vec::new();
        for d in ["300", "3000-10000"] {
            for w in ["4", "1"] {
                for s in ["ON", "OFF"] {
                    let axes = [("workers", w), ("delay_ms", d), ("snapshot", s)];
                    cells.push(measured(cell("e", &axes), 1, false));
                }
            }
        }
        let all = order(&["workers", "wait_ms", "delay_ms", "snapshot"]);
        let got = choose_axes(&numbered(&cells), &all, None, None);
        assert_eq!(
            got,
            HeatmapAxes {
                x: Some("workers".into()),
                y: Some("delay_ms".into()),
                rest: vec!["snapshot".into()],
            }
        );
        // numbers sort as numbers, other values keep the run's order
        assert_eq!(
            values(&numbered(&cells), "workers"),
            vec![Some("1".to_string()), Some("4".to_string())]
        );
        assert_eq!(
            values(&numbered(&cells), "snapshot"),
            vec![Some("ON".to_string()), Some("OFF".to_string())]
        );
        // one varying axis: one row; none: a single square
        let one = &cells[..2];
        let got = choose_axes(&numbered(one), &all, None, None);
        assert_eq!((got.x.as_deref(), got.y), (Some("snapshot"), None));
        let got = choose_axes(&numbered(&cells[..1]), &all, None, None);
        assert_eq!((got.x, got.y, got.rest.len()), (None, None, 0));
    }

    #[test]
    fn the_colour_scale_darkens_with_the_rate() {
        assert_eq!(hex(colour(0.0)), "#ffffcc");
        assert_eq!(hex(colour(0.5)), "#fd8d3c");
        assert_eq!(hex(colour(1.0)), "#800026");
        assert_eq!(colour(-1.0), colour(0.0));
        assert_eq!(colour(2.0), colour(1.0));
        assert_eq!(colour(f64::NAN), colour(0.0));
        let lum: Vec<f64> = (0..=100)
            .map(|i| luminance(colour(i as f64 / 100.0)))
            .collect();
        assert!(lum.windows(2).all(|w| w[1] < w[0]), "{lum:?}");
        assert_eq!(rgb_of("#fd8d3c"), (253, 141, 60));
    }

    #[test]
    fn k_of_n_counts_what_the_interval_counts() {
        // two bursts of 2: one lost in each → 2/4
        let c = measured(cell("e", &[]), 2, true);
        let m = c.metrics.as_ref().unwrap();
        assert_eq!(counts(m, &c.reps), (2, 4));
        assert_eq!(k_of_n(2, 4), "2/4");
        assert_eq!(rate_text(m), "0.50 [0.15, 0.85]");
        // nothing lost: the denominator still shows (not 0 / 0.0)
        let c = measured(cell("e", &[]), 3, false);
        assert_eq!(counts(c.metrics.as_ref().unwrap(), &c.reps), (0, 6));
        // a burst with an excess counts 0, as the rate does; another loses 3 of 8
        let reps = vec![
            Repetition::observed(obs(0, 0), obs(600, 4)),
            Repetition::observed(obs(0, 0), obs(500, 8)),
        ];
        let m = metrics::compute(&reps, 100, 0, &Check::Counter, None);
        assert_eq!((m.anomalies, counts(&m, &reps)), (1, (3, 12)));
        // a unique check: duplicates of rows
        let dup = |total, distinct| Observation {
            extra: BTreeMap::from([
                ("total".to_string(), total),
                ("distinct_values".to_string(), distinct),
            ]),
            ..obs(0, 0)
        };
        let reps = vec![Repetition::observed(dup(0, 0), dup(8, 1))];
        let m = metrics::compute(&reps, 100, 0, &Check::Unique, None);
        assert_eq!(counts(&m, &reps), (7, 8));
    }

    #[test]
    fn a_lower_bound_above_zero_never_reads_zero() {
        let m = |rate, lo, hi| CellMetrics {
            anomaly_rate: rate,
            anomaly_rate_lo: lo,
            anomaly_rate_hi: hi,
            ..Default::default()
        };
        assert_eq!(rate_text(&m(0.75, 0.5812, 0.8699)), "0.75 [0.58, 0.87]");
        assert_eq!(rate_text(&m(0.01, 0.002, 0.1)), "0.01 [<0.01, 0.10]");
        assert!(excludes_zero(&m(0.01, 0.002, 0.1)));
        // rounding noise of an interval at 0 is not above 0
        assert!(!excludes_zero(&m(0.0, 1e-17, 0.39)));
        assert_eq!(rate_text(&m(0.0, 1e-17, 0.39)), "0.00 [0.00, 0.39]");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("plain · text"), "plain · text");
    }

    #[test]
    fn a_bar_falls_back_from_read_write_to_start_end_to_the_client() {
        let r = req(0, 2, 7, 0, (5, 9));
        let b = bar(&r);
        assert_eq!((b.from, b.to, b.class), (5_000_000, Some(9_000_000), "ok"));
        assert_eq!(
            b.life,
            Some((0, 9_000_001)),
            "the whole request behind the window"
        );
        let refused = RequestRecord {
            status: Some(409),
            body: Some(json!({"t_start": 1, "t_end": 4})),
            ..r.clone()
        };
        let b = bar(&refused);
        assert_eq!(
            (b.from, b.to, b.class, b.what),
            (1, Some(4), "r4", "start→end")
        );
        let client = RequestRecord {
            status: Some(502),
            body: Some(json!("Bad Gateway")),
            sent_unix_ns: 100,
            latency_ms: Some(2.0),
            ..r.clone()
        };
        let b = bar(&client);
        assert_eq!((b.from, b.to, b.class), (100, Some(2_000_100), "r5"));
        let timeout = RequestRecord {
            outcome: Outcome::Timeout,
            status: None,
            body: None,
            latency_ms: None,
            ..r
        };
        let b = bar(&timeout);
        assert_eq!((b.to, b.class), (None, "te"));
        assert_eq!(tick_step(620.0), 200.0);
        assert_eq!(tick_step(2400.0), 500.0);
    }

    #[test]
    fn unknown_axes_are_refused_with_the_valid_ones() {
        let cells = vec![measured(cell("e", &[("workers", "1")]), 1, false)];
        assert_eq!(run_axes(&cells), vec!["workers"]);
        let e = Html::with_axes(&cells, Some("wrokers".into()), None).unwrap_err();
        assert!(
            e.contains("--x wrokers") && e.contains("axes are: workers"),
            "{e}"
        );
        assert!(Html::with_axes(&cells, None, Some("endpoint".into())).is_err());
        assert!(Html::with_axes(&cells, Some("workers".into()), Some("workers".into())).is_err());
        assert!(Html::with_axes(&cells, Some("workers".into()), None).is_ok());
    }

    #[test]
    fn a_tiny_run_renders_a_heatmap_per_endpoint_and_a_section_per_cell() {
        let mut cells = Vec::new();
        for ep in ["non_atomic", "f_<expr>"] {
            for w in ["1", "4"] {
                let racy = ep == "non_atomic" && w == "4";
                cells.push(measured(cell(ep, &[("workers", w)]), 3, racy));
            }
        }
        cells.push(CellResult {
            metrics: None,
            error: Some("<img src=x onerror=alert(1)> died\nlog line & more".into()),
            reps: vec![],
            ..measured(cell("f_<expr>", &[("workers", "8")]), 1, false)
        });
        let run = RunReport {
            matrix: "tiny",
            run_id: "r1",
            started: "now",
            shard: None,
            cells: &cells,
            expect: &[],
        };
        let html = String::from_utf8(Html::default().render(&run).unwrap()).unwrap();
        assert_eq!(html.matches("data-heatmap=").count(), 2);
        assert!(html.contains("data-heatmap=\"django-mysql non_atomic\""));
        assert!(html.contains("data-heatmap=\"django-mysql f_&lt;expr&gt;\""));
        for (n, c) in (1..).zip(&cells) {
            let section = format!(
                "<section class=\"cell\" id=\"cell-{n}\" data-cell=\"{}\"",
                esc(&c.cell.key())
            );
            assert!(html.contains(&section), "{section}");
            assert!(
                html.contains(&format!("<a href=\"#cell-{n}\">")),
                "cell {n}"
            );
        }
        // the racy cell: 3 of 6, its interval above 0, a thick solid border
        assert!(html.contains(">3/6</text>"), "{html}");
        let racy = html.split("<a href=\"#cell-2\">").nth(1).unwrap();
        let racy = &racy[..racy.find("</a>").unwrap()];
        assert!(racy.contains("stroke-width=\"3\""), "{racy}");
        let safe = html.split("<a href=\"#cell-1\">").nth(1).unwrap();
        assert!(safe.contains("stroke-dasharray"), "{safe}");
        assert!(safe.contains(">0/6</text>"), "{safe}");
        // data never becomes markup; nothing is fetched
        assert!(!html.contains("<img") && html.contains("&lt;img src=x"));
        assert!(!html.contains("<expr>"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script"));
        // the stories, with the marks where increments were erased
        assert!(html.contains("[same_read] #2 (pid 8) read 0"), "{html}");
        assert!(html.contains("class=\"mark\""));
        assert!(!html.contains("not drawn"), "3 bursts, all drawn");
    }

    /// A burst of 16 like the nightly's: when `racy`, two waves of 8 that each read the
    /// same value (14 increments lost), else one request after another.
    fn nightly_burst(rep: u32, racy: bool) -> Repetition {
        let records = (0..16u32)
            .map(|i| {
                let i64 = i as i64;
                let (read, t) = if racy {
                    let wave = i64 / 8;
                    (wave * 100, (1 + wave * 301, 300 + wave * 301 + i64))
                } else {
                    (i64 * 100, (1 + i64 * 301, 300 + i64 * 301))
                };
                let mut r = req(rep, i, 30 + i64 % 4, read, t);
                if let Some(b) = r.body.as_mut() {
                    b["host"] = json!("0d4f04cafef9");
                    b["endpoint"] = json!("non_atomic_long_delay");
                }
                r
            })
            .collect();
        Repetition {
            before: obs(0, 0),
            after: obs(if racy { 200 } else { 1600 }, 16),
            burst_ms: 620.0,
            records,
        }
    }

    /// The size of a report of 828 cells of 6 bursts of 16, one in `racy_every` racy.
    fn nightly_size(racy_every: usize) -> usize {
        let cell_of = |racy: bool| {
            let reps: Vec<Repetition> = (0..6).map(|r| nightly_burst(r, racy)).collect();
            let metrics = metrics::compute(&reps, 100, 0, &Check::Counter, None);
            assert_eq!(metrics.anomalies, if racy { 6 * 14 } else { 0 });
            (reps, metrics)
        };
        let (racy, safe) = (cell_of(true), cell_of(false));
        let cells: Vec<CellResult> = (0..828)
            .map(|i| {
                let (reps, metrics) = if i % racy_every == 0 { &racy } else { &safe };
                let axes = [
                    ("workers", (1 + i % 4).to_string()),
                    ("isolation", (i / 4 % 3).to_string()),
                    ("delay_ms", (i / 12).to_string()),
                ];
                let axes: Vec<(&str, &str)> = axes.iter().map(|(a, v)| (*a, v.as_str())).collect();
                CellResult::measured(
                    cell(["non_atomic", "atomic"][i % 2], &axes),
                    6,
                    16,
                    metrics.clone(),
                    reps.clone(),
                )
            })
            .collect();
        let run = RunReport {
            matrix: "nightly",
            run_id: "r",
            started: "now",
            shard: None,
            cells: &cells,
            expect: &[],
        };
        Html::default().render(&run).unwrap().len()
    }

    #[test]
    fn a_nightly_stays_a_file_a_browser_opens() {
        // the nightly's racy cells are about a quarter (2 workers or more, 4 of the 8
        // endpoints, not where PostgreSQL refuses): a third here, then all of them
        assert_eq!((timeline_bursts(16), timeline_bursts(828)), (3, 1));
        let (typical, worst) = (nightly_size(3), nightly_size(1));
        eprintln!("828 cells of 6 bursts of 16: report.html {typical} bytes, {worst} if all racy");
        assert!(typical < 9_000_000, "{typical}");
        assert!(worst < 17_000_000, "{worst}");
    }
}
