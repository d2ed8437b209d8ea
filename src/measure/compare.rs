//! `racy-matrix compare BASE NEW`: which cells' anomaly rates changed between two runs (or
//! merged runs) of a matrix. Cells are matched by their key (stack and every axis, as
//! `--resume` and `merge` match them); each matched cell's anomalies are recounted per
//! repetition exactly as its `anomaly_rate` counts them, and the change is tested with the
//! burst (repetition) as the sampling unit, as the intervals take it (see [`test_change`]).

use std::collections::{BTreeMap, BTreeSet};
use std::f64::consts::{PI, SQRT_2};
use std::path::Path;

use clap::ValueEnum;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::input::matrix::Cell;
use crate::measure::cell::CellResult;
use crate::measure::metrics::{self, Check};

/// The significance level unless `--alpha` says otherwise.
pub const ALPHA: f64 = 0.05;

/// Labels listed by name under "only in BASE/NEW" before the rest is only counted.
const FEW: usize = 10;

/// Which significant changes make `compare` exit 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// A cell whose anomaly rate rose significantly.
    Worse,
    /// A cell whose anomaly rate rose or fell significantly.
    Any,
    /// Nothing: report only.
    None,
}

/// `--alpha`: a significance level strictly between 0 and 1.
pub fn parse_alpha(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(a) if a > 0.0 && a < 1.0 => Ok(a),
        _ => Err(format!(
            "expected a significance level between 0 and 1 (e.g. 0.05), got '{s}'"
        )),
    }
}

/// One side of a cell's comparison: its bursts summed, the rate and its interval as the
/// results show them.
#[derive(Clone, Debug, PartialEq)]
pub struct Side {
    /// Anomalies, `Σk_i`.
    pub k: u64,
    /// What they are out of, `Σn_i`.
    pub n: u64,
    /// Bursts that count (`n_i > 0`).
    pub bursts: usize,
    /// `k / n` (0 when `n = 0`): the cell's `anomaly_rate`.
    pub rate: f64,
    /// Its 95% interval over bursts ([`metrics::cluster_wilson`]).
    pub interval: (f64, f64),
    /// The ratio estimator's variance of `rate` ([`metrics::cluster_variance`]); `None`
    /// with fewer than two bursts.
    pub var_cluster: Option<f64>,
}

impl Side {
    /// A side from one `(k_i, n_i)` per burst, counted as the interval counts them
    /// (bursts with `n_i = 0` left out, `k_i` at most `n_i`).
    pub fn of(bursts: &[(u64, u64)]) -> Side {
        let counted: Vec<(u64, u64)> = bursts
            .iter()
            .filter(|b| b.1 > 0)
            .map(|&(k, n)| (k.min(n), n))
            .collect();
        let (k, n) = counted.iter().fold((0, 0), |(k, n), b| (k + b.0, n + b.1));
        Side {
            k,
            n,
            bursts: counted.len(),
            rate: if n > 0 { k as f64 / n as f64 } else { 0.0 },
            interval: metrics::cluster_wilson(bursts),
            var_cluster: metrics::cluster_variance(bursts),
        }
    }
}

/// The outcome of [`test_change`]: the difference, its interval, and how surprising it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// `d = p_new − p_base`.
    pub diff: f64,
    /// `d ± z_{1−α/2}·SE`, within [−1, 1].
    pub interval: (f64, f64),
    /// `z = d / SE`.
    pub z: f64,
    /// The two-sided p-value, `2·(1 − Φ(|z|))`.
    pub p: f64,
}

