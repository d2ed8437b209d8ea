//! The heatmaps: per stack and endpoint, the anomaly rate over the two axes that vary
//! most, each square linked to its cell.

use super::*;

/// The axes a heatmap can take: every axis of the run's cells but `endpoint` (each
/// endpoint has its own heatmap), in the results files' column order (`workers`,
/// `wait_ms`, `delay_ms`, then the others by name).
pub fn run_axes(cells: &[CellResult]) -> Vec<String> {
    crate::measure::cell::columns(cells)
        .into_iter()
        .take_while(|c| c != "repetitions")
        .filter(|c| c != "stack" && c != "endpoint")
        .filter(|c| cells.iter().any(|x| x.cell.axes.contains_key(c)))
        .collect()
}

/// The axes of one heatmap group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeatmapAxes {
    /// Across (`None`: one column).
    pub x: Option<String>,
    /// Down (`None`: one row).
    pub y: Option<String>,
    /// The other axes that vary: one heatmap per combination of their values.
    pub rest: Vec<String>,
}

/// The distinct values of `axis` among `cells`: numerically sorted when every value is a
/// number, else in the order they first appear (the run's order, the matrix's order).
pub(super) fn values(cells: &[Numbered], axis: &str) -> Vec<Option<String>> {
    let mut vals: Vec<Option<String>> = Vec::new();
    for (_, c) in cells {
        let v = c.cell.get(axis).map(str::to_string);
        if !vals.contains(&v) {
            vals.push(v);
        }
    }
    let num = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<f64>().ok());
    if vals.iter().all(|v| num(v).is_some()) {
        vals.sort_by(|a, b| num(a).unwrap_or(0.0).total_cmp(&num(b).unwrap_or(0.0)));
    }
    vals
}

/// The heatmap axes of a group of cells. The axes that vary among them (of `order`, the
/// run's axes in column order) are ranked by how many distinct values they take, most
/// first, ties in `order` (so `workers` first); `x` is the first, `y` the second, and a
/// user's `x`/`y` take their place (an axis the user names is used even where it does
/// not vary). One varying axis gives one row, none a single cell; the rest of the
/// varying axes split the group into one heatmap per combination.
pub fn choose_axes(
    cells: &[Numbered],
    order: &[String],
    x: Option<&str>,
    y: Option<&str>,
) -> HeatmapAxes {
    let mut varying: Vec<(usize, &String)> = order
        .iter()
        .map(|a| (values(cells, a).len(), a))
        .filter(|(n, _)| *n > 1)
        .collect();
    // a stable sort keeps `order` among equals
    varying.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut free = varying
        .iter()
        .map(|(_, a)| a.as_str())
        .filter(|a| Some(*a) != x && Some(*a) != y);
    let x = x.or_else(|| free.next()).map(str::to_string);
    let y = y.or_else(|| free.next()).map(str::to_string);
    HeatmapAxes {
        x,
        y,
        rest: free.map(str::to_string).collect(),
    }
}

/// The legend of the heatmaps: the colour scale and the border rule.
pub(super) fn heatmap_legend() -> String {
    let mut s = String::from(
        "<svg class=\"hm\" width=\"860\" height=\"44\" role=\"img\" aria-label=\"legend\">\
         <text x=\"0\" y=\"14\">rate</text>",
    );
    for i in 0..40 {
        let _ = write!(
            s,
            "<rect x=\"{}\" y=\"4\" width=\"5\" height=\"14\" fill=\"{}\"/>",
            36 + i * 5,
            hex(colour(i as f64 / 39.0))
        );
    }
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let x = 36.0 + t * 200.0;
        let _ = write!(
            s,
            "<text x=\"{x}\" y=\"32\" text-anchor=\"middle\">{t}</text>"
        );
    }
    s.push_str(
        "<rect x=\"270\" y=\"4\" width=\"26\" height=\"18\" fill=\"#fd8d3c\" stroke=\"#111\" stroke-width=\"3\"/>\
         <text x=\"302\" y=\"17\">solid thick border: the 95% interval excludes 0 (lo &gt; 0)</text>\
         <rect x=\"270\" y=\"26\" width=\"26\" height=\"16\" fill=\"#ffffcc\" stroke=\"#666\" stroke-dasharray=\"4 3\"/>\
         <text x=\"302\" y=\"38\">dashed border: it does not (0 is possible)</text>\
         <rect x=\"660\" y=\"4\" width=\"26\" height=\"18\" fill=\"#d9d9d9\" stroke=\"#666\"/>\
         <text x=\"692\" y=\"17\">failed / nothing to count</text></svg>\n\
         <p class=\"meta\">Each square: anomalies k/n, the rate and its 95% interval (bursts as the \
         sampling unit); click it for the cell.</p>\n",
    );
    s
}

