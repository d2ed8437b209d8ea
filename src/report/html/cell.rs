//! A cell's drill-down: its counts, the timeline of its first bursts and the stories of
//! its losses.

use super::*;
use crate::measure::explain::Wording;

/// The legend of the timelines.
pub(super) fn timeline_legend() -> String {
    "<p class=\"meta\">Timelines: one bar per request, from the server's read to its write \
     (<code>t_read</code>→<code>t_write</code>; else its start to its end, else the client's \
     send to its answer) over a thin grey line from its start to its end in the app, \
     labelled with the request number and the pid that served it:\
     <span class=\"sw\" style=\"background:#4477aa\"></span>acked (2xx)\
     <span class=\"sw\" style=\"background:#ee7733\"></span>refused (4xx)\
     <span class=\"sw\" style=\"background:#cc3311\"></span>5xx\
     <span class=\"sw\" style=\"background:#999\"></span>timeout / connection error\
     <span class=\"sw\" style=\"background:#000;width:2px\"></span>where a lost increment \
     was erased (the erasing write, on the row of the request whose increment it lost).</p>\n"
        .to_string()
}

/// One cell's drill-down: its axes, counts, the timelines of its first `drawn` bursts and
/// its explanations.
pub(super) fn cell_section(out: &mut String, n: usize, c: &CellResult, ep: usize, drawn: usize) {
    let _ = write!(
        out,
        "<section class=\"cell\" id=\"cell-{n}\" data-cell=\"{}\"><h3>Cell {n}: {} \
         <a class=\"meta\" href=\"#ep-{}\">↑ heatmap</a></h3><div>",
        esc(&c.cell.key()),
        esc(&c.cell.label()),
        ep + 1
    );
    let _ = write!(
        out,
        "<span class=\"chip\">stack={}</span>",
        esc(&c.cell.stack)
    );
    for (a, v) in &c.cell.axes {
        let _ = write!(out, "<span class=\"chip\">{}={}</span>", esc(a), esc(v));
    }
    let _ = writeln!(
        out,
        "<span class=\"chip\">{} × {} requests</span></div>",
        c.repetitions, c.requests
    );
    let Some(m) = &c.metrics else {
        let _ = writeln!(
            out,
            "<p class=\"flag\">failed: {}</p><details><summary>the whole error (attempts: {})\
             </summary><pre>{}</pre></details></section>",
            esc(first_line(c)),
            c.attempts,
            esc(c.error.as_deref().unwrap_or(""))
        );
        return;
    };
    counts_table(out, m, &c.reps);
    let stories = explain::cell_stories(c);
    for (i, rep) in c.reps.iter().take(drawn).enumerate() {
        let losses: &[Loss] = stories
            .as_ref()
            .and_then(|s| s.get(i))
            .map_or(&[], |b| &b.losses);
        let _ = write!(out, "<div class=\"meta\">burst {}</div>", i + 1);
        out.push_str(&timeline(rep, losses));
    }
    let undrawn = match c.reps.len() {
        n if n == drawn + 1 => format!("burst {n} is"),
        n if n > drawn => format!("bursts {}–{n} are", drawn + 1),
        _ => String::new(),
    };
    if !undrawn.is_empty() {
        let _ = write!(
            out,
            "<div class=\"meta\">{undrawn} not drawn (the explanations cover every burst).</div>"
        );
    }
    stories_html(out, c, stories.as_deref());
    out.push_str("</section>\n");
}