/// The change test of one cell: is NEW's anomaly rate different from BASE's?
///
/// The statistic is the difference of the two pooled rates, `d = p_new − p_base` (each
/// `p = Σk_i / Σn_i` over the side's bursts: its `anomaly_rate`), over its standard error
/// under the null hypothesis that both runs measure one process: `z = d / SE`. The
/// p-value is two-sided, from the normal: `p = 2·(1 − Φ(|z|))`. The interval is
/// `d ± z_{1−α/2}·SE` (clipped to [−1, 1]), with the same SE, so that it leaves out 0
/// exactly when `p < α`.
///
/// SE takes the burst as the sampling unit:
/// - `p0 = (k_base + k_new) / (n_base + n_new)`, the rate both would share under the null;
/// - a side with `m ≥ 2` bursts shows the per-request variance `v = n · var_cluster`
///   (`var_cluster` is the interval's ratio-estimator variance, so `v/n` is to it what
///   `p(1−p)/n` is to the binomial), on `m − 1` degrees of freedom;
/// - `σ² = Σ(m−1)·v / Σ(m−1)` pools the two: under the null the runs are one process,
///   whose clustering both sides measure. (A side with no anomaly shows no clustering;
///   taken alone it would make the other side's all-or-nothing bursts pass for
///   independent requests.)
/// - `SE² = max(p0(1−p0), σ²) · (1/n_base + 1/n_new)`: the design effect
///   `σ²/(p0(1−p0))` floored at 1, as the interval floors its deff.
///
/// This is the pooled two-proportion z test with each proportion's variance scaled by a
/// design effect estimated from the bursts: the adjustment of Rao and Scott (1992), with
/// one design effect pooled over both sides (as a quasi-binomial dispersion) rather than
/// one per side.
///
/// Assumptions: within a run, bursts are independent of each other and alike (as for the
/// interval); under the null both runs have the same clustering; the normal approximation
/// holds, which with a few bursts and rates near 0 or 1 is rough (a p-value near α is a
/// hint, not a verdict). Only the variation between bursts is modelled, not that between
/// the machines or the days of the two runs.
///
/// Edges: a side with `n = 0` (nothing to count) cannot be compared: `None`. Both sides at
/// 0 of n (or both at n of n): no difference and no variance, `p = 1`. A side with a
/// single burst has no between-burst variance of its own and takes σ² from the other side
/// (the same process under the null); when neither side has two bursts, each single burst
/// counts as one observation, `SE² = 2·p0(1−p0)`, the worst case the interval takes for
/// one burst too.
pub fn test_change(base: &Side, new: &Side, alpha: f64) -> Option<Change> {
    if base.n == 0 || new.n == 0 {
        return None;
    }
    let diff = new.rate - base.rate;
    let p0 = (base.k + new.k) as f64 / (base.n + new.n) as f64;
    let binomial = p0 * (1.0 - p0);
    if binomial == 0.0 {
        // both at 0 (or both at 1): every burst of both agreed, d = 0
        return Some(Change {
            diff: 0.0,
            interval: (0.0, 0.0),
            z: 0.0,
            p: 1.0,
        });
    }
    let var = match pooled_dispersion(base, new) {
        Some(sigma2) => binomial.max(sigma2) * (1.0 / base.n as f64 + 1.0 / new.n as f64),
        None => 2.0 * binomial,
    };
    let se = var.sqrt();
    let z = diff / se;
    let half = critical_z(alpha) * se;
    Some(Change {
        diff,
        interval: ((diff - half).max(-1.0), (diff + half).min(1.0)),
        z,
        p: two_sided_p(z),
    })
}

/// σ² of [`test_change`]: the per-request variance between bursts, `n · var_cluster`, pooled
/// over the sides with two or more bursts by their degrees of freedom; `None` when
/// neither has two.
fn pooled_dispersion(base: &Side, new: &Side) -> Option<f64> {
    let (mut sum, mut df) = (0.0, 0.0);
    for side in [base, new] {
        if let Some(v) = side.var_cluster {
            let d = (side.bursts - 1) as f64;
            sum += d * side.n as f64 * v;
            df += d;
        }
    }
    (df > 0.0).then(|| sum / df)
}

/// The complementary error function, `erfc(x) = 1 − erf(x)`, to about 1e-15 relative
/// (1e-11 just below 3): below 3 from the series of all-positive terms
/// `erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))` (Abramowitz and Stegun
/// 7.1.6), from 3 on from the continued fraction
/// `erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))` (A&S 7.1.14), which
/// keeps its relative accuracy far into the tail, where small p-values live.
pub fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 3.0 {
        let (mut term, mut sum) = (x, x);
        let mut n = 0.0;
        while term > sum * 1e-17 && n < 200.0 {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        1.0 - 2.0 / PI.sqrt() * (-x * x).exp() * sum
    } else {
        let mut f = x;
        for k in (1..=60).rev() {
            f = x + f64::from(k) / 2.0 / f;
        }
        (-x * x).exp() / (PI.sqrt() * f)
    }
}