/// One endpoint's box: per anomaly kind, its heatmaps.
pub(super) fn endpoint_section(
    out: &mut String,
    i: usize,
    ep: &Endpoint,
    order: &[String],
    html: &Html,
) {
    let _ = writeln!(
        out,
        "<section class=\"endpoint\" id=\"ep-{}\" data-heatmap=\"{} {}\"><h2>{} · {}</h2>",
        i + 1,
        esc(ep.stack),
        esc(ep.endpoint),
        esc(ep.stack),
        esc(ep.endpoint)
    );
    let kinds: Vec<&str> = ep
        .cells
        .iter()
        .filter_map(|(_, c)| c.metrics.as_ref().map(|m| m.anomaly_kind.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let kinds = if kinds.is_empty() { vec![""] } else { kinds };
    for (j, kind) in kinds.iter().enumerate() {
        // failed cells have no kind: they show in the first kind's heatmaps
        let cells: Vec<Numbered> = ep
            .cells
            .iter()
            .copied()
            .filter(|(_, c)| match &c.metrics {
                Some(m) => m.anomaly_kind == *kind,
                None => j == 0,
            })
            .collect();
        let _ = writeln!(
            out,
            "<div class=\"kind\">{}</div>",
            esc(&format!("{} ({kind})", kind_text(kind)))
        );
        kind_heatmaps(out, &cells, order, html);
    }
    out.push_str("</section>\n");
}

/// The heatmaps of one endpoint and kind. When more than two axes vary, there is one
/// heatmap per combination of the other axes' values, titled with them: pooling over
/// those axes would mix cells measured under different settings into one rate (and one
/// interval that means nothing), and a note in their place would hide cells the drill-
/// downs then cannot be reached from; the small multiples keep every cell one click away.
pub(super) fn kind_heatmaps(out: &mut String, cells: &[Numbered], order: &[String], html: &Html) {
    let axes = choose_axes(cells, order, html.x.as_deref(), html.y.as_deref());
    let mut slices: Vec<(Vec<usize>, Vec<Numbered>)> = Vec::new();
    let rest_values: Vec<Vec<Option<String>>> =
        axes.rest.iter().map(|a| values(cells, a)).collect();
    for &(n, c) in cells {
        let at: Vec<usize> = axes
            .rest
            .iter()
            .zip(&rest_values)
            .map(|(a, vals)| {
                let v = c.cell.get(a).map(str::to_string);
                vals.iter().position(|x| *x == v).unwrap_or(0)
            })
            .collect();
        match slices.iter_mut().find(|(k, _)| *k == at) {
            Some((_, s)) => s.push((n, c)),
            None => slices.push((at, vec![(n, c)])),
        }
    }
    slices.sort_by(|a, b| a.0.cmp(&b.0));
    out.push_str("<div class=\"grid\">");
    for (at, slice) in &slices {
        out.push_str("<div>");
        if !axes.rest.is_empty() {
            let title: Vec<String> = axes
                .rest
                .iter()
                .zip(at)
                .zip(&rest_values)
                .map(|((a, &i), vals)| format!("{a}={}", vals[i].as_deref().unwrap_or("–")))
                .collect();
            let _ = write!(
                out,
                "<div class=\"slice\">{}</div>",
                esc(&title.join(" · "))
            );
        }
        out.push_str(&heatmap_svg(slice, axes.x.as_deref(), axes.y.as_deref()));
        out.push_str("</div>");
    }
    out.push_str("</div>\n");
}

pub(super) const HM_W: usize = 150;
pub(super) const HM_H: usize = 52;

/// `axis=value` as a heatmap labels a row or a column.
pub(super) fn axis_label(axis: Option<&str>, v: &Option<String>) -> String {
    match axis {
        Some(a) => format!("{a}={}", v.as_deref().unwrap_or("–")),
        None => String::new(),
    }
}

/// One heatmap: columns the values of `x`, rows those of `y`, one square per cell.
pub(super) fn heatmap_svg(cells: &[Numbered], x: Option<&str>, y: Option<&str>) -> String {
    let xs = x.map_or(vec![None], |a| values(cells, a));
    let ys = y.map_or(vec![None], |a| values(cells, a));
    let col_labels: Vec<String> = xs.iter().map(|v| axis_label(x, v)).collect();
    let row_labels: Vec<String> = ys.iter().map(|v| axis_label(y, v)).collect();
    let chars = |l: &[String]| l.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    let col_w = HM_W.max(chars(&col_labels) * 7 + 10);
    let left = if y.is_some() {
        chars(&row_labels) * 7 + 12
    } else {
        0
    };
    let top = if x.is_some() { 20 } else { 0 };
    let (w, h) = (left + col_w * xs.len() + 2, top + HM_H * ys.len() + 2);
    let mut s = format!(
        "<svg class=\"hm\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">"
    );
    for (i, l) in col_labels.iter().enumerate().filter(|_| x.is_some()) {
        let cx = left + col_w * i + col_w / 2;
        let _ = write!(
            s,
            "<text class=\"ax\" x=\"{cx}\" y=\"14\" text-anchor=\"middle\">{}</text>",
            esc(l)
        );
    }
    for (j, yv) in ys.iter().enumerate() {
        let cy = top + HM_H * j;
        if y.is_some() {
            let _ = write!(
                s,
                "<text class=\"ax\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                left - 6,
                cy + HM_H / 2 + 4,
                esc(&row_labels[j])
            );
        }
        for (i, xv) in xs.iter().enumerate() {
            let at = |a: Option<&str>, v: &Option<String>, c: &CellResult| {
                a.is_none_or(|a| c.cell.get(a).map(str::to_string) == *v)
            };
            let found = cells.iter().find(|(_, c)| at(x, xv, c) && at(y, yv, c));
            let (px, py) = (left + col_w * i + 1, cy + 1);
            s.push_str(&square(found.copied(), px, py, col_w));
        }
    }
    s.push_str("</svg>");
    s
}

/// One heatmap square at `(x, y)`: coloured by rate, bordered by whether the interval
/// excludes 0, labelled `k/n` and `rate [lo, hi]`, linked to its cell.
pub(super) fn square(cell: Option<Numbered>, x: usize, y: usize, w: usize) -> String {
    let (cx, inner_w, inner_h) = (x + w / 2, w - 4, HM_H - 4);
    let Some((n, c)) = cell else {
        return format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{inner_w}\" height=\"{inner_h}\" fill=\"#f4f4f4\"/>\
             <text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\" fill=\"#999\">not in the matrix</text>",
            x + 2,
            y + 2,
            y + HM_H / 2 + 3
        );
    };
    let (fill, stroke, top, bottom) = match &c.metrics {
        None => (
            "#d9d9d9".to_string(),
            "stroke=\"#666\" stroke-width=\"1\"",
            "failed".to_string(),
            first_line(c).chars().take(w / 7).collect::<String>(),
        ),
        Some(m) => {
            let (k, total) = counts(m, &c.reps);
            let fill = if total == 0 {
                "#d9d9d9".to_string()
            } else {
                hex(colour(m.anomaly_rate))
            };
            let stroke = if excludes_zero(m) {
                "stroke=\"#111\" stroke-width=\"3\""
            } else {
                "stroke=\"#666\" stroke-width=\"1\" stroke-dasharray=\"4 3\""
            };
            (fill, stroke, k_of_n(k, total), rate_text(m))
        }
    };
    let ink = if fill.starts_with("#d9") || luminance(rgb_of(&fill)) > 0.3 {
        "#111"
    } else {
        "#fff"
    };
    format!(
        "<a href=\"#cell-{n}\"><title>cell {n}: {}</title>\
         <rect x=\"{}\" y=\"{}\" width=\"{inner_w}\" height=\"{inner_h}\" fill=\"{fill}\" {stroke}/>\
         <text class=\"k\" x=\"{cx}\" y=\"{}\" text-anchor=\"middle\" fill=\"{ink}\">{}</text>\
         <text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\" fill=\"{ink}\">{}</text></a>",
        esc(&c.cell.label()),
        x + 2,
        y + 2,
        y + 22,
        esc(&top),
        y + 40,
        esc(&bottom)
    )
}

/// The colour of `#rrggbb`.
pub(super) fn rgb_of(hex: &str) -> (u8, u8, u8) {
    let c = |i: usize| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0);
    (c(1), c(3), c(5))
}
