//! Per-cell metrics (DESIGN §8) from request records and SQL observations, pooled over
//! repetitions, with a 95% Wilson interval for the lost-update rate.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// How a request ended, as the client saw it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A complete HTTP response arrived.
    Response,
    /// The client gave up waiting.
    Timeout,
    /// Could not connect, or the connection broke.
    ConnError,
}

/// One request of a burst.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Repetition (0-based).
    pub repetition: u32,
    /// Index within the burst.
    pub index: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// When its last byte was sent (Unix ns, client clock).
    pub sent_unix_ns: i64,
    /// Send to complete response, ms.
    pub latency_ms: Option<f64>,
    /// Response body (JSON when it parses, else the text).
    pub body: Option<serde_json::Value>,
    /// What went wrong, for timeouts and connection errors.
    pub error: Option<String>,
}

impl RequestRecord {
    /// The app process that served it (`pid` in the body).
    pub fn pid(&self) -> Option<i64> {
        self.body.as_ref()?.get("pid")?.as_i64()
    }

    /// The serving process: its host (container) name, when the body has one, and pid.
    /// Containers number their processes alike, so the pid alone does not tell replicas
    /// apart.
    pub fn process(&self) -> Option<(String, i64)> {
        let host = self
            .body
            .as_ref()
            .and_then(|b| b.get("host"))
            .and_then(|h| h.as_str())
            .unwrap_or_default()
            .to_string();
        Some((host, self.pid()?))
    }

    /// A server timestamp from the body (`t_start`, `t_read`, `t_write`, `t_end`), ns.
    pub fn server_ns(&self, field: &str) -> Option<i64> {
        self.body.as_ref()?.get(field)?.as_i64()
    }
}

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

/// What an endpoint's race breaks, and so what counts as an anomaly. An endpoint names its
/// check in `x-racy.endpoints`; every check but `counter` has its own observe query there.
/// A new kind is a variant here and its arm in `anomalies`.
#[derive(
    Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// A counter that lost increments: ledger rows missing from the balance.
    #[default]
    Counter,
    /// Rows that should be unique: `total` rows, `distinct_values` among them.
    Unique,
    /// Background tasks that did not find their row: `tasks` run, `missed` of them.
    Task,
}

impl Check {
    /// The check's name, as in stack files and the `anomaly_kind` column.
    pub fn name(self) -> &'static str {
        match self {
            Check::Counter => "counter",
            Check::Unique => "unique",
            Check::Task => "task",
        }
    }

    /// The integer columns its observe query must return (none for `counter`, which
    /// reads the balance and the ledger).
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Check::Counter => &[],
            Check::Unique => &["total", "distinct_values"],
            Check::Task => &["tasks", "missed"],
        }
    }

    /// The anomalies of one repetition and how many things they are out of.
    pub fn anomalies(self, before: &Observation, after: &Observation, amount: i64) -> (i64, i64) {
        let d = |c: &str| after.get(c) - before.get(c);
        match self {
            Check::Counter => {
                let rows = after.ledger_rows - before.ledger_rows;
                (
                    rows - (after.balance - before.balance) / amount.max(1),
                    rows,
                )
            }
            Check::Unique => (d("total") - d("distinct_values"), d("total")),
            Check::Task => (d("missed"), d("tasks")),
        }
    }
}

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
    /// Unique-constraint violations that reached the client (MariaDB 1062, PostgreSQL 23505).
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
    /// lost_updates / ledger_rows (0 when no rows).
    pub lost_rate: f64,
    /// Lower end of the 95% Wilson interval.
    pub lost_rate_lo: f64,
    /// Upper end of the 95% Wilson interval.
    pub lost_rate_hi: f64,
    /// acked − ledger_rows.
    pub ack_gap: i64,
    /// App processes (host and pid) that served the bursts.
    pub distinct_pids: u64,
    /// Median over repetitions of (max − min server `t_read`), for `wait_ms = 0`.
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
    /// anomalies / what they are out of (0 when nothing).
    pub anomaly_rate: f64,
    /// Lower end of its 95% Wilson interval.
    pub anomaly_rate_lo: f64,
    /// Upper end of its 95% Wilson interval.
    pub anomaly_rate_hi: f64,
}