/// The standard normal distribution function, `Φ(z) = erfc(−z/√2) / 2` (checks `erfc`
/// against tabled values in the tests).
#[cfg(test)]
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / SQRT_2)
}

/// The two-sided p-value of a standard normal statistic, `2·(1 − Φ(|z|)) = erfc(|z|/√2)`.
pub fn two_sided_p(z: f64) -> f64 {
    erfc(z.abs() / SQRT_2).min(1.0)
}

/// `z_{1−α/2}`: the `z ≥ 0` whose two-sided p-value is `alpha` (1.959964 for 0.05), by
/// bisection (the p-value falls as z grows).
pub fn critical_z(alpha: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 40.0);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if two_sided_p(mid) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// One run's cells, and the amount its counter check divides balance changes by.
pub struct Run<'a> {
    /// The cells, as the store holds them.
    pub cells: &'a [CellResult],
    /// The matrix's `amount`.
    pub amount: i64,
    /// Axes left out when cells are matched (`--ignore-axis`): two runs that differ in
    /// one setting, e.g. workers 1 against workers 4, compare cell by cell.
    pub ignore: &'a [String],
}

/// A cell both runs measured, tested.
#[derive(Clone, Debug)]
pub struct Tested {
    /// The cell.
    pub cell: Cell,
    /// Its anomaly kind (the endpoint's check).
    pub kind: Check,
    /// BASE's side.
    pub base: Side,
    /// NEW's side.
    pub new: Side,
    /// The test.
    pub change: Change,
}

/// What `compare` found.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// The significance level.
    pub alpha: f64,
    /// Cells both runs hold (measured or not).
    pub matched: usize,
    /// The matched cells tested, significant or not.
    pub tested: Vec<Tested>,
    /// Cells only BASE holds.
    pub only_base: Vec<Cell>,
    /// Cells only NEW holds.
    pub only_new: Vec<Cell>,
    /// Matched cells that failed in BASE, NEW or both (named so), not compared.
    pub failed: Vec<(Cell, &'static str)>,
    /// Matched cells measured on both sides that cannot be tested, with why.
    pub untestable: Vec<(Cell, String)>,
    /// Per tested cell, whether Holm's procedure calls its change significant.
    pub rejected: Vec<bool>,
}

impl Comparison {
    /// The tested cells whose change is significant: α is the chance, when nothing
    /// changed, that any cell at all is called changed (Holm's step-down procedure over
    /// the cells tested), not the chance per cell — a nightly of hundreds of cells would
    /// otherwise call a few changed every night by chance alone.
    pub fn significant(&self) -> impl Iterator<Item = &Tested> {
        self.tested
            .iter()
            .zip(&self.rejected)
            .filter(|(_, r)| **r)
            .map(|(t, _)| t)
    }

    /// How many cells got significantly worse (more anomalies).
    pub fn worse(&self) -> usize {
        self.significant().filter(|t| t.change.diff > 0.0).count()
    }

    /// How many cells got significantly better (fewer anomalies).
    pub fn better(&self) -> usize {
        self.significant().filter(|t| t.change.diff < 0.0).count()
    }

    /// Whether a change `fail_on` counts was found (the command then exits 1).
    pub fn fails(&self, fail_on: FailOn) -> bool {
        match fail_on {
            FailOn::Worse => self.worse() > 0,
            FailOn::Any => self.worse() + self.better() > 0,
            FailOn::None => false,
        }
    }
}