/// A cell's counts: responses, errors, the ledger, the anomalies with their interval.
pub(super) fn counts_table(out: &mut String, m: &CellMetrics, reps: &[Repetition]) {
    let (k, n) = counts(m, reps);
    let ms = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_default();
    let kind = kind_text(&m.anomaly_kind);
    let cols: [(&str, String); 11] = [
        ("acked", m.acked.to_string()),
        ("4xx / 5xx", format!("{} / {}", m.errors_4xx, m.errors_5xx)),
        (
            "timeouts / conn",
            format!("{} / {}", m.timeouts, m.conn_errors),
        ),
        (
            "ser. / lock",
            format!("{} / {}", m.serialization_failures, m.lock_timeouts),
        ),
        ("ledger rows", m.ledger_rows.to_string()),
        ("applied", m.applied.to_string()),
        (&kind, k_of_n(k, n)),
        ("rate [95% CI]", rate_text(m)),
        ("excess", m.excess_applied.to_string()),
        (
            "pids",
            m.distinct_pids.map(|p| p.to_string()).unwrap_or_default(),
        ),
        ("p50 ms", ms(m.p50_ms)),
    ];
    out.push_str("<table class=\"counts\"><tr>");
    for (h, _) in &cols {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr><tr>");
    for (h, v) in &cols {
        let flag = *h == "excess" && v != "0";
        let _ = write!(
            out,
            "<td{}>{}</td>",
            if flag { " class=\"flag\"" } else { "" },
            esc(v)
        );
    }
    out.push_str("</tr></table>\n");
}

/// A request's bar: when it starts and ends (ns), which clock, its outcome class.
pub(super) struct Bar {
    pub(super) index: u32,
    pub(super) from: i64,
    pub(super) to: Option<i64>,
    pub(super) class: &'static str,
    pub(super) what: &'static str,
    /// The request's whole time in the app (`t_start` → `t_end`), drawn as a thin line
    /// behind a read → write bar.
    pub(super) life: Option<(i64, i64)>,
}

/// The bar of one request: the server's read → write, else its start → end, else the
/// client's send → answer (`to` is `None` when nothing says when it ended).
pub(super) fn bar(r: &RequestRecord) -> Bar {
    let class = match (&r.outcome, r.status) {
        (Outcome::Response, Some(200..=299)) => "ok",
        (Outcome::Response, Some(400..=499)) => "r4",
        (Outcome::Response, _) => "r5",
        _ => "te",
    };
    let pair = |a: &str, b: &str| Some((r.server_ns(a)?, r.server_ns(b)?));
    let (from, to, what) = if let Some((a, b)) = pair("t_read", "t_write") {
        (a, Some(b), "read→write")
    } else if let Some((a, b)) = pair("t_start", "t_end") {
        (a, Some(b), "start→end")
    } else {
        let to = r.latency_ms.map(|l| r.sent_unix_ns + (l * 1e6) as i64);
        (r.sent_unix_ns, to, "client send→answer")
    };
    Bar {
        index: r.index,
        from,
        to,
        class,
        what,
        life: pair("t_start", "t_end").filter(|_| what == "read→write"),
    }
}

/// A tick step of 1, 2 or 5 × 10^k ms giving about five ticks over `span` ms.
pub(super) fn tick_step(span: f64) -> f64 {
    let raw = (span / 5.0).max(1e-3);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

pub(super) const TL_LEFT: f64 = 96.0;
pub(super) const TL_PLOT: f64 = 760.0;
pub(super) const TL_ROW: usize = 13;

/// The horizontal scale of one timeline: ns since the burst's first bar to px.
pub(super) struct Scale {
    t0: i64,
    t1: i64,
    pub(super) span_ms: f64,
}

impl Scale {
    fn px(&self, t: i64) -> f64 {
        TL_LEFT + (t - self.t0) as f64 / 1e6 / self.span_ms * TL_PLOT
    }

    fn ms(&self, t: i64) -> String {
        format!("{:.1}", (t - self.t0) as f64 / 1e6)
    }
}

/// One burst's timeline: a row per request in request order, time across in ms from the
/// burst's first bar, with a black mark on a lost request's row where its increment was
/// erased.
pub(super) fn timeline(rep: &Repetition, losses: &[Loss]) -> String {
    let mut records: Vec<&RequestRecord> = rep.records.iter().collect();
    records.sort_by_key(|r| r.index);
    let bars: Vec<Bar> = records.iter().map(|r| bar(r)).collect();
    let t0 = bars
        .iter()
        .map(|b| b.life.map_or(b.from, |l| l.0.min(b.from)))
        .min()
        .unwrap_or(0);
    let t1 = bars
        .iter()
        .map(|b| b.to.unwrap_or(b.from).max(b.life.map_or(i64::MIN, |l| l.1)))
        .max()
        .unwrap_or(t0);
    let scale = Scale {
        t0,
        t1,
        span_ms: ((t1 - t0) as f64 / 1e6).max(1.0),
    };
    // the host only tells processes apart where several containers served the burst
    let hosts = records
        .iter()
        .filter_map(|r| r.process().map(|p| p.0))
        .collect::<BTreeSet<_>>()
        .len();
    let (w, h) = (
        TL_LEFT as usize + TL_PLOT as usize + 30,
        18 + TL_ROW * bars.len() + 2,
    );
    let mut s = format!("<svg class=\"tl\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">");
    s.push_str(&ticks(scale.span_ms, h));
    for (row, (b, r)) in bars.iter().zip(&records).enumerate() {
        let y = 18 + TL_ROW * row;
        s.push_str(&bar_svg(b, r, y, &scale, hosts > 1));
        for l in losses.iter().filter(|l| l.lost == b.index) {
            let by = records.iter().find(|x| x.index == l.by);
            if let Some(x) = by.and_then(|x| x.server_ns("t_write")).map(|t| scale.px(t)) {
                let _ = write!(
                    s,
                    "<line class=\"mark\" x1=\"{x:.0}\" x2=\"{x:.0}\" y1=\"{}\" y2=\"{}\">\
                     <title>erased by #{}</title></line>",
                    y - 2,
                    y + TL_ROW + 1,
                    l.by + 1
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

/// One request's row at height `y`: its label (number and pid, with the host when
/// `with_host`: several containers served the burst) and its bar, with a tooltip saying
/// who served it and when.
pub(super) fn bar_svg(
    b: &Bar,
    r: &RequestRecord,
    y: usize,
    scale: &Scale,
    with_host: bool,
) -> String {
    let (x0, x1) = (scale.px(b.from), scale.px(b.to.unwrap_or(scale.t1)));
    // the label names the request and its pid; the tooltip adds the whole host name
    let (label, who) = match r.process() {
        Some((host, pid)) if with_host => (
            format!(" · {pid}@{}", host.chars().take(6).collect::<String>()),
            format!("on {host}, "),
        ),
        Some((_, pid)) => (format!(" · {pid}"), String::new()),
        None => (String::new(), String::new()),
    };
    let status = r
        .status
        .map_or_else(|| format!("{:?}", r.outcome), |s| s.to_string());
    let life = b.life.map_or(String::new(), |(a, z)| {
        format!(
            "<line class=\"life\" x1=\"{:.0}\" x2=\"{:.0}\" y1=\"{}\" y2=\"{}\"/>",
            scale.px(a),
            scale.px(z),
            y + 6,
            y + 6
        )
    });
    format!(
        "{life}<text class=\"l\" x=\"{}\" y=\"{}\">#{}{}</text>\
         <rect x=\"{x0:.0}\" y=\"{}\" width=\"{:.0}\" height=\"{}\" class=\"{}\">\
         <title>{}{status}, {} {}–{} ms</title></rect>",
        TL_LEFT - 4.0,
        y + 9,
        b.index + 1,
        esc(&label),
        y + 1,
        (x1 - x0).max(2.0),
        TL_ROW - 3,
        b.class,
        esc(&who),
        b.what,
        scale.ms(b.from),
        b.to.map_or("?".to_string(), |t| scale.ms(t)),
    )
}

/// The time axis of a timeline `span` ms wide and `h` high: gridlines and labels in ms.
pub(super) fn ticks(span: f64, h: usize) -> String {
    let step = tick_step(span);
    let mut s = String::new();
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let x = TL_LEFT + t / span * TL_PLOT;
        let _ = write!(
            s,
            "<line class=\"axis\" x1=\"{x:.0}\" x2=\"{x:.0}\" y1=\"14\" y2=\"{h}\"/>\
             <text x=\"{x:.0}\" y=\"11\" text-anchor=\"middle\">{}</text>",
            if t == 0.0 {
                "0 ms".to_string()
            } else {
                format!("{}", (t * 1000.0).round() / 1000.0)
            }
        );
        t += step;
    }
    s
}

/// A cell's explanations: each burst's losses, NOT RECONCILED bursts flagged with why.
pub(super) fn stories_html(out: &mut String, c: &CellResult, stories: Option<&[BurstStory]>) {
    let kind = c.metrics.as_ref().map_or("", |m| m.anomaly_kind.as_str());
    let words = Wording::of(kind);
    let Some(bursts) = stories else {
        let _ = writeln!(
            out,
            "<p class=\"meta\">Not explained: {}.</p>",
            esc(words.unexplained)
        );
        return;
    };
    let counted = words.counted;
    if bursts.iter().all(|b| b.reconciled && b.losses.is_empty()) {
        let mut none = words.none.to_string();
        none[..1].make_ascii_uppercase();
        let _ = writeln!(
            out,
            "<p class=\"meta\">{none} in {} burst(s), each history reconciled.</p>",
            bursts.len()
        );
        return;
    }
    for b in bursts {
        let _ = write!(
            out,
            "<div><b>burst {}</b>: {} {counted}, {} explained",
            b.repetition + 1,
            b.lost,
            b.losses.len()
        );
        if let Some(note) = &b.note {
            let _ = write!(
                out,
                " — <span class=\"flag\">NOT RECONCILED</span>: {}",
                esc(note)
            );
        }
        out.push_str("</div>");
        if b.losses.is_empty() {
            continue;
        }
        out.push_str("<ul class=\"losses\">");
        for l in &b.losses {
            let kind = serde_json::to_value(l.kind).ok();
            let kind = kind.as_ref().and_then(|k| k.as_str()).unwrap_or("");
            let _ = write!(out, "<li>[{}] {}</li>", esc(kind), esc(&l.text));
        }
        out.push_str("</ul>\n");
    }
}
