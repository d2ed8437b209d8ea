//! Per-cell metrics (docs/metrics.md#columns) from request records and SQL observations: counts pooled
//! over repetitions, rates with a 95% interval that treats the burst (repetition) as the
//! unit of sampling, and how closely together the requests of a burst were released and
//! started.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use crate::burst::record::{Outcome, RequestRecord};
pub use crate::input::check::Check;

/// Database state read through SQL.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Observation {
    /// The counter (account balance).
    pub balance: i64,
    /// Ledger rows for the account.
    pub ledger_rows: i64,
    /// Sum of the ledger amounts.
    pub ledger_total: i64,
    /// The columns of the endpoint's own check query (`x-racy.observe.<check>`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, i64>,
}

impl Observation {
    fn get(&self, column: &str) -> i64 {
        self.extra.get(column).copied().unwrap_or(0)
    }
}

/// The anomalies `check` counts in one repetition and how many things they are out of.
/// An invariant's queries are read after the burst as they stand (the run refuses a reset
/// that leaves one violated): its `violations`, out of its `out_of` when the stack gives
/// that query, else out of the burst's acknowledged (2xx) requests.
pub fn anomalies(check: &Check, rep: &Repetition, amount: i64) -> (i64, i64) {
    let (before, after) = (&rep.before, &rep.after);
    let d = |c: &str| after.get(c) - before.get(c);
    match check {
        Check::Counter => {
            let rows = after.ledger_rows - before.ledger_rows;
            (
                rows - (after.balance - before.balance) / amount.max(1),
                rows,
            )
        }
        Check::Unique => (d("total") - d("distinct_values"), d("total")),
        Check::Task => (d("missed"), d("tasks")),
        Check::Start => (d("failed"), d("starts")),
        Check::Invariant(_) => {
            let of = match after.extra.get(OUT_OF) {
                Some(&n) => n,
                None => rep.records.iter().filter(|r| r.is_acked()).count() as i64,
            };
            (after.get(VIOLATIONS), of)
        }
    }
}

/// The observation column of an invariant's `violations` query.
pub const VIOLATIONS: &str = "violations";
/// The observation column of an invariant's `out_of` query, when it has one.
pub const OUT_OF: &str = "out_of";

/// One repetition of a cell: the state before and after, and the burst between.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Repetition {
    /// State after the reset.
    pub before: Observation,
    /// State once every request finished.
    pub after: Observation,
    /// First send to last response, ms.
    pub burst_ms: f64,
    /// Every request.
    pub records: Vec<RequestRecord>,
}

#[cfg(test)]
impl Repetition {
    /// A repetition observed `before` and `after`, with a 1 ms burst and no records (for
    /// tests).
    pub fn observed(before: Observation, after: Observation) -> Repetition {
        Repetition {
            before,
            after,
            burst_ms: 1.0,
            records: vec![],
        }
    }
}

/// The metric columns of one cell, pooled over its repetitions.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CellMetrics {
    /// 2xx responses.
    pub acked: u64,
    /// Responses with another status.
    pub failed: u64,
    /// 4xx responses.
    pub errors_4xx: u64,
    /// 5xx responses.
    pub errors_5xx: u64,
    /// Requests the client gave up on.
    pub timeouts: u64,
    /// Requests that could not connect.
    pub conn_errors: u64,
    /// Refused by the database as a serialization failure or deadlock
    /// (PostgreSQL 40001/40P01, MariaDB 1020/1213).
    pub serialization_failures: u64,
    /// Gave up waiting for a lock (MariaDB 1205/3572, PostgreSQL 55P03).
    pub lock_timeouts: u64,
    /// The proxy got no answer from the app in time (502/504).
    pub worker_timeouts: u64,
    /// Any other non-2xx response.
    pub other_errors: u64,
    /// Retries the app reported (`retries` in response bodies).
    pub retries: u64,
    /// Constraint violations that reached the client: a unique key (MariaDB 1062,
    /// PostgreSQL 23505) or a CHECK (MariaDB 4025, MySQL 3819, PostgreSQL 23514, SQLite
    /// SQLITE_CONSTRAINT_CHECK).
    pub integrity_errors: u64,
    /// SQLite refused the write: "database is locked" (SQLITE_BUSY).
    #[serde(default)]
    pub database_locked: u64,
    /// Ledger rows written.
    pub ledger_rows: i64,
    /// Increments that reached the balance.
    pub applied: i64,
    /// ledger_rows − applied.
    pub lost_updates: i64,
    /// Increments in the balance with no ledger row, summed over the repetitions whose
    /// balance grew by more than their ledger (a different anomaly from a lost update).
    #[serde(default)]
    pub excess_applied: i64,
    /// Lost ledger rows / ledger_rows (0 when no rows), counting each repetition's losses:
    /// a repetition with an excess counts 0 there, so the rate is never negative.
    pub lost_rate: f64,
    /// Lower end of its 95% interval over bursts (see [`cluster_wilson`]).
    pub lost_rate_lo: f64,
    /// Upper end of its 95% interval over bursts.
    pub lost_rate_hi: f64,
    /// acked − ledger_rows.
    pub ack_gap: i64,
    /// App processes (host and pid) that served the bursts; `None` when no answer named
    /// its process (an app whose responses carry no `pid`).
    pub distinct_pids: Option<u64>,
    /// Client side, `wait_ms = 0` only: first to last final byte written in a burst, µs
    /// (median over repetitions).
    #[serde(default)]
    pub release_spread_us: Option<f64>,
    /// Server side, `wait_ms = 0` only: spread of `t_start` over the requests that started
    /// before the first one finished, ms with µs precision (median over repetitions);
    /// `None` where the stack has fewer handlers than a burst has requests.
    pub start_skew_ms: Option<f64>,
    /// Median client latency.
    pub p50_ms: Option<f64>,
    /// 95th percentile client latency.
    pub p95_ms: Option<f64>,
    /// Largest client latency.
    pub max_ms: Option<f64>,
    /// Mean over repetitions of first send to last response.
    pub burst_ms: f64,
    /// What the endpoint checks: counter, unique or task.
    pub anomaly_kind: String,
    /// Anomalies of that kind (for counters, the lost updates).
    pub anomalies: i64,
    /// Anomalies / what they are out of (0 when nothing), counting each repetition's
    /// anomalies (never negative, as `lost_rate`).
    pub anomaly_rate: f64,
    /// Lower end of its 95% interval over bursts (see [`cluster_wilson`]).
    pub anomaly_rate_lo: f64,
    /// Upper end of its 95% interval over bursts.
    pub anomaly_rate_hi: f64,
}