/// Matches the cells of two runs by key and tests every cell both measured.
pub fn compare(base: &Run, new: &Run, alpha: f64) -> Comparison {
    let (b, n) = (by_key(base), by_key(new));
    let mut out = Comparison {
        alpha,
        matched: 0,
        tested: vec![],
        only_base: b
            .iter()
            .filter(|(k, _)| !n.contains_key(*k))
            .map(|(_, c)| c.cell.clone())
            .collect(),
        only_new: n
            .iter()
            .filter(|(k, _)| !b.contains_key(*k))
            .map(|(_, c)| c.cell.clone())
            .collect(),
        failed: vec![],
        untestable: vec![],
        rejected: vec![],
    };
    for (key, bc) in &b {
        let Some(nc) = n.get(key) else { continue };
        out.matched += 1;
        let cell = bc.cell.clone();
        match (measured(bc), measured(nc)) {
            (false, false) => out.failed.push((cell, "both")),
            (false, true) => out.failed.push((cell, "BASE")),
            (true, false) => out.failed.push((cell, "NEW")),
            (true, true) => match test_cell(bc, nc, base.amount, new.amount, alpha) {
                Ok(t) => out.tested.push(t),
                Err(why) => out.untestable.push((cell, why)),
            },
        }
    }
    let ps: Vec<f64> = out.tested.iter().map(|t| t.change.p).collect();
    out.rejected = holm(&ps, alpha);
    out
}

/// Holm's step-down procedure: the p-values in ascending order, the i-th (from 0) of m
/// is significant while it is below α/(m − i); the first that is not stops it. It keeps
/// the chance of calling any true non-change significant at most α, whatever the
/// dependence between the tests (Holm 1979).
pub fn holm(ps: &[f64], alpha: f64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..ps.len()).collect();
    order.sort_by(|&a, &b| ps[a].total_cmp(&ps[b]));
    let m = ps.len();
    let mut rejected = vec![false; m];
    for (i, &at) in order.iter().enumerate() {
        if ps[at] >= alpha / (m - i) as f64 {
            break;
        }
        rejected[at] = true;
    }
    rejected
}

fn by_key<'a>(run: &Run<'a>) -> BTreeMap<String, &'a CellResult> {
    run.cells
        .iter()
        .map(|c| (key(&c.cell, run.ignore), c))
        .collect()
}

/// A cell's identity for matching: its key without the ignored axes.
fn key(cell: &Cell, ignore: &[String]) -> String {
    let mut c = cell.clone();
    c.axes.retain(|a, _| !ignore.contains(a));
    c.key()
}

/// Refuses a run in which leaving out the ignored axes makes two cells one.
pub fn distinct(run: &Run, dir: &Path) -> Result<(), String> {
    let mut seen: BTreeMap<String, &Cell> = BTreeMap::new();
    for c in run.cells {
        if let Some(other) = seen.insert(key(&c.cell, run.ignore), &c.cell) {
            return Err(format!(
                "{}: cells '{}' and '{}' differ only in {}: they cannot be told apart without it",
                dir.display(),
                other.label(),
                c.cell.label(),
                run.ignore.join(", ")
            ));
        }
    }
    Ok(())
}

fn measured(c: &CellResult) -> bool {
    c.error.is_none() && c.metrics.is_some()
}

/// Tests one cell both runs measured, or says why it cannot be.
fn test_cell(
    b: &CellResult,
    n: &CellResult,
    base_amount: i64,
    new_amount: i64,
    alpha: f64,
) -> Result<Tested, String> {
    let (kind, base) = side(b, base_amount).map_err(|e| format!("BASE: {e}"))?;
    let (new_kind, new) = side(n, new_amount).map_err(|e| format!("NEW: {e}"))?;
    if kind != new_kind {
        return Err(format!(
            "the anomaly kind changed: {} in BASE, {} in NEW",
            kind.name(),
            new_kind.name()
        ));
    }
    let change = test_change(&base, &new, alpha).ok_or_else(|| {
        let which = if base.n == 0 { "BASE" } else { "NEW" };
        format!("nothing to count in {which} (0 of 0: no rows, rows or tasks written)")
    })?;
    Ok(Tested {
        cell: b.cell.clone(),
        kind,
        base,
        new,
        change,
    })
}