/// Database error codes of serialization failures and deadlocks.
const SERIALIZATION_CODES: &[&str] = &["40001", "40P01", "1020", "1213"];
/// Database error codes of lock waits that gave up.
const LOCK_TIMEOUT_CODES: &[&str] = &["1205", "3572", "55P03"];
/// Database error codes of a database that refused a writer (SQLite's "database is locked").
const BUSY_CODES: &[&str] = &["SQLITE_BUSY", "SQLITE_LOCKED"];
/// Database error codes of unique-constraint violations.
const INTEGRITY_CODES: &[&str] = &["1062", "23505"];

/// The error class of a failed response: one of the error columns.
pub fn error_class(r: &RequestRecord) -> &'static str {
    let code = r
        .body
        .as_ref()
        .and_then(|b| b.get("db_code"))
        .map(|c| match c {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    match (code.as_deref(), r.status) {
        (Some(c), _) if SERIALIZATION_CODES.contains(&c) => "serialization_failures",
        (Some(c), _) if LOCK_TIMEOUT_CODES.contains(&c) => "lock_timeouts",
        (Some(c), _) if INTEGRITY_CODES.contains(&c) => "integrity_errors",
        (Some(c), _) if BUSY_CODES.contains(&c) => "database_locked",
        _ if r
            .body
            .as_ref()
            .and_then(|b| b.get("lock_timeout"))
            .is_some_and(|v| v == true) =>
        {
            "lock_timeouts"
        }
        (_, Some(502 | 504)) => "worker_timeouts",
        _ => "other_errors",
    }
}

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The 95% Wilson score interval of `successes` out of `n`; `(0, 1)` when `n = 0`.
pub fn wilson(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = successes as f64 / n_f;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n_f;
    let center = (p + z2 / (2.0 * n_f)) / denom;
    let half = Z95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

fn median(mut v: Vec<f64>) -> Option<f64> {
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

/// Computes a cell's metrics. `applied` per repetition is the balance change divided by
/// `amount` (whole increments); counts are summed over repetitions; anomalies follow the
/// endpoint's `check`.
pub fn compute(reps: &[Repetition], amount: i64, wait_ms: u64, check: Check) -> CellMetrics {
    let mut m = CellMetrics {
        anomaly_kind: check.name().to_string(),
        ..Default::default()
    };
    let mut out_of = 0;
    let mut pids = BTreeSet::new();
    let mut latencies = Vec::new();
    let mut skews = Vec::new();
    for rep in reps {
        let rows = rep.after.ledger_rows - rep.before.ledger_rows;
        let applied = (rep.after.balance - rep.before.balance) / amount.max(1);
        m.ledger_rows += rows;
        m.applied += applied;
        let (anomalies, of) = check.anomalies(&rep.before, &rep.after, amount);
        m.anomalies += anomalies;
        out_of += of;
        let mut reads = Vec::new();
        for r in &rep.records {
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
                        match error_class(r) {
                            "serialization_failures" => m.serialization_failures += 1,
                            "lock_timeouts" => m.lock_timeouts += 1,
                            "integrity_errors" => m.integrity_errors += 1,
                            "database_locked" => m.database_locked += 1,
                            "worker_timeouts" => m.worker_timeouts += 1,
                            _ => m.other_errors += 1,
                        }
                    }
                    match r.status {
                        Some(200..=299) => {
                            m.acked += 1;
                            pids.extend(r.process());
                            reads.extend(r.server_ns("t_read"));
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
        if wait_ms == 0 && reads.len() >= 2 {
            let (lo, hi) = (reads.iter().min().unwrap(), reads.iter().max().unwrap());
            skews.push((hi - lo) as f64 / 1e6);
        }
    }
    m.lost_updates = m.ledger_rows - m.applied;
    m.lost_rate = if m.ledger_rows > 0 {
        m.lost_updates as f64 / m.ledger_rows as f64
    } else {
        0.0
    };
    let lost = m.lost_updates.clamp(0, m.ledger_rows.max(0)) as u64;
    let (lo, hi) = wilson(lost, m.ledger_rows.max(0) as u64);
    m.lost_rate_lo = lo;
    m.lost_rate_hi = hi;
    m.anomaly_rate = if out_of > 0 {
        m.anomalies as f64 / out_of as f64
    } else {
        0.0
    };
    let (lo, hi) = wilson(
        m.anomalies.clamp(0, out_of.max(0)) as u64,
        out_of.max(0) as u64,
    );
    m.anomaly_rate_lo = lo;
    m.anomaly_rate_hi = hi;
    m.ack_gap = m.acked as i64 - m.ledger_rows;
    m.distinct_pids = pids.len() as u64;
    m.start_skew_ms = median(skews);
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
        assert_eq!(compute(&reps, 100, 0, Check::Counter).distinct_pids, 2);
    }

    #[test]
    fn wilson_matches_known_values() {
        let (lo, hi) = wilson(0, 10);
        assert!(lo.abs() < 1e-12 && (hi - 0.2775).abs() < 1e-4, "{lo} {hi}");
        let (lo, hi) = wilson(5, 10);
        assert!(
            (lo - 0.2366).abs() < 1e-4 && (hi - 0.7634).abs() < 1e-4,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(10, 10);
        assert!(
            (lo - 0.7225).abs() < 1e-4 && (hi - 1.0).abs() < 1e-12,
            "{lo} {hi}"
        );
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
        let m = compute(&reps, 100, 0, Check::Counter);
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
        let (lo, hi) = wilson(2, 7);
        assert_eq!((m.lost_rate_lo, m.lost_rate_hi), (lo, hi));
        assert!(m.lost_rate_lo < m.lost_rate && m.lost_rate < m.lost_rate_hi);
        assert_eq!(m.ack_gap, 0);
        assert_eq!(m.distinct_pids, 4);
        assert_eq!(m.start_skew_ms, Some(2.0), "median of 3 ms and 1 ms");
        // latencies 1..7 and 5, 5 (the 409 and 502): sorted 1 2 3 4 5 5 5 6 7
        assert_eq!(m.p50_ms, Some(5.0));
        assert_eq!(m.p95_ms, Some(7.0));
        assert_eq!(m.max_ms, Some(7.0));
        assert_eq!(m.burst_ms, 15.0);
        assert_eq!(
            compute(&reps, 100, 50, Check::Counter).start_skew_ms,
            None,
            "skew only for wait 0"
        );
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
            with(500, json!({"db_code": 1062})),
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
        let m = compute(&reps, 100, 5, Check::Counter);
        assert_eq!(m.serialization_failures, 3);
        assert_eq!(m.lock_timeouts, 3);
        assert_eq!(m.worker_timeouts, 1);
        assert_eq!(m.integrity_errors, 1);
        assert_eq!(m.database_locked, 1);
        assert_eq!(m.other_errors, 1);
        assert_eq!(m.retries, 3);
        assert_eq!(m.failed, 10);
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
            Repetition {
                before: unique(0, 0),
                after: unique(4, 1),
                burst_ms: 1.0,
                records: vec![],
            },
            Repetition {
                before: unique(0, 0),
                after: unique(1, 1),
                burst_ms: 1.0,
                records: vec![],
            },
        ];
        let m = compute(&reps, 100, 0, Check::Unique);
        assert_eq!((m.anomaly_kind.as_str(), m.anomalies), ("unique", 3));
        assert!((m.anomaly_rate - 0.6).abs() < 1e-12);
        assert_eq!((m.anomaly_rate_lo, m.anomaly_rate_hi), wilson(3, 5));
        // counters: the anomalies are the lost updates
        let c = compute(
            &[Repetition {
                before: obs(0, 0),
                after: obs(200, 4),
                burst_ms: 1.0,
                records: vec![],
            }],
            100,
            0,
            Check::Counter,
        );
        assert_eq!((c.anomalies, c.lost_updates, c.anomaly_rate), (2, 2, 0.5));
        let tasks = Observation {
            extra: BTreeMap::from([("tasks".to_string(), 8), ("missed".to_string(), 6)]),
            ..obs(0, 0)
        };
        assert_eq!(Check::Task.anomalies(&obs(0, 0), &tasks, 100), (6, 8));
    }

    #[test]
    fn no_rows_no_rate() {
        let reps = vec![Repetition {
            before: obs(0, 0),
            after: obs(0, 0),
            burst_ms: 1.0,
            records: vec![status(404)],
        }];
        let m = compute(&reps, 100, 0, Check::Counter);
        assert_eq!((m.ledger_rows, m.lost_updates, m.lost_rate), (0, 0, 0.0));
        assert_eq!(m.ack_gap, 0);
        assert_eq!(m.errors_4xx, 1);
        assert_eq!(m.start_skew_ms, None);
    }
}