/// Database error codes of serialization failures and deadlocks.
const SERIALIZATION_CODES: &[&str] = &["40001", "40P01", "1020", "1213"];
/// Database error codes of lock waits that gave up.
const LOCK_TIMEOUT_CODES: &[&str] = &["1205", "3572", "55P03"];
/// Database error codes of a database that refused a writer (SQLite's "database is locked").
const BUSY_CODES: &[&str] = &["SQLITE_BUSY", "SQLITE_LOCKED"];
/// Database error codes of unique-key and CHECK constraint violations.
const INTEGRITY_CODES: &[&str] = &[
    "1062",
    "23505",
    "4025",
    "3819",
    "23514",
    "SQLITE_CONSTRAINT_CHECK",
];

/// The kind of a failed response: each kind is one error column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Refused as a serialization failure or deadlock (`serialization_failures`).
    Serialization,
    /// Gave up waiting for a lock (`lock_timeouts`).
    LockTimeout,
    /// A unique-key or CHECK constraint violation reached the client (`integrity_errors`).
    Integrity,
    /// SQLite refused the writer (`database_locked`).
    DatabaseLocked,
    /// The proxy got no answer from the app, or Gunicorn aborted the worker that served
    /// the request for outlasting its timeout (`worker_timeouts`).
    WorkerTimeout,
    /// Anything else (`other_errors`).
    Other,
}

/// Whether a 500's body is the page Gunicorn writes itself when the request's handler
/// raised past the framework: a Django view's exceptions become Django's own response, so
/// what escapes is the `SystemExit` of the abort with which Gunicorn's arbiter ends a
/// worker that stayed silent past `--timeout` (its log says `WORKER TIMEOUT`).
fn is_gunicorn_abort(body: Option<&serde_json::Value>) -> bool {
    body.and_then(|b| b.as_str()).is_some_and(|text| {
        text.trim_start().starts_with("<html>")
            && text.contains("<title>Internal Server Error</title>")
            && text.contains("<h1><p>Internal Server Error</p></h1>")
    })
}