/// A measured cell's check and side, recounted from its repetitions; an error when the
/// recount does not give the stored rate (an amount other than the one assumed).
fn side(c: &CellResult, amount: i64) -> Result<(Check, Side), String> {
    let m = c.metrics.as_ref().ok_or("not measured")?;
    let kind = Check::from_name(&m.anomaly_kind)
        .ok_or_else(|| format!("unknown anomaly kind '{}'", m.anomaly_kind))?;
    let side = Side::of(&metrics::anomaly_bursts(&c.reps, amount, &kind));
    if (side.rate - m.anomaly_rate).abs() > 1e-9 {
        return Err(format!(
            "its repetitions give a rate of {:.3} with amount {amount}, its results {:.3} \
             (does the directory's matrix.yaml give the amount it ran with?)",
            side.rate, m.anomaly_rate
        ));
    }
    Ok((kind, side))
}

/// The report: the table of significant changes, the cells only one side has, those not
/// compared, and the verdict line.
pub fn render(c: &Comparison) -> String {
    let label = labeller(c);
    let mut out = String::new();
    let mut significant: Vec<&Tested> = c.significant().collect();
    // worse first, then the most surprising first
    significant.sort_by(|x, y| {
        (y.change.diff > 0.0)
            .cmp(&(x.change.diff > 0.0))
            .then(x.change.p.total_cmp(&y.change.p))
    });
    if !significant.is_empty() {
        out.push_str(&format!(
            "{} cell(s) changed significantly (α = {} over all cells, Holm; intervals per cell):\n{}\n",
            significant.len(),
            c.alpha,
            table(&significant, c.alpha, &label)
        ));
    }
    for (what, cells) in [("only in BASE", &c.only_base), ("only in NEW", &c.only_new)] {
        if !cells.is_empty() {
            out.push_str(&listing(what, cells.iter().map(&label)));
        }
    }
    out.push_str(&listing(
        "not compared, the cell failed",
        c.failed
            .iter()
            .map(|(cell, side)| format!("{} (in {side})", label(cell))),
    ));
    out.push_str(&listing(
        "not compared",
        c.untestable
            .iter()
            .map(|(cell, why)| format!("{}: {why}", label(cell))),
    ));
    out.push_str(&verdict_line(c));
    out
}

/// `compare: 24 cells matched, 0 changed significantly (α = 0.05)`, or with the worse and
/// better counts; how many were tested when that is fewer than matched.
fn verdict_line(c: &Comparison) -> String {
    let tested = if c.tested.len() < c.matched {
        format!(" ({} tested)", c.tested.len())
    } else {
        String::new()
    };
    let (worse, better) = (c.worse(), c.better());
    let changed = if worse + better == 0 {
        "0 changed significantly".to_string()
    } else {
        format!("{worse} worse, {better} better")
    };
    format!(
        "compare: {} cells matched{tested}, {changed} (α = {} over all cells, Holm)\n",
        c.matched, c.alpha
    )
}

/// `what: N cell(s)`, then the first [`FEW`] one per line and how many more.
fn listing(what: &str, items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        return String::new();
    }
    let mut out = format!("{what}: {} cell(s)\n", items.len());
    for item in items.iter().take(FEW) {
        out.push_str(&format!("  {item}\n"));
    }
    if items.len() > FEW {
        out.push_str(&format!("  … and {} more\n", items.len() - FEW));
    }
    out
}

/// A cell's name in the report: stack, endpoint, and the other axes whose values differ
/// among the cells of either run.
fn labeller(c: &Comparison) -> impl Fn(&Cell) -> String {
    let cells: Vec<&Cell> = c
        .tested
        .iter()
        .map(|t| &t.cell)
        .chain(&c.only_base)
        .chain(&c.only_new)
        .chain(c.failed.iter().map(|f| &f.0))
        .chain(c.untestable.iter().map(|u| &u.0))
        .collect();
    let axes: BTreeSet<&String> = cells.iter().flat_map(|c| c.axes.keys()).collect();
    let varying: Vec<String> = axes
        .into_iter()
        .filter(|a| a.as_str() != "endpoint")
        .filter(|a| {
            let values: BTreeSet<Option<&str>> = cells.iter().map(|c| c.get(a)).collect();
            values.len() > 1
        })
        .cloned()
        .collect();
    move |cell: &Cell| {
        let mut parts = vec![cell.stack.clone(), cell.endpoint().to_string()];
        parts.extend(
            varying
                .iter()
                .filter_map(|a| cell.get(a).map(|v| format!("{a}={v}"))),
        );
        parts.join(" ")
    }
}