impl ErrorClass {
    /// The class of a failed response, from the database error code in its body, a lock
    /// wait the app gave up, or the proxy's status.
    pub fn of(r: &RequestRecord) -> ErrorClass {
        let code = r
            .body
            .as_ref()
            .and_then(|b| b.get("db_code"))
            .map(|c| match c {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        let lock_given_up = r
            .body
            .as_ref()
            .and_then(|b| b.get("lock_timeout"))
            .is_some_and(|v| v == true);
        match (code.as_deref(), r.status) {
            (Some(c), _) if SERIALIZATION_CODES.contains(&c) => ErrorClass::Serialization,
            (Some(c), _) if LOCK_TIMEOUT_CODES.contains(&c) => ErrorClass::LockTimeout,
            (Some(c), _) if INTEGRITY_CODES.contains(&c) => ErrorClass::Integrity,
            (Some(c), _) if BUSY_CODES.contains(&c) => ErrorClass::DatabaseLocked,
            _ if lock_given_up => ErrorClass::LockTimeout,
            (_, Some(502 | 504)) => ErrorClass::WorkerTimeout,
            (_, Some(500)) if is_gunicorn_abort(r.body.as_ref()) => ErrorClass::WorkerTimeout,
            _ => ErrorClass::Other,
        }
    }

    /// The metrics counter of this class.
    fn counter(self, m: &mut CellMetrics) -> &mut u64 {
        match self {
            ErrorClass::Serialization => &mut m.serialization_failures,
            ErrorClass::LockTimeout => &mut m.lock_timeouts,
            ErrorClass::Integrity => &mut m.integrity_errors,
            ErrorClass::DatabaseLocked => &mut m.database_locked,
            ErrorClass::WorkerTimeout => &mut m.worker_timeouts,
            ErrorClass::Other => &mut m.other_errors,
        }
    }
}

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The 95% Wilson score interval of `successes` out of `n`; `(0, 1)` when `n = 0` (the
/// plain form of [`wilson_effective`], kept for the cases worked by hand below).
#[cfg(test)]
pub fn wilson(successes: u64, n: u64) -> (f64, f64) {
    wilson_effective(successes as f64, n as f64)
}

/// The 95% Wilson score interval of `x` out of `n`, where both may be effective
/// (fractional) counts; `(0, 1)` when `n` is not positive.
fn wilson_effective(x: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let p = x / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    // At p = 0 the lower bound is exactly 0 (center and half are both z²/2n / denom), and
    // at p = 1 the upper bound exactly 1; computed, they would miss by a rounding error
    // (3.5e-18) that results files would print.
    let lo = if p <= 0.0 {
        0.0
    } else {
        (center - half).max(0.0)
    };
    let hi = if p >= 1.0 {
        1.0
    } else {
        (center + half).min(1.0)
    };
    (lo, hi)
}

/// The 95% interval of a rate whose trials come in bursts. `bursts` holds one
/// `(k_i, n_i)` per burst (repetition): its anomalies and what they are out of.
///
/// Assumptions: bursts are independent of each other and alike; the requests within a
/// burst are not independent (one stale read makes several requests lose together), so
/// the burst, not the request, is the unit of sampling. The interval is Wilson's on a
/// Kish effective sample size. With `n = Σn_i`, `p = Σk_i / n` and `m` bursts:
///
/// - `var_cluster = m/(m−1) · Σ(k_i − p·n_i)² / n²` (the ratio estimator's variance:
///   how far each burst's total strays from what the pooled rate predicts for it),
/// - `var_binomial = p(1−p) / n` (the variance if every request were its own coin),
/// - `deff = max(1, var_cluster / var_binomial)`, `n_eff = n / deff`,
/// - the interval is Wilson(`p·n_eff`, `n_eff`).
///
/// It is never narrower than the pooled Wilson interval (the floor at 1), and it widens
/// towards "as many trials as bursts" when bursts win or lose as a whole. With a single
/// burst there is no between-burst variance to estimate, so the worst case the
/// assumptions allow is taken: every request of the burst shares one fate (`deff = n`),
/// `n_eff = 1`, and the interval is wide. With `p` at 0 or 1 over two or more bursts,
/// every burst agreed exactly: the between-burst variance is estimated as 0, the ratio
/// is 0/0, and the floor gives the pooled interval (with no loss to show how losses
/// group, it is the interval of independent requests). Bursts with `n_i = 0` carry
/// nothing and are left out; a `k_i` above its `n_i` counts as `n_i`.
pub fn cluster_wilson(bursts: &[(u64, u64)]) -> (f64, f64) {
    // Why this and not a t-interval on the per-burst rates: with the 3–6 bursts a cell
    // usually has, a t-interval leaves [0, 1] and collapses to a point when every burst
    // agrees (0 lost everywhere says "exactly 0"); Wilson on an effective size stays
    // inside [0, 1], keeps the pooled behaviour at the boundary, and moves between the
    // two extremes (independent requests, all-or-nothing bursts) as the data say.
    let (k, n) = counted(bursts)
        .iter()
        .fold((0.0, 0.0), |(k, n), b| (k + b.0, n + b.1));
    if n == 0.0 {
        return (0.0, 1.0);
    }
    let p = k / n;
    let n_eff = match cluster_variance(bursts) {
        None => 1.0,
        Some(var_cluster) => {
            let var_binomial = p * (1.0 - p) / n;
            // The alternative for p = 0 (n_eff = m, as for one burst) would give no loss
            // at all a wider upper bound than one loss in one burst (0.49 against 0.16 for
            // 4 bursts of 8): losing an update would make a verdict look safer.
            let deff = if var_binomial > 0.0 {
                (var_cluster / var_binomial).max(1.0)
            } else {
                1.0
            };
            n / deff
        }
    };
    wilson_effective(p * n_eff, n_eff)
}

/// The bursts that count, as [`cluster_wilson`] takes them: those with `n_i > 0`, with
/// `k_i` at most `n_i`, as floats.
fn counted(bursts: &[(u64, u64)]) -> Vec<(f64, f64)> {
    bursts
        .iter()
        .filter(|&&(_, n)| n > 0)
        .map(|&(k, n)| (k.min(n) as f64, n as f64))
        .collect()
}

/// `var_cluster` of [`cluster_wilson`]: the ratio estimator's variance of the pooled rate
/// `p = Σk_i / Σn_i`, `m/(m−1) · Σ(k_i − p·n_i)² / n²` over the `m` bursts that count
/// (`n_i > 0`, `k_i` at most `n_i`); `None` when fewer than two bursts count, as there is
/// then no between-burst variance to estimate.
pub fn cluster_variance(bursts: &[(u64, u64)]) -> Option<f64> {
    let bursts = counted(bursts);
    if bursts.len() < 2 {
        return None;
    }
    let m = bursts.len() as f64;
    let n: f64 = bursts.iter().map(|b| b.1).sum();
    let p = bursts.iter().map(|b| b.0).sum::<f64>() / n;
    Some(
        m / (m - 1.0)
            * bursts
                .iter()
                .map(|(k, ni)| (k - p * ni).powi(2))
                .sum::<f64>()
            / (n * n),
    )
}

/// Σk_i / Σn_i of bursts as [`cluster_wilson`] takes them (0 when there is nothing).
fn pooled_rate(bursts: &[(u64, u64)]) -> f64 {
    let (k, n) = bursts
        .iter()
        .fold((0, 0), |(k, n), &(bk, bn)| (k + bk, n + bn));
    if n > 0 { k as f64 / n as f64 } else { 0.0 }
}

/// One burst's anomalies and what they are out of, as the interval takes them. A
/// negative count (a balance that grew by more than its ledger) is not this anomaly and
/// counts 0: it is reported on its own, as `excess_applied`. A count above its total (a
/// balance that shrank) counts as all of them; it shows as a negative `applied`.
fn burst_counts(anomalies: i64, of: i64) -> (u64, u64) {
    let of = of.max(0);
    (anomalies.clamp(0, of) as u64, of as u64)
}

/// One `(k_i, n_i)` per repetition: its anomalies of the `check`'s kind and what they are
/// out of, as a cell's `anomaly_rate` and its interval count them: a negative count (an
/// excess) as 0, a count above its total as all of them. `amount` is what each request
/// adds (the matrix's `amount`).
pub fn anomaly_bursts(reps: &[Repetition], amount: i64, check: &Check) -> Vec<(u64, u64)> {
    reps.iter()
        .map(|rep| {
            let (anomalies, of) = anomalies(check, rep, amount);
            burst_counts(anomalies, of)
        })
        .collect()
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// The median (the mean of the two middle values of an even count).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Median over repetitions of the client's release spread, µs: first to last final byte
/// written, over the requests whose bytes went out (those that got a response or timed
/// out; a connection error may have written nothing). For the default last-byte release
/// `sent_unix_ns` is taken right after each request's final byte is written.
fn release_spread_us(reps: &[Repetition]) -> Option<f64> {
    let spreads = reps
        .iter()
        .filter_map(|rep| {
            let sent: Vec<i64> = rep
                .records
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Response | Outcome::Timeout))
                .map(|r| r.sent_unix_ns)
                .collect();
            let (first, last) = (sent.iter().min()?, sent.iter().max()?);
            (sent.len() >= 2).then(|| (last - first) as f64 / 1e3)
        })
        .collect();
    median(spreads)
}

/// The server's start spread of one burst, ns: max − min `t_start` over the requests that
/// started before the first one finished (the smallest `t_end`), when at least two did.
/// A request that started later may have waited for a free handler, and its start would
/// measure the queue, not the release. With `all_must_overlap`, `None` unless every
/// request of the burst has a `t_start` before that first finish.
fn burst_start_spread_ns(records: &[RequestRecord], all_must_overlap: bool) -> Option<i64> {
    let first_end = records.iter().filter_map(|r| r.server_ns("t_end")).min()?;
    let starts: Vec<Option<i64>> = records.iter().map(|r| r.server_ns("t_start")).collect();
    if all_must_overlap && !starts.iter().all(|s| s.is_some_and(|s| s < first_end)) {
        return None;
    }
    let overlapping: Vec<i64> = starts
        .into_iter()
        .flatten()
        .filter(|&s| s < first_end)
        .collect();
    if overlapping.len() < 2 {
        return None;
    }
    Some(overlapping.iter().max()? - overlapping.iter().min()?)
}

/// `start_skew_ms` of a cell: the median over repetitions of the burst's start spread,
/// in ms rounded to the µs. A stack with fewer `handlers` than a burst has requests
/// queues some of them by construction, and queueing is not skew: blank. A stack that
/// does not declare its handlers must show it in the data: blank unless, in every
/// repetition, every request started before the first one finished.
fn start_skew_ms(reps: &[Repetition], handlers: Option<u64>) -> Option<f64> {
    let mut spreads = Vec::with_capacity(reps.len());
    for rep in reps {
        let spread = match handlers {
            Some(h) if h < rep.records.len() as u64 => return None,
            Some(_) => burst_start_spread_ns(&rep.records, false),
            // one burst that queued makes the whole cell's figure suspect
            None => Some(burst_start_spread_ns(&rep.records, true)?),
        };
        spreads.extend(spread.map(|ns| ns as f64));
    }
    median(spreads).map(|ns| (ns / 1e3).round() / 1e3)
}

/// Adds one repetition's request records to the response and error counts, and collects
/// the processes that served them and their latencies.
fn count_records(
    m: &mut CellMetrics,
    records: &[RequestRecord],
    pids: &mut BTreeSet<(String, i64)>,
    latencies: &mut Vec<f64>,
) {
    for r in records {
        match r.outcome {
            Outcome::Timeout => m.timeouts += 1,
            Outcome::ConnError => m.conn_errors += 1,
            Outcome::Response => {
                if let Some(l) = r.latency_ms {
                    latencies.push(l);
                }
                m.retries += r
                    .body
                    .as_ref()
                    .and_then(|b| b.get("retries"))
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                if !matches!(r.status, Some(200..=299)) {
                    *ErrorClass::of(r).counter(m) += 1;
                }
                match r.status {
                    Some(200..=299) => {
                        m.acked += 1;
                        pids.extend(r.process());
                    }
                    Some(s) => {
                        m.failed += 1;
                        if (400..500).contains(&s) {
                            m.errors_4xx += 1;
                        } else if s >= 500 {
                            m.errors_5xx += 1;
                        }
                    }
                    None => m.failed += 1,
                }
            }
        }
    }
}

/// Computes a cell's metrics. `applied` per repetition is the balance change divided by
/// `amount` (whole increments); counts are summed over repetitions; anomalies follow the
/// endpoint's `check`; rates and their intervals take each repetition as one burst.
/// `handlers` is how many requests the stack serves at once, when it says (see
/// `x-racy.handlers`).
pub fn compute(
    reps: &[Repetition],
    amount: i64,
    wait_ms: u64,
    check: &Check,
    handlers: Option<u64>,
) -> CellMetrics {
    let mut m = CellMetrics {
        anomaly_kind: check.name().to_string(),
        ..Default::default()
    };
    let mut lost_bursts = Vec::with_capacity(reps.len());
    let anomaly_bursts = anomaly_bursts(reps, amount, check);
    let mut pids = BTreeSet::new();
    let mut latencies = Vec::new();
    for rep in reps {
        let rows = rep.after.ledger_rows - rep.before.ledger_rows;
        let applied = (rep.after.balance - rep.before.balance) / amount.max(1);
        m.ledger_rows += rows;
        m.applied += applied;
        m.excess_applied += (applied - rows).max(0);
        lost_bursts.push(burst_counts(rows - applied, rows));
        m.anomalies += anomalies(check, rep, amount).0;
        count_records(&mut m, &rep.records, &mut pids, &mut latencies);
    }
    m.lost_updates = m.ledger_rows - m.applied;
    m.lost_rate = pooled_rate(&lost_bursts);
    (m.lost_rate_lo, m.lost_rate_hi) = cluster_wilson(&lost_bursts);
    m.anomaly_rate = pooled_rate(&anomaly_bursts);
    (m.anomaly_rate_lo, m.anomaly_rate_hi) = cluster_wilson(&anomaly_bursts);
    m.ack_gap = m.acked as i64 - m.ledger_rows;
    m.distinct_pids = (!pids.is_empty()).then_some(pids.len() as u64);
    // spaced launches are not meant to be simultaneous: no spread, no skew
    if wait_ms == 0 {
        m.release_spread_us = release_spread_us(reps);
        m.start_skew_ms = start_skew_ms(reps, handlers);
    }
    latencies.sort_by(f64::total_cmp);
    m.p50_ms = percentile(&latencies, 0.50);
    m.p95_ms = percentile(&latencies, 0.95);
    m.max_ms = latencies.last().copied();
    m.burst_ms = if reps.is_empty() {
        0.0
    } else {
        reps.iter().map(|r| r.burst_ms).sum::<f64>() / reps.len() as f64
    };
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(rep: u32, pid: i64, t_read: i64, latency: f64) -> RequestRecord {
        RequestRecord {
            repetition: rep,
            index: 0,
            outcome: Outcome::Response,
            status: Some(200),
            sent_unix_ns: 0,
            latency_ms: Some(latency),
            body: Some(json!({"pid": pid, "t_read": t_read})),
            error: None,
        }
    }

    fn status(s: u16) -> RequestRecord {
        RequestRecord {
            status: Some(s),
            body: None,
            ..ok(0, 0, 0, 5.0)
        }
    }

    fn obs(balance: i64, rows: i64) -> Observation {
        Observation {
            balance,
            ledger_rows: rows,
            ledger_total: rows * 100,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn replicas_with_the_same_pids_are_told_apart() {
        let served = |host: &str, pid: i64| RequestRecord {
            repetition: 0,
            index: 0,
            outcome: Outcome::Response,
            status: Some(200),
            sent_unix_ns: 0,
            latency_ms: Some(1.0),
            body: Some(json!({"host": host, "pid": pid})),
            error: None,
        };
        let reps = vec![Repetition {
            before: obs(0, 0),
            after: obs(300, 3),
            burst_ms: 1.0,
            records: vec![served("a", 8), served("b", 8), served("a", 8)],
        }];
        assert_eq!(
            compute(&reps, 100, 0, &Check::Counter, None)
                .distinct_pids
                .unwrap_or(0),
            2
        );
    }

    #[test]
    fn wilson_matches_known_values() {
        let (lo, hi) = wilson(0, 10);
        assert!(lo == 0.0 && (hi - 0.2775).abs() < 1e-4, "{lo} {hi}");
        // exactly 0, not a rounding error away (96 of 96 requests kept, as a run prints)
        assert_eq!(wilson(0, 96).0, 0.0);
        assert_eq!(wilson(96, 96).1, 1.0);
        let (lo, hi) = wilson(5, 10);
        assert!(
            (lo - 0.2366).abs() < 1e-4 && (hi - 0.7634).abs() < 1e-4,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(10, 10);
        assert!((lo - 0.7225).abs() < 1e-4 && hi == 1.0, "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn pooled_lost_updates() {
        // rep 0: 4 acked, 4 rows, balance +200 → 2 applied, 2 lost; skew 3 ms
        // rep 1: 3 acked + one 409 + one 502 + one timeout, 3 rows, +300 → none lost; skew 1 ms
        let reps = vec![
            Repetition {
                before: obs(0, 0),
                after: obs(200, 4),
                burst_ms: 10.0,
                records: vec![
                    ok(0, 1, 1_000_000, 1.0),
                    ok(0, 2, 2_000_000, 2.0),
                    ok(0, 1, 4_000_000, 3.0),
                    ok(0, 3, 1_500_000, 4.0),
                ],
            },
            Repetition {
                before: obs(0, 0),
                after: obs(300, 3),
                burst_ms: 20.0,
                records: vec![
                    ok(1, 1, 5_000_000, 5.0),
                    ok(1, 4, 6_000_000, 6.0),
                    ok(1, 1, 5_500_000, 7.0),
                    status(409),
                    status(502),
                    RequestRecord {
                        outcome: Outcome::Timeout,
                        status: None,
                        latency_ms: None,
                        ..ok(1, 0, 0, 0.0)
                    },
                ],
            },
        ];
        let m = compute(&reps, 100, 0, &Check::Counter, None);
        assert_eq!(
            (m.acked, m.failed, m.errors_4xx, m.errors_5xx),
            (7, 2, 1, 1)
        );
        assert_eq!((m.timeouts, m.conn_errors), (1, 0));
        // the 409 without a code and the 502 from the proxy
        assert_eq!(
            (m.other_errors, m.worker_timeouts, m.serialization_failures),
            (1, 1, 0)
        );
        assert_eq!((m.ledger_rows, m.applied, m.lost_updates), (7, 5, 2));
        assert!((m.lost_rate - 2.0 / 7.0).abs() < 1e-12);
        // the interval takes the repetitions as bursts: 2 of 4, then 0 of 3
        let (lo, hi) = cluster_wilson(&[(2, 4), (0, 3)]);
        assert_eq!((m.lost_rate_lo, m.lost_rate_hi), (lo, hi));
        assert!(m.lost_rate_lo < m.lost_rate && m.lost_rate < m.lost_rate_hi);
        let (pooled_lo, pooled_hi) = wilson(2, 7);
        assert!(
            lo < pooled_lo && hi > pooled_hi,
            "the bursts disagree: wider"
        );
        assert_eq!(m.ack_gap, 0);
        assert_eq!(m.distinct_pids, Some(4));
        // latencies 1..7 and 5, 5 (the 409 and 502): sorted 1 2 3 4 5 5 5 6 7
        assert_eq!(m.p50_ms, Some(5.0));
        assert_eq!(m.p95_ms, Some(7.0));
        assert_eq!(m.max_ms, Some(7.0));
        assert_eq!(m.burst_ms, 15.0);
    }

    #[test]
    fn errors_are_classified_by_database_code() {
        let with = |status: u16, body: serde_json::Value| RequestRecord {
            status: Some(status),
            body: Some(body),
            ..ok(0, 0, 0, 1.0)
        };
        let records = vec![
            with(409, json!({"db_code": "40001"})),
            with(409, json!({"db_code": 1213})),
            with(409, json!({"db_code": 1020})),
            with(409, json!({"db_code": 1205})),
            with(409, json!({"db_code": "55P03"})),
            with(504, json!("gateway")),
            // Gunicorn's own page for a worker it aborted; Django's 500 page is not it
            with(
                500,
                json!(
                    "<html>\n  <head>\n    <title>Internal Server Error</title>\n  </head>\n  <body>\n    <h1><p>Internal Server Error</p></h1>\n    \n  </body>\n</html>\n"
                ),
            ),
            with(500, json!("<h1>Server Error (500)</h1>")),
            with(500, json!({"db_code": 1062})),
            with(409, json!({"db_code": "23514"})),
            with(500, json!({"db_code": 2006})),
            with(409, json!({"db_code": "SQLITE_BUSY"})),
            with(409, json!({"lock_timeout": true})),
            with(200, json!({"pid": 1, "retries": 3})),
        ];
        let reps = vec![Repetition {
            before: obs(0, 0),
            after: obs(100, 1),
            burst_ms: 1.0,
            records,
        }];
        let m = compute(&reps, 100, 5, &Check::Counter, None);
        assert_eq!(m.serialization_failures, 3);
        assert_eq!(m.lock_timeouts, 3);
        assert_eq!(m.worker_timeouts, 2);
        assert_eq!(m.integrity_errors, 2);
        assert_eq!(m.database_locked, 1);
        assert_eq!(m.other_errors, 2);
        assert_eq!(m.retries, 3);
        assert_eq!(m.failed, 13);
    }

    #[test]
    fn anomalies_follow_the_check() {
        let unique = |total: i64, distinct: i64| Observation {
            extra: BTreeMap::from([
                ("total".to_string(), total),
                ("distinct_values".to_string(), distinct),
            ]),
            ..obs(0, 0)
        };
        let reps = vec![
            Repetition::observed(unique(0, 0), unique(4, 1)),
            Repetition::observed(unique(0, 0), unique(1, 1)),
        ];
        let m = compute(&reps, 100, 0, &Check::Unique, None);
        assert_eq!((m.anomaly_kind.as_str(), m.anomalies), ("unique", 3));
        assert!((m.anomaly_rate - 0.6).abs() < 1e-12);
        // bursts of 3 of 4 and 0 of 1 duplicates
        assert_eq!(
            (m.anomaly_rate_lo, m.anomaly_rate_hi),
            cluster_wilson(&[(3, 4), (0, 1)])
        );
        // counters: the anomalies are the lost updates
        let c = compute(
            &[Repetition::observed(obs(0, 0), obs(200, 4))],
            100,
            0,
            &Check::Counter,
            None,
        );
        assert_eq!((c.anomalies, c.lost_updates, c.anomaly_rate), (2, 2, 0.5));
        let tasks = Observation {
            extra: BTreeMap::from([("tasks".to_string(), 8), ("missed".to_string(), 6)]),
            ..obs(0, 0)
        };
        assert_eq!(
            anomalies(&Check::Task, &Repetition::observed(obs(0, 0), tasks), 100),
            (6, 8)
        );
        // a start check counts the starts reported during the burst, and the failed ones
        let starts = |n: i64, failed: i64| Observation {
            extra: BTreeMap::from([("starts".to_string(), n), ("failed".to_string(), failed)]),
            ..obs(0, 0)
        };
        assert_eq!(
            anomalies(
                &Check::Start,
                &Repetition::observed(starts(2, 1), starts(3, 1)),
                100
            ),
            (0, 1)
        );
        assert_eq!(
            anomalies(
                &Check::Start,
                &Repetition::observed(starts(0, 0), starts(1, 1)),
                100
            ),
            (1, 1)
        );
    }

    #[test]
    fn an_invariant_counts_its_violations_out_of_acked_requests_or_its_own_total() {
        // Worked by hand: 8 debits of 100 against a wallet of 100, all acknowledged but
        // one (a 409), the ledger left at -600: 6 debits below zero. Out of the 7 acked
        // requests: 6/7. With an out_of query answering 1 (one state per burst) and 1
        // violation: 1/1, whatever the answers were.
        let check = Check::Invariant("no_overdraft".into());
        let state = |violations: i64, out_of: Option<i64>| {
            let mut extra = BTreeMap::from([(VIOLATIONS.to_string(), violations)]);
            if let Some(n) = out_of {
                extra.insert(OUT_OF.to_string(), n);
            }
            Observation { extra, ..obs(0, 0) }
        };
        let answers = |statuses: &[u16]| {
            statuses
                .iter()
                .enumerate()
                .map(|(i, &s)| RequestRecord::answered(0, i as u32, s, serde_json::json!({})))
                .collect::<Vec<_>>()
        };
        let mut rep = Repetition::observed(state(0, None), state(6, None));
        rep.records = answers(&[200, 200, 200, 409, 200, 200, 200, 200]);
        assert_eq!(anomalies(&check, &rep, 100), (6, 7));
        let mut rep = Repetition::observed(state(0, Some(1)), state(1, Some(1)));
        rep.records = answers(&[200, 500]);
        assert_eq!(anomalies(&check, &rep, 100), (1, 1));
        // pooled over two bursts: 6/7 and 0/8 → 6/15, the kind is the invariant's name
        let mut calm = Repetition::observed(state(0, None), state(0, None));
        calm.records = answers(&[200; 8]);
        let mut bad = Repetition::observed(state(0, None), state(6, None));
        bad.records = answers(&[200, 200, 200, 409, 200, 200, 200, 200]);
        let m = compute(&[bad, calm], 100, 0, &check, None);
        assert_eq!(m.anomaly_kind, "no_overdraft");
        assert_eq!((m.anomalies, m.anomaly_rate), (6, 6.0 / 15.0));
        assert_eq!(
            (m.anomaly_rate_lo, m.anomaly_rate_hi),
            cluster_wilson(&[(6, 7), (0, 8)])
        );
    }

    #[test]
    fn the_bursts_of_a_cell_are_those_its_rate_counts() {
        // 8 rows, +500 → 3 lost; 8 rows, +1000 → an excess of 2, counted 0; and a
        // unique check, 4 rows with 1 distinct value → 3 of 4
        let reps = vec![
            Repetition::observed(obs(0, 0), obs(500, 8)),
            Repetition::observed(obs(100, 2), obs(1100, 10)),
        ];
        let bursts = anomaly_bursts(&reps, 100, &Check::Counter);
        assert_eq!(bursts, vec![(3, 8), (0, 8)]);
        let m = compute(&reps, 100, 0, &Check::Counter, None);
        assert_eq!(m.anomaly_rate, 3.0 / 16.0);
        assert_eq!(
            (m.anomaly_rate_lo, m.anomaly_rate_hi),
            cluster_wilson(&bursts)
        );
        // k_i − p·n_i = ±1.5: var_cluster = 2/1 · 4.5 / 256 = 0.03515625
        assert_eq!(cluster_variance(&bursts), Some(0.03515625));
        assert_eq!(
            cluster_variance(&[(3, 8), (0, 0)]),
            None,
            "one burst counts"
        );
        assert_eq!(Check::from_name("task"), Some(Check::Task));
        assert_eq!(Check::from_name("start"), Some(Check::Start));
        assert_eq!(Check::from_name("counter"), Some(Check::Counter));
        assert_eq!(Check::from_name("lost updates"), None);
    }

    #[test]
    fn no_rows_no_rate() {
        let reps = vec![Repetition {
            before: obs(0, 0),
            after: obs(0, 0),
            burst_ms: 1.0,
            records: vec![status(404)],
        }];
        let m = compute(&reps, 100, 0, &Check::Counter, None);
        assert_eq!((m.ledger_rows, m.lost_updates, m.lost_rate), (0, 0, 0.0));
        assert_eq!(m.ack_gap, 0);
        assert_eq!(m.errors_4xx, 1);
        assert_eq!((m.lost_rate_lo, m.lost_rate_hi), (0.0, 1.0));
        assert_eq!(m.start_skew_ms, None);
    }

    /// z² for the hand computations below: 1.959964² = 3.841459.
    fn close(got: (f64, f64), want: (f64, f64)) -> bool {
        (got.0 - want.0).abs() < 1e-4 && (got.1 - want.1).abs() < 1e-4
    }

    fn bursts(k: &[u64], n: u64) -> Vec<(u64, u64)> {
        k.iter().map(|&k| (k, n)).collect()
    }

    #[test]
    fn nothing_lost_in_any_burst() {
        // 0 of 32 in 4 bursts of 8: p = 0, so var_binomial = 0 and every burst sits at
        // p·n_i (var_cluster = 0); deff = 0/0 → floor 1, n_eff = 32.
        // Wilson at x = 0: hi = z²/(n + z²) = 3.841459/35.841459 = 0.10718.
        let got = cluster_wilson(&bursts(&[0, 0, 0, 0], 8));
        assert!(close(got, (0.0, 0.10718)), "{got:?}");
    }

    #[test]
    fn everything_lost_in_every_burst() {
        // 32 of 32 in 4 bursts of 8: the mirror image, deff 1, n_eff = 32.
        // lo = n/(n + z²) = 32/35.841459 = 0.89282, hi = 1.
        let got = cluster_wilson(&bursts(&[8, 8, 8, 8], 8));
        assert!(close(got, (0.89282, 1.0)), "{got:?}");
    }

    #[test]
    fn one_burst_is_one_observation() {
        // 3 of 8 in a single burst: no between-burst variance to estimate, worst case
        // deff = 8, n_eff = 1, x = 0.375.
        // denom = 1 + z² = 4.841459; center = (0.375 + z²/2)/denom = 2.295729/4.841459
        // = 0.47418; half = z·√(0.375·0.625 + z²/4)/denom = 1.959964·√1.194740/4.841459
        // = 1.959964·1.093042/4.841459 = 0.44249 → [0.03169, 0.91668].
        let got = cluster_wilson(&[(3, 8)]);
        assert!(close(got, (0.03169, 0.91668)), "{got:?}");
        // 0 of 8 in one burst: hi = z²/(1 + z²) = 3.841459/4.841459 = 0.79345, where the
        // pooled Wilson(0, 8) would claim 0.32.
        let got = cluster_wilson(&[(0, 8)]);
        assert!(close(got, (0.0, 0.79345)), "{got:?}");
        assert!(got.1 > wilson(0, 8).1 + 0.4);
        // a burst with nothing to count does not make a second burst
        assert_eq!(cluster_wilson(&[(0, 0), (3, 8)]), cluster_wilson(&[(3, 8)]));
        assert_eq!(cluster_wilson(&[]), (0.0, 1.0));
    }

    #[test]
    fn all_or_nothing_bursts_count_as_bursts() {
        // 8, 8, 0, 0 of 8: p = 16/32 = 0.5; k_i − p·n_i = 4, 4, −4, −4, Σ² = 64;
        // var_cluster = 4/3 · 64/32² = 0.083333; var_binomial = 0.25/32 = 0.0078125;
        // deff = 10.667, n_eff = 3, x = 1.5.
        // Wilson(1.5, 3): denom = 1 + z²/3 = 2.280486, center = 0.5,
        // half = z·√(0.25/3 + z²/36)/denom = 1.959964·√0.190041/2.280486
        // = 1.959964·0.435937/2.280486 = 0.37467 → [0.12533, 0.87467].
        let got = cluster_wilson(&bursts(&[8, 8, 0, 0], 8));
        assert!(close(got, (0.12533, 0.87467)), "{got:?}");
        // close to 2 of 4 bursts, Wilson(2, 4) = [0.15004, 0.84996], a little wider for
        // the variance estimated from 4 bursts; far from the pooled [0.33631, 0.66369]
        let two_of_four = wilson(2, 4);
        assert!(close(two_of_four, (0.15004, 0.84996)), "{two_of_four:?}");
        assert!((got.0 - two_of_four.0).abs() < 0.03 && (got.1 - two_of_four.1).abs() < 0.03);
        let pooled = wilson(16, 32);
        assert!(
            got.0 < pooled.0 - 0.2 && got.1 > pooled.1 + 0.2,
            "{pooled:?}"
        );
    }

    #[test]
    fn losses_that_come_together_widen_the_interval() {
        // 6, 6, 0, 0 of 8: p = 12/32 = 0.375; k_i − p·n_i = 3, 3, −3, −3, Σ² = 36;
        // var_cluster = 4/3 · 36/1024 = 0.046875; var_binomial = 0.375·0.625/32
        // = 0.0073242; deff = 6.4, n_eff = 5, x = 1.875.
        // Wilson(1.875, 5): denom = 1 + z²/5 = 1.768292; center = (0.375 + z²/10)/denom
        // = 0.759146/1.768292 = 0.42931; half = z·√(0.234375/5 + z²/100)/denom
        // = 1.959964·√0.085290/1.768292 = 0.32370 → [0.10561, 0.75301].
        let got = cluster_wilson(&bursts(&[6, 6, 0, 0], 8));
        assert!(close(got, (0.10561, 0.75301)), "{got:?}");
        // the pooled interval, as if 32 independent coins: [0.22934, 0.54746]
        let pooled = wilson(12, 32);
        assert!(close(pooled, (0.22934, 0.54746)), "{pooled:?}");
        assert!(got.0 < pooled.0 && got.1 > pooled.1);
    }

    #[test]
    fn equal_bursts_give_the_pooled_interval() {
        // 2, 2, 2, 2 of 8: every k_i = p·n_i, var_cluster = 0 → deff floor 1, n_eff = 32:
        // Wilson(8, 32): denom = 1 + z²/32 = 1.120046; center = (0.25 + z²/64)/denom
        // = 0.310023/1.120046 = 0.27679; half = z·√(0.1875/32 + z²/4096)/denom
        // = 1.959964·√0.0067970/1.120046 = 0.14427 → [0.13252, 0.42107].
        let got = cluster_wilson(&bursts(&[2, 2, 2, 2], 8));
        assert!(close(got, (0.13252, 0.42107)), "{got:?}");
        assert_eq!(got, wilson(8, 32));
        // 2, 3, 2, 1 of 8 vary less than coins would: Σ(k_i − 2)² = 2, var_cluster =
        // 4/3 · 2/1024 = 0.0026042 < var_binomial = 0.0058594 (deff 0.44): the floor
        // keeps the pooled interval rather than a narrower one
        assert_eq!(cluster_wilson(&bursts(&[2, 3, 2, 1], 8)), wilson(8, 32));
    }

    #[test]
    fn a_balance_that_grew_too_much_is_its_own_anomaly() {
        // rep 0: 4 ledger rows, balance +600 → 6 applied: 2 increments with no row;
        // rep 1: 4 rows, +200 → 2 lost
        let reps = vec![
            Repetition::observed(obs(0, 0), obs(600, 4)),
            Repetition::observed(obs(0, 0), obs(200, 4)),
        ];
        let m = compute(&reps, 100, 0, &Check::Counter, None);
        // the pooled counts cancel out...
        assert_eq!((m.ledger_rows, m.applied, m.lost_updates), (8, 8, 0));
        // ...so the excess is reported, and the rate counts the losses of rep 1 only
        assert_eq!(m.excess_applied, 2);
        assert_eq!(m.lost_rate, 2.0 / 8.0);
        assert_eq!(m.anomaly_rate, 2.0 / 8.0);
        assert_eq!(
            (m.lost_rate_lo, m.lost_rate_hi),
            cluster_wilson(&[(0, 4), (2, 4)])
        );
        assert!(m.lost_rate_lo < m.lost_rate && m.lost_rate < m.lost_rate_hi);
        // only the excess: a negative lost_updates, a rate of 0 inside its interval
        let m = compute(&reps[..1], 100, 0, &Check::Counter, None);
        assert_eq!((m.lost_updates, m.excess_applied), (-2, 2));
        assert_eq!((m.lost_rate, m.anomaly_rate), (0.0, 0.0));
        assert!(m.lost_rate_lo <= m.lost_rate && m.lost_rate < m.lost_rate_hi);
    }

    /// A response whose body carries the server's start and end, in ms from some origin.
    fn served(start_ms: f64, end_ms: f64) -> RequestRecord {
        let ns = |ms: f64| 1_700_000_000_000_000_000 + (ms * 1e6) as i64;
        RequestRecord {
            body: Some(json!({"pid": 1, "t_start": ns(start_ms), "t_end": ns(end_ms)})),
            ..ok(0, 1, 0, 1.0)
        }
    }

    fn burst_of(records: Vec<RequestRecord>) -> Repetition {
        Repetition {
            before: obs(0, 0),
            after: obs(0, 0),
            burst_ms: 1.0,
            records,
        }
    }

    #[test]
    fn release_spread_is_first_to_last_byte_written() {
        let sent = |at_ns: i64, outcome: Outcome| RequestRecord {
            outcome,
            sent_unix_ns: 1_700_000_000_000_000_000 + at_ns,
            ..ok(0, 1, 0, 1.0)
        };
        // rep 0: bytes out at 0, 3 µs, 12.5 µs (a timeout, still written), and a
        // connection error stamped at 900 µs that wrote nothing → 12.5 µs
        // rep 1: 0 and 20 µs → 20 µs; rep 2: 0 and 4 µs → 4 µs; median 12.5 µs
        let reps = vec![
            burst_of(vec![
                sent(0, Outcome::Response),
                sent(3_000, Outcome::Response),
                sent(12_500, Outcome::Timeout),
                sent(900_000, Outcome::ConnError),
            ]),
            burst_of(vec![
                sent(20_000, Outcome::Response),
                sent(0, Outcome::Response),
            ]),
            burst_of(vec![
                sent(0, Outcome::Response),
                sent(4_000, Outcome::Response),
            ]),
        ];
        let m = compute(&reps, 100, 0, &Check::Counter, None);
        assert_eq!(m.release_spread_us, Some(12.5));
        // spaced launches are not a release
        assert_eq!(
            compute(&reps, 100, 50, &Check::Counter, None).release_spread_us,
            None
        );
    }

    #[test]
    fn skew_counts_only_the_requests_that_overlapped() {
        // 4 handlers, 4 requests of ~200 ms: three start within 0.8 ms, the fourth at
        // 250 ms, after the first finished at 200 ms (it was not part of the release).
        // Overlapping starts 0, 0.3, 0.8 → 0.8 ms.
        let reps = vec![burst_of(vec![
            served(0.3, 200.5),
            served(0.0, 200.0),
            served(250.0, 450.0),
            served(0.8, 201.0),
        ])];
        let skew = |handlers| compute(&reps, 100, 0, &Check::Counter, handlers).start_skew_ms;
        assert_eq!(skew(Some(4)), Some(0.8));
        // undeclared handlers: the data must show every request overlapping; this burst
        // has one that started after the first finished → blank
        assert_eq!(skew(None), None);
        assert_eq!(
            compute(&reps, 100, 50, &Check::Counter, Some(4)).start_skew_ms,
            None
        );
    }

    #[test]
    fn queueing_is_not_skew() {
        // 1 worker, 4 requests of 300 ms: each starts when the previous ends. The old
        // max − min of the starts would read 900.3 ms.
        let reps = vec![burst_of(vec![
            served(0.0, 300.0),
            served(300.1, 600.1),
            served(600.2, 900.2),
            served(900.3, 1200.3),
        ])];
        let skew = |handlers| compute(&reps, 100, 0, &Check::Counter, handlers).start_skew_ms;
        assert_eq!(skew(Some(1)), None, "handlers < requests");
        assert_eq!(skew(None), None, "the data show the queue");
        // even a stack that claims more handlers shows one request before the first end
        assert_eq!(skew(Some(8)), None);
    }

    #[test]
    fn fewer_handlers_than_requests_leave_skew_blank() {
        // all four start within 1 ms and overlap, but the stack says it serves 2 at once:
        // the declaration decides, so a figure that holds only by the luck of one run's
        // accept order is not reported as skew
        let reps = vec![burst_of(vec![
            served(0.0, 200.0),
            served(0.5, 200.5),
            served(0.7, 200.7),
            served(1.0, 201.0),
        ])];
        let skew = |handlers| compute(&reps, 100, 0, &Check::Counter, handlers).start_skew_ms;
        assert_eq!(skew(Some(2)), None);
        assert_eq!(skew(Some(4)), Some(1.0));
        assert_eq!(skew(None), Some(1.0), "every request overlapped");
    }

    #[test]
    fn skew_is_a_median_in_ms_to_the_microsecond() {
        // spreads 1.234567 ms, 2 ms and 0.5 ms (a refused request with only t_start
        // counts among the starts) → median 1.234567 → 1.235 ms
        let refused = |start_ms: f64| RequestRecord {
            status: Some(409),
            body: Some(json!({"t_start": 1_700_000_000_000_000_000 + (start_ms * 1e6) as i64})),
            ..ok(0, 1, 0, 1.0)
        };
        let reps = vec![
            burst_of(vec![served(0.0, 100.0), served(1.234567, 101.0)]),
            burst_of(vec![served(0.0, 100.0), refused(2.0)]),
            burst_of(vec![served(0.5, 100.0), served(0.0, 100.0)]),
        ];
        let m = compute(&reps, 100, 0, &Check::Counter, Some(2));
        assert_eq!(m.start_skew_ms, Some(1.235));
        // a burst where no request finished says nothing, the others still count
        let mut more = reps.clone();
        more.push(burst_of(vec![refused(0.0), refused(50.0)]));
        more.push(burst_of(vec![refused(0.0), refused(60.0)]));
        assert_eq!(
            compute(&more, 100, 0, &Check::Counter, Some(2)).start_skew_ms,
            Some(1.235)
        );
        // without declared handlers, such a burst cannot show that it overlapped
        assert_eq!(
            compute(&more, 100, 0, &Check::Counter, None).start_skew_ms,
            None
        );
    }
}