/// The terminal table of the significant changes.
fn table(rows: &[&Tested], alpha: f64, label: &impl Fn(&Cell) -> String) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    let level = ((1.0 - alpha) * 1000.0).round() / 10.0;
    t.set_header(vec![
        "cell".to_string(),
        "anomaly".into(),
        "change".into(),
        "base rate [95% CI] k/n".into(),
        "new rate [95% CI] k/n".into(),
        format!("difference [{level}% CI]"),
        "p".into(),
    ]);
    let side = |s: &Side| {
        format!(
            "{:.3} [{:.3}, {:.3}] {}/{}",
            s.rate, s.interval.0, s.interval.1, s.k, s.n
        )
    };
    for r in rows {
        let ch = &r.change;
        t.add_row(vec![
            label(&r.cell),
            r.kind.name().to_string(),
            if ch.diff > 0.0 { "worse" } else { "better" }.to_string(),
            side(&r.base),
            side(&r.new),
            format!(
                "{:+.3} [{:+.3}, {:+.3}]",
                ch.diff, ch.interval.0, ch.interval.1
            ),
            p_value(ch.p),
        ]);
    }
    t.to_string()
}

/// A p-value to three decimals, or in scientific notation below 0.001.
fn p_value(p: f64) -> String {
    if p < 0.001 {
        format!("{p:.1e}")
    } else {
        format!("{p:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(k: &[u64], n: u64) -> Side {
        Side::of(&k.iter().map(|&k| (k, n)).collect::<Vec<_>>())
    }

    fn near(got: f64, want: f64, tol: f64) -> bool {
        (got - want).abs() <= tol
    }

    #[test]
    fn erfc_and_the_normal_against_known_values() {
        // reference values to 15 digits (e.g. Wolfram Alpha, R's pnorm)
        for (x, want) in [
            (0.0, 1.0),
            (0.1, 0.887537083981715),
            (0.5, 0.479500122186953),
            (1.0, 0.157299207050285),
            (2.0, 4.67773498104727e-3),
            (2.9, 4.10978780994589e-5),
            (3.0, 2.20904969985854e-5),
            (5.0, 1.53745979442803e-12),
            (10.0, 2.08848758376254e-45),
        ] {
            let got = erfc(x);
            assert!(
                (got / want - 1.0).abs() < 1e-8,
                "erfc({x}) = {got}, not {want}"
            );
        }
        assert!(near(erfc(-1.0), 1.842700792949715, 1e-14));
        assert!(near(normal_cdf(1.959963984540054), 0.975, 1e-13));
        assert!(near(normal_cdf(-1.0), 0.158655253931457, 1e-14));
        assert_eq!(normal_cdf(0.0), 0.5);
        // Φ(−8) = 6.22096057427178e-16: the tail keeps its digits
        assert!((normal_cdf(-8.0) / 6.22096057427178e-16 - 1.0).abs() < 1e-9);
        assert!(near(two_sided_p(3.0), 2.69979606326019e-3, 1e-15));
        assert_eq!(two_sided_p(0.0), 1.0);
        assert!(near(critical_z(0.05), 1.959963984540054, 1e-12));
        assert!(near(critical_z(0.01), 2.575829303548901, 1e-12));
    }

    #[test]
    fn no_loss_then_losses_in_every_burst_is_worse() {
        // base 0,0,0,0 of 8; new 6,6,6,6 of 8. Both sides' bursts agree exactly
        // (k_i = p·n_i), so var_cluster = 0 on each side and σ² = 0.
        // p0 = 24/64 = 0.375; p0(1−p0) = 0.234375 > σ²;
        // SE² = 0.234375 · (1/32 + 1/32) = 0.0146484375, SE = 0.121031;
        // d = 0.75; z² = 0.5625 / 0.0146484375 = 38.4, z = 6.196773;
        // p = 2·(1 − Φ(6.196773)) = 2·φ(z)/z·(1 − 1/z² + 3/z⁴ − 15/z⁶ …)
        //   = 2 · (e^(−19.2)/√(2π)) / 6.196773 · 0.97573 = 5.763e-10;
        // interval 0.75 ± 1.959964 · 0.121031 = 0.75 ± 0.237216 → [0.51278, 0.98722].
        let c = test_change(&side(&[0, 0, 0, 0], 8), &side(&[6, 6, 6, 6], 8), ALPHA).unwrap();
        assert_eq!(c.diff, 0.75);
        assert!(near(c.z * c.z, 38.4, 1e-9), "{c:?}");
        assert!(near(c.p / 5.763e-10, 1.0, 1e-3), "{c:?}");
        assert!(near(c.interval.0, 0.51278, 1e-5) && near(c.interval.1, 0.98722, 1e-5));
        assert!(c.p < ALPHA && c.diff > 0.0, "significantly worse");
    }

    #[test]
    fn one_more_loss_is_no_change() {
        // base 12/32 as 3,3,3,3; new 13/32 as 4,3,3,3 (of 8).
        // base: every k_i = 0.375·8, var_cluster = 0, v = 0 on 3 df.
        // new: p = 0.40625, k_i − p·n_i = 0.75, −0.25, −0.25, −0.25, Σ² = 0.75,
        // var_cluster = 4/3 · 0.75 / 32² = 1/1024, v = 32/1024 = 0.03125 on 3 df.
        // σ² = (3·0 + 3·0.03125)/6 = 0.015625; p0 = 25/64 = 0.390625,
        // p0(1−p0) = 0.238037 > σ²; SE² = 0.238037/16 = 0.0148773, SE = 0.121973;
        // d = 1/32 = 0.03125, z = 0.256205, p = 2·(1 − Φ(0.256205)) = 0.79779.
        let c = test_change(&side(&[3, 3, 3, 3], 8), &side(&[4, 3, 3, 3], 8), ALPHA).unwrap();
        assert!(near(c.z, 0.256205, 1e-6), "{c:?}");
        assert!(near(c.p, 0.79779, 1e-5), "{c:?}");
        assert!(c.p > ALPHA);
        assert!(c.interval.0 < 0.0 && c.interval.1 > 0.0);
    }

    #[test]
    fn bursts_that_lose_together_are_few_observations() {
        // base 8,8,0,0 of 8 (p = 0.5), new 0,0,0,0 of 8 (p = 0).
        // base: k_i − p·n_i = ±4, Σ² = 64, var_cluster = 4/3 · 64/1024 = 0.083333,
        // v = 32 · 0.083333 = 2.666667 on 3 df; new: v = 0 on 3 df.
        // σ² = 3·2.666667/6 = 1.333333 > p0(1−p0) = 0.25·0.75 = 0.1875 (design effect
        // 7.1); SE² = 1.333333 · (1/32 + 1/32) = 0.083333, SE = 0.288675;
        // d = −0.5, z = −√3 = −1.732051, p = 2·(1 − Φ(1.732051)) = 0.083265: not
        // significant; the interval −0.5 ± 0.565793 = [−1 (clipped), +0.065793] holds 0.
        let base = side(&[8, 8, 0, 0], 8);
        let new = side(&[0, 0, 0, 0], 8);
        let c = test_change(&base, &new, ALPHA).unwrap();
        assert!(near(c.z, -3f64.sqrt(), 1e-12), "{c:?}");
        assert!(near(c.p, 0.083265, 1e-6), "{c:?}");
        assert!(near(c.interval.0, -1.0, 0.0) && near(c.interval.1, 0.065793, 1e-6));
        // The naive test, 32 independent requests a side: SE² = 0.1875/16 = 0.0117188,
        // z = −0.5/0.108253 = −4.618802, p = 3.86e-6: "significantly better". The
        // clustering widens it by four orders of magnitude, in the right direction.
        let naive = |s: &Side| Side {
            var_cluster: Some(0.0),
            bursts: s.n as usize,
            ..s.clone()
        };
        let pooled = test_change(&naive(&base), &naive(&new), ALPHA).unwrap();
        assert!(near(pooled.z, -4.618802, 1e-6), "{pooled:?}");
        assert!(near(pooled.p, 3.8596e-6, 1e-9), "{pooled:?}");
        assert!(c.p > pooled.p * 1000.0 && c.p > ALPHA && pooled.p < ALPHA);
    }

    #[test]
    fn identical_sides_do_not_differ() {
        let c = test_change(&side(&[2, 3, 2, 1], 8), &side(&[2, 3, 2, 1], 8), ALPHA).unwrap();
        assert_eq!((c.diff, c.z, c.p), (0.0, 0.0, 1.0));
        // both 0 of 32: no difference and no variance, p = 1 by the edge rule
        let none = test_change(&side(&[0, 0, 0, 0], 8), &side(&[0, 0, 0, 0], 8), ALPHA).unwrap();
        assert_eq!((none.diff, none.p, none.interval), (0.0, 1.0, (0.0, 0.0)));
        // and both all lost
        let all = test_change(&side(&[8, 8], 8), &side(&[8, 8, 8], 8), ALPHA).unwrap();
        assert_eq!(all.p, 1.0);
    }

    #[test]
    fn a_single_burst_borrows_the_other_sides_variance() {
        // base one burst, 0 of 8; new 2,2,2,2 of 8. The base has no between-burst
        // variance of its own; the new side's bursts agree exactly, σ² = 0.
        // p0 = 8/40 = 0.2, p0(1−p0) = 0.16; SE² = 0.16 · (1/8 + 1/32) = 0.025,
        // SE = 0.158114; d = 0.25, z = 1.581139, p = 0.113846: not significant, as
        // the base's own interval [0, 0.793] says. (Each side's variance on its own
        // rate would give the base 0 and z = 0.25/√(0.25·0.75/32) = 3.27, p = 0.001.)
        let c = test_change(&side(&[0], 8), &side(&[2, 2, 2, 2], 8), ALPHA).unwrap();
        assert!(
            near(c.z, 1.581139, 1e-6) && near(c.p, 0.113846, 1e-6),
            "{c:?}"
        );
        // two single bursts, 0 of 8 and 8 of 8: each is one observation,
        // SE² = 2 · 0.25 = 0.5, z = 1/√0.5 = √2, p = erfc(1) = 0.157299
        let c = test_change(&side(&[0], 8), &side(&[8], 8), ALPHA).unwrap();
        assert!(
            near(c.z, 2f64.sqrt(), 1e-12) && near(c.p, 0.157299, 1e-6),
            "{c:?}"
        );
    }

    #[test]
    fn nothing_to_count_is_not_compared() {
        assert_eq!(
            test_change(&side(&[0, 0], 0), &side(&[1, 2], 8), ALPHA),
            None
        );
        assert_eq!(test_change(&side(&[1, 2], 8), &side(&[], 8), ALPHA), None);
        // bursts with nothing to count are left out, as the interval leaves them out
        assert_eq!(Side::of(&[(0, 0), (3, 8)]).bursts, 1);
    }

    #[test]
    fn the_interval_follows_alpha_and_agrees_with_the_test() {
        let (b, n) = (side(&[1, 2, 1, 2], 8), side(&[3, 4, 2, 3], 8));
        for alpha in [0.01, 0.05, 0.2] {
            let c = test_change(&b, &n, alpha).unwrap();
            let excludes_zero = c.interval.0 > 0.0 || c.interval.1 < 0.0;
            assert_eq!(excludes_zero, c.p < alpha, "α = {alpha}: {c:?}");
        }
        assert!(parse_alpha("0.01").is_ok());
        assert!(parse_alpha("0").is_err() && parse_alpha("1").is_err());
        assert!(parse_alpha("x").is_err());
    }

    #[test]
    fn holm_steps_down_until_the_first_that_fails() {
        // worked by hand: sorted 0.005 < 0.05/4, 0.01 < 0.05/3, 0.03 ≥ 0.05/2: stop
        assert_eq!(
            holm(&[0.01, 0.04, 0.03, 0.005], 0.05),
            vec![true, false, false, true]
        );
        // one test is the test itself
        assert_eq!(holm(&[0.049], 0.05), vec![true]);
        // 0.02 is significant alone, not among 3 (0.02 ≥ 0.05/3)
        assert_eq!(holm(&[0.02, 0.5, 0.9], 0.05), vec![false, false, false]);
        assert!(holm(&[], 0.05).is_empty());
    }
}
