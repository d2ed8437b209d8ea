//! Every lost update explained: for a counter endpoint whose answers carry what each
//! request read and wrote (`read_balance`, `written_balance`) and when (`t_read`,
//! `t_write`, server wall-clock ns), a burst's history is rebuilt and each lost increment
//! is named with the request that erased it.
//!
//! The model: each acknowledged request read one committed state of the counter and
//! wrote `read + amount` over whatever state was there. When the answers also carry the
//! row's version read and written (`read_version`, `written_version`: the lab bumps a
//! version column in the UPDATE that writes the balance, and a write holds the row's lock
//! until its commit), versions order the commits and name the state each request read,
//! exactly, and the clock only classes the losses. Otherwise commits are ordered by
//! `t_write` (taken once the write is done; one host's clock serves every container).
//! A state is the set of increments it holds. Request j's write makes the state "what j
//! read, plus j"; the increments of the state just before that write that j had not read
//! are lost, erased by j. The state j read is the latest one committed before j's read
//! whose balance is the value j read (else the first with that balance after it, for a
//! commit stamped a moment after a read that already saw it). Each loss is classed by how j
//! came to miss it (when that reading does not reconcile with the counts, because stamps
//! taken after each commit returns put two close commits out of order, each value is read
//! from the latest state before the reader's write that had it; the first reading that
//! reconciles is kept; versions need no such reading):
//! - `same_read`: the erased request read the same value as j (both read, both wrote);
//! - `interleaved`: it read another value but committed inside j's read → write window;
//! - `stale_read`: it had committed before j read, and j read an older state anyway (a
//!   snapshot taken earlier, as REPEATABLE READ gives).
//!
//! A burst is reconciled when the rebuilt history ends at the balance observed after the
//! burst and explains as many losses as the SQL counted; one that is not (a request that
//! wrote but got no answer, clocks that disagree with commit order) is flagged with why,
//! never dropped.

use std::collections::BTreeSet;

mod invariant;

use serde::{Deserialize, Serialize};

use crate::measure::cell::CellResult;
use crate::measure::metrics::{Check, Repetition, RequestRecord};

/// How a lost increment came to be erased.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Both requests read the same value.
    SameRead,
    /// The erased one committed inside the eraser's read → write window.
    Interleaved,
    /// The erased one committed before the eraser read, which read an older state.
    StaleRead,
    /// (unique check) A second row for a value a first request had already created.
    Duplicate,
}

/// One lost increment and the request that erased it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// The request whose increment is lost (index in the burst).
    pub lost: u32,
    /// The request whose write erased it.
    pub by: u32,
    /// How.
    pub kind: LossKind,
    /// The story in words.
    pub text: String,
}

/// One burst's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BurstStory {
    /// Repetition (0-based).
    pub repetition: u32,
    /// Lost increments the SQL counted: ledger rows − applied (never below 0).
    pub lost: i64,
    /// Each explained loss, in the order the erasing writes committed.
    pub losses: Vec<Loss>,
    /// Whether the history matches what the SQL saw (same final balance, as many losses).
    pub reconciled: bool,
    /// Why not, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One acknowledged write, as its answer tells it.
#[derive(Clone, Debug)]
struct Write {
    index: u32,
    who: String,
    read: i64,
    written: i64,
    t_read: i64,
    t_write: i64,
    /// The row's version read and written, when the answer carries them.
    versions: Option<(i64, i64)>,
}

/// Which committed state a request read, among those with the value it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    /// The latest committed before its read by the stamps (else the first after).
    Timed,
    /// The latest before its own write: what the stamps cannot contradict when commits
    /// come milliseconds apart.
    Latest,
    /// The state with the version it read (commits in version order).
    Versions,
}

/// A committed state: when, its balance, the increments it holds (request indexes).
#[derive(Clone, Debug)]
struct State {
    at: i64,
    version: Option<i64>,
    balance: i64,
    holds: BTreeSet<u32>,
}

/// The stories of a counter cell's bursts; `None` when its answers do not carry what a
/// history needs (the balances read and written, and their times).
pub fn counter_cell(reps: &[Repetition]) -> Option<Vec<BurstStory>> {
    reps.iter().map(burst).collect()
}

/// One burst's story; `None` when an acknowledged answer lacks a field.
pub fn burst(rep: &Repetition) -> Option<BurstStory> {
    let mut writes = Vec::new();
    for r in rep.records.iter().filter(|r| acked(r)) {
        writes.push(write_of(r)?);
    }
    let t0 = burst_t0(rep);
    let versioned = !writes.is_empty() && writes.iter().all(|w| w.versions.is_some());
    let rows = rep.after.ledger_rows - rep.before.ledger_rows;
    let amount = writes.first().map(|w| w.written - w.read).unwrap_or(1);
    let applied = (rep.after.balance - rep.before.balance) / amount.max(1);
    let lost = (rows - applied).max(0);
    let mut notes = Vec::new();
    let (losses, end) = if versioned {
        writes.sort_by_key(|w| (w.versions.map(|v| v.1), w.index));
        notes.extend(version_gaps(&writes));
        replay(&writes, rep.before.balance, t0, Reading::Versions)
    } else {
        writes.sort_by_key(|w| (w.t_write, w.index));
        let fits = |(l, e): &(Vec<Loss>, i64)| l.len() as i64 == lost && *e == rep.after.balance;
        let timed = replay(&writes, rep.before.balance, t0, Reading::Timed);
        if fits(&timed) {
            timed
        } else {
            // commits a few ms apart can be stamped out of order (each stamp is taken
            // after its commit returns): read each value from the latest state that had it
            let latest = replay(&writes, rep.before.balance, t0, Reading::Latest);
            if fits(&latest) { latest } else { timed }
        }
    };
    if end != rep.after.balance {
        notes.push(format!(
            "the answers rebuild a final balance of {end}, the database holds {}",
            rep.after.balance
        ));
    }
    if losses.len() as i64 != lost {
        notes.push(format!("{} losses explained, {lost} counted", losses.len()));
    }
    if rows != writes.len() as i64 {
        notes.push(format!(
            "{rows} ledger rows but {} acknowledged writes (a request wrote without an answer, or answered without writing)",
            writes.len()
        ));
    }
    Some(BurstStory {
        repetition: rep.records.first().map_or(0, |r| r.repetition),
        lost,
        losses,
        reconciled: notes.is_empty(),
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

/// When a burst began: its first request's `t_start` on the server (0 when none says).
fn burst_t0(rep: &Repetition) -> i64 {
    rep.records
        .iter()
        .filter_map(|r| r.server_ns("t_start"))
        .min()
        .unwrap_or(0)
}

/// What the versions of writes sorted by version say is missing: each write makes the
/// next version, so a gap is a write without an answer, and a version read that no write
/// of the burst made and is not the one before the first is a write outside it.
fn version_gaps(writes: &[Write]) -> Vec<String> {
    let written: Vec<i64> = writes
        .iter()
        .filter_map(|w| w.versions.map(|v| v.1))
        .collect();
    let Some(&first) = written.first() else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    notes.extend(missing_versions(&written));
    if written.windows(2).any(|p| p[0] == p[1]) {
        notes.push("two answers wrote the same version".to_string());
    }
    let strays: BTreeSet<i64> = writes
        .iter()
        .filter_map(|w| w.versions.map(|v| v.0))
        .filter(|v| *v != first.saturating_sub(1) && !written.contains(v))
        .collect();
    if !strays.is_empty() {
        let list: Vec<String> = strays.iter().map(|v| v.to_string()).collect();
        notes.push(format!(
            "version {} read but written by no answer of the burst",
            list.join(", ")
        ));
    }
    notes
}

/// Gaps listed one by one up to this many versions; past it, counted, with the first
/// [`GAPS_SHOWN`] ranges (an app whose versions are timestamps leaves gaps of millions).
const VERSIONS_LISTED: i128 = 10;
/// Ranges of missing versions shown when they are counted.
const GAPS_SHOWN: usize = 3;

/// The versions between consecutive written ones that no answer wrote, as one note:
/// bounded in size whatever the versions are.
fn missing_versions(written: &[i64]) -> Option<String> {
    let gaps: Vec<(i128, i128)> = written
        .windows(2)
        .map(|p| (i128::from(p[0]) + 1, i128::from(p[1]) - 1))
        .filter(|(lo, hi)| lo <= hi)
        .collect();
    let count: i128 = gaps.iter().map(|(lo, hi)| hi - lo + 1).sum();
    if count == 0 {
        return None;
    }
    if count <= VERSIONS_LISTED {
        let list: Vec<String> = gaps
            .iter()
            .flat_map(|&(lo, hi)| lo..=hi)
            .map(|v| v.to_string())
            .collect();
        return Some(format!(
            "no answer wrote version {} (a write without an answer)",
            list.join(", ")
        ));
    }
    let shown: Vec<String> = gaps
        .iter()
        .take(GAPS_SHOWN)
        .map(|(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}–{hi}")
            }
        })
        .collect();
    let more = if gaps.len() > GAPS_SHOWN { ", …" } else { "" };
    Some(format!(
        "no answer wrote {count} versions, in {} gap(s): {}{more} (writes without an answer, \
         or versions that are not counters)",
        gaps.len(),
        shown.join(", ")
    ))
}

fn acked(r: &RequestRecord) -> bool {
    r.is_acked()
}

fn write_of(r: &RequestRecord) -> Option<Write> {
    let body = r.body.as_ref()?;
    let who = match r.pid() {
        Some(pid) => format!(" (pid {pid})"),
        None => String::new(),
    };
    Some(Write {
        index: r.index,
        who,
        read: body.get("read_balance")?.as_i64()?,
        written: body.get("written_balance")?.as_i64()?,
        t_read: r.server_ns("t_read")?,
        t_write: r.server_ns("t_write")?,
        versions: body
            .get("read_version")
            .and_then(|v| v.as_i64())
            .zip(body.get("written_version").and_then(|v| v.as_i64())),
    })
}

/// Replays the writes in commit order from the balance before the burst; returns the
/// losses — the increments the final state does not hold, each with the last write that
/// erased it (an increment erased, then read back by a later writer, and erased again is
/// explained by its last erasure) — and the final balance.
fn replay(writes: &[Write], start: i64, t0: i64, reading: Reading) -> (Vec<Loss>, i64) {
    let mut states = vec![State {
        at: i64::MIN,
        // in version order, the state before the first write is the version before it
        version: writes
            .first()
            .and_then(|w| w.versions)
            .map(|v| v.1.saturating_sub(1)),
        balance: start,
        holds: BTreeSet::new(),
    }];
    let mut losses: Vec<Loss> = Vec::new();
    for w in writes {
        let latest_seen = states.iter().rposition(|s| s.at <= w.t_read).unwrap_or(0);
        // the state read: the latest with that balance committed before the read, else
        // (a commit stamped just after a read that saw it) the first one after
        let matching = |s: &State| s.balance == w.read;
        let read = match reading {
            Reading::Timed => states
                .iter()
                .rposition(|s| matching(s) && s.at <= w.t_read)
                .or_else(|| states.iter().position(matching)),
            Reading::Latest => states.iter().rposition(matching),
            Reading::Versions => states
                .iter()
                .position(|s| s.version.is_some() && s.version == w.versions.map(|v| v.0)),
        }
        .unwrap_or(latest_seen);
        let prev = states.last().expect("the start state");
        for &lost in prev.holds.difference(&states[read].holds) {
            let victim = writes.iter().find(|x| x.index == lost).expect("a write");
            let stale = match reading {
                // the victim's stamp, taken after its commit, precedes the eraser's read
                Reading::Versions => victim.t_write <= w.t_read,
                _ => read < latest_seen,
            };
            let same_read = match (victim.versions, w.versions) {
                (Some(a), Some(b)) => a.0 == b.0,
                _ => victim.read == w.read,
            };
            let kind = if stale {
                LossKind::StaleRead
            } else if same_read {
                LossKind::SameRead
            } else {
                LossKind::Interleaved
            };
            losses.retain(|l| l.lost != lost);
            losses.push(Loss {
                lost,
                by: w.index,
                kind,
                text: story(w, victim, t0),
            });
        }
        let mut holds = states[read].holds.clone();
        holds.insert(w.index);
        states.push(State {
            at: w.t_write,
            version: w.versions.map(|v| v.1),
            balance: w.written,
            holds,
        });
    }
    let last = states.last().expect("the start state");
    losses.retain(|l| !last.holds.contains(&l.lost));
    (losses, last.balance)
}

fn ms(t: i64, t0: i64) -> String {
    format!("t+{:.1} ms", (t - t0) as f64 / 1e6)
}

/// "#5 (pid 31) read 100 at t+4.1 ms and wrote 200 at t+312.9 ms, over #2's 200 written
/// at t+310.2 ms: #2's +100 is lost" (requests numbered from 1 in the burst); with
/// versions, each balance is followed by the version that held it: "read 100 (v3)".
fn story(by: &Write, lost: &Write, t0: i64) -> String {
    let v = |w: &Write, written: bool| match w.versions {
        Some((r, wr)) => format!(" (v{})", if written { wr } else { r }),
        None => String::new(),
    };
    format!(
        "#{}{} read {}{} at {} and wrote {}{} at {}, over #{}'s {}{} written at {}: #{}'s {:+} is lost",
        by.index + 1,
        by.who,
        by.read,
        v(by, false),
        ms(by.t_read, t0),
        by.written,
        v(by, true),
        ms(by.t_write, t0),
        lost.index + 1,
        lost.written,
        v(lost, true),
        ms(lost.t_write, t0),
        lost.index + 1,
        lost.written - lost.read
    )
}

/// The stories of a run's cells, for results.json: one entry per counter cell whose
/// answers allow them (cells are numbered from 1 in run order, as `explain --cell` takes).
pub fn run_stories(cells: &[CellResult]) -> Vec<serde_json::Value> {
    cells
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let bursts = cell_stories(c)?;
            Some(serde_json::json!({
                "cell": i + 1,
                "key": c.cell.key(),
                "label": c.cell.label(),
                "bursts": bursts,
            }))
        })
        .collect()
}

/// A cell's stories: a counter's lost updates or a unique check's duplicate rows (`None`
/// for a task check, whose answers cannot say when the task ran, a failed cell, or
/// answers that do not carry what the story needs).
pub fn cell_stories(c: &CellResult) -> Option<Vec<BurstStory>> {
    let m = c.metrics.as_ref()?;
    match Check::from_name(&m.anomaly_kind)? {
        Check::Counter => counter_cell(&c.reps),
        Check::Unique => c.reps.iter().map(unique_burst).collect(),
        Check::Task | Check::Start => None,
        Check::Invariant(_) => c.reps.iter().map(invariant::burst).collect(),
    }
}

/// A unique check's burst: the requests whose answers say they created the row
/// (`created: true`), in the order they wrote; those beyond the distinct values made the
/// duplicates, each named with the first creator. Reconciled when as many requests say
/// they created a row as the SQL counted new rows.
pub fn unique_burst(rep: &Repetition) -> Option<BurstStory> {
    let answered: Vec<&RequestRecord> = rep.records.iter().filter(|r| acked(r)).collect();
    if !answered.is_empty()
        && !answered
            .iter()
            .any(|r| r.body.as_ref().is_some_and(|b| b.get("created").is_some()))
    {
        return None;
    }
    let mut creators: Vec<&RequestRecord> = answered
        .into_iter()
        .filter(|r| {
            r.body
                .as_ref()
                .and_then(|b| b.get("created"))
                .and_then(|v| v.as_bool())
                == Some(true)
        })
        .collect();
    let at = |r: &RequestRecord| r.server_ns("t_write").or(r.server_ns("t_end")).unwrap_or(0);
    creators.sort_by_key(|r| (at(r), r.index));
    let t0 = burst_t0(rep);
    let d = |c: &str| {
        rep.after.extra.get(c).copied().unwrap_or(0) - rep.before.extra.get(c).copied().unwrap_or(0)
    };
    let (rows, distinct) = (d("total"), d("distinct_values"));
    let duplicates = (rows - distinct).max(0);
    let keep = (distinct.max(0) as usize).min(creators.len());
    let who = |r: &RequestRecord| match r.pid() {
        Some(pid) => format!("#{} (pid {pid})", r.index + 1),
        None => format!("#{}", r.index + 1),
    };
    let losses: Vec<Loss> = creators
        .iter()
        .skip(keep)
        .filter_map(|r| {
            let first = creators.first()?;
            Some(Loss {
                lost: r.index,
                by: first.index,
                kind: LossKind::Duplicate,
                text: format!(
                    "{} created a row at {} after {} had created one at {}: neither saw the other's",
                    who(r),
                    ms(at(r), t0),
                    who(first),
                    ms(at(first), t0)
                ),
            })
        })
        .collect();
    let mut notes = Vec::new();
    if creators.len() as i64 != rows {
        notes.push(format!(
            "{} answers say they created a row, the database has {rows} new rows",
            creators.len()
        ));
    }
    if losses.len() as i64 != duplicates {
        notes.push(format!(
            "{} duplicates explained, {duplicates} counted",
            losses.len()
        ));
    }
    Some(BurstStory {
        repetition: rep.records.first().map_or(0, |r| r.repetition),
        lost: duplicates,
        losses,
        reconciled: notes.is_empty(),
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

/// How explanations speak of an anomaly kind.
pub struct Wording {
    /// A cell with none: "no lost update".
    pub none: &'static str,
    /// A burst's count: "lost", "duplicates", "violations".
    pub counted: &'static str,
    /// Why a cell of this kind is not explained.
    pub unexplained: &'static str,
}

impl Wording {
    /// The wording of an `anomaly_kind`.
    pub fn of(kind: &str) -> Wording {
        let (none, counted, unexplained) = match Check::from_name(kind) {
            Some(Check::Unique) => (
                "no duplicate",
                "duplicates",
                "its answers do not say `created`",
            ),
            Some(Check::Task) => (
                "no missed task",
                "missed",
                "a task check: the answers cannot say when each task ran",
            ),
            Some(Check::Start) => (
                "no failed start",
                "failed",
                "a start check: each request reports how its app started, nothing to explain",
            ),
            Some(Check::Invariant(_)) => (
                "no violation",
                "violation(s)",
                "its answers do not carry read (or read_balance), t_read and t_write",
            ),
            _ => (
                "no lost update",
                "lost",
                "its answers do not carry read_balance, written_balance, t_read and t_write",
            ),
        };
        Wording {
            none,
            counted,
            unexplained,
        }
    }
}

/// `racy-matrix explain`'s text for cell number `n` (from 1).
pub fn render_cell(n: usize, c: &CellResult) -> String {
    let mut out = format!("cell {n}: {}\n", c.cell.label());
    let kind = c
        .metrics
        .as_ref()
        .map(|m| m.anomaly_kind.clone())
        .unwrap_or_default();
    let words = Wording::of(&kind);
    let Some(bursts) = cell_stories(c) else {
        let why = match &c.metrics {
            None => "it failed: nothing was measured",
            Some(_) => words.unexplained,
        };
        out.push_str(&format!("  not explained: {why}\n"));
        return out;
    };
    if bursts.iter().all(|b| b.reconciled && b.losses.is_empty()) {
        out.push_str(&format!(
            "  {} in {} burst(s), each history reconciled\n",
            words.none,
            bursts.len()
        ));
        return out;
    }
    let counted = words.counted;
    for b in &bursts {
        let head = format!(
            "  burst {}: {} {counted}, {} explained",
            b.repetition + 1,
            b.lost,
            b.losses.len()
        );
        match &b.note {
            Some(note) => out.push_str(&format!("{head} — NOT RECONCILED: {note}\n")),
            None => out.push_str(&format!("{head}\n")),
        }
        for l in &b.losses {
            let kind = serde_json::to_value(l.kind).ok();
            let kind = kind.as_ref().and_then(|k| k.as_str()).unwrap_or("");
            out.push_str(&format!("    [{kind}] {}\n", l.text));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::metrics::Observation;
    use serde_json::json;

    /// A request of burst 0 that read `read` at `t_read` ms and wrote `read + 100` at
    /// `t_write` ms.
    fn req(index: u32, pid: i64, read: i64, t_read: i64, t_write: i64) -> RequestRecord {
        let body = json!({
            "pid": pid,
            "t_start": 0,
            "t_read": t_read * 1_000_000,
            "t_write": t_write * 1_000_000,
            "read_balance": read,
            "written_balance": read + 100,
        });
        RequestRecord::answered(0, index, 200, body)
    }

    fn rep(records: Vec<RequestRecord>, rows: i64, after: i64) -> Repetition {
        Repetition {
            before: Observation::default(),
            after: Observation {
                balance: after,
                ledger_rows: rows,
                ledger_total: rows * 100,
                extra: Default::default(),
            },
            burst_ms: 1.0,
            records,
        }
    }

    #[test]
    fn two_that_read_the_same_value_lose_one() {
        // #1 and #2 both read 0; #1 writes 100 at 310 ms, #2 writes 100 at 312 ms
        let b = burst(&rep(
            vec![req(0, 7, 0, 4, 310), req(1, 8, 0, 5, 312)],
            2,
            100,
        ))
        .unwrap();
        assert!(b.reconciled, "{b:?}");
        assert_eq!(b.lost, 1);
        assert_eq!(b.losses.len(), 1);
        let l = &b.losses[0];
        assert_eq!((l.lost, l.by, l.kind), (0, 1, LossKind::SameRead));
        assert_eq!(
            l.text,
            "#2 (pid 8) read 0 at t+5.0 ms and wrote 100 at t+312.0 ms, over #1's 100 written at t+310.0 ms: #1's +100 is lost"
        );
    }

    #[test]
    fn a_serial_burst_loses_nothing() {
        let b = burst(&rep(
            vec![
                req(0, 7, 0, 1, 2),
                req(1, 7, 100, 3, 4),
                req(2, 7, 200, 5, 6),
            ],
            3,
            300,
        ))
        .unwrap();
        assert!(b.reconciled && b.losses.is_empty() && b.lost == 0, "{b:?}");
    }

    #[test]
    fn kinds_of_loss() {
        // #1 writes 100 at 10 ms. #2 read 0 at 5 ms and writes 100 at 20: it erases #1.
        // #3 read 100 (#1's state) at 12 and writes 200 at 30: #1's increment is back, #2's
        // (committed after #3 read, having read 0) is erased: interleaved. #4 read 0 at
        // 40 ms, long after all three committed (a stale snapshot), and writes 100 at 50:
        // it erases #1 and #3, stale. Lost in the end: #1 (last by #4), #2 (by #3), #3.
        let records = vec![
            req(0, 1, 0, 1, 10),
            req(1, 2, 0, 5, 20),
            req(2, 3, 100, 12, 30),
            req(3, 4, 0, 40, 50),
        ];
        let b = burst(&rep(records, 4, 100)).unwrap();
        let got: Vec<(u32, u32, LossKind)> =
            b.losses.iter().map(|l| (l.lost, l.by, l.kind)).collect();
        assert_eq!(
            got,
            vec![
                (1, 2, LossKind::Interleaved),
                (0, 3, LossKind::StaleRead),
                (2, 3, LossKind::StaleRead),
            ]
        );
        // 4 rows, the balance 100 holds one: 3 lost, 3 explained
        assert_eq!(b.lost, 3);
        assert!(b.reconciled, "{b:?}");
        // the same answers against a database that holds 200: flagged, not dropped
        let records = vec![req(0, 1, 0, 1, 10), req(1, 2, 0, 5, 20)];
        let b = burst(&rep(records, 2, 200)).unwrap();
        assert!(!b.reconciled);
        let note = b.note.unwrap();
        assert!(
            note.contains("final balance of 100, the database holds 200"),
            "{note}"
        );
        assert!(note.contains("1 losses explained, 0 counted"), "{note}");
    }

    #[test]
    fn what_the_answers_cannot_rebuild_is_flagged() {
        // a ledger row without an answer (a request that wrote, then timed out)
        let b = burst(&rep(vec![req(0, 7, 0, 4, 310)], 2, 100)).unwrap();
        assert!(!b.reconciled);
        let note = b.note.unwrap();
        assert!(
            note.contains("2 ledger rows but 1 acknowledged writes"),
            "{note}"
        );
        // answers without the fields: nothing to explain
        let mut plain = req(0, 7, 0, 1, 2);
        plain.body = Some(json!("ok 100"));
        assert!(burst(&rep(vec![plain], 1, 100)).is_none());
    }

    /// `req` whose answer also carries the row's versions read and written.
    fn vreq(
        index: u32,
        read: (i64, i64),
        t_read: i64,
        written: i64,
        t_write: i64,
    ) -> RequestRecord {
        let mut r = req(index, 7 + index as i64, read.0, t_read, t_write);
        let body = r.body.as_mut().unwrap();
        body["read_version"] = json!(read.1);
        body["written_version"] = json!(written);
        r
    }

    #[test]
    fn missing_versions_are_listed_few_and_counted_many() {
        assert_eq!(missing_versions(&[3, 4, 5]), None);
        assert_eq!(
            missing_versions(&[3, 5, 8]).unwrap(),
            "no answer wrote version 4, 6, 7 (a write without an answer)"
        );
        // versions that are timestamps: one short line, not ten million numbers
        let note = missing_versions(&[10, 10_000_000, 10_000_002]).unwrap();
        assert!(
            note.starts_with("no answer wrote 9999990 versions, in 2 gap(s): 11–9999999, 10000001"),
            "{note}"
        );
        assert!(note.len() < 200, "{note}");
        // the extremes of i64 do not overflow, here or where the burst is rebuilt
        let note = missing_versions(&[i64::MIN, 0, i64::MAX]).unwrap();
        assert!(note.contains("in 2 gap(s)"), "{note}");
        let records = vec![
            vreq(0, (0, i64::MIN), 1, i64::MIN, 2),
            vreq(1, (0, i64::MIN), 3, i64::MAX, 4),
        ];
        let b = burst(&rep(records, 2, 100)).unwrap();
        let note = b.note.unwrap_or_default();
        assert!(note.len() < 1000, "{note}");
    }

    #[test]
    fn versions_order_commits_the_stamps_put_out_of_order() {
        // from balance 0 at version 10: #1 reads 0 (v10) at 1 ms, writes 100 as v11 and
        // is stamped at 6 ms; #2 reads #1's 100 (v11) at 3 ms, writes 200 as v12, stamped
        // at 5 ms, before #1; #3 reads 0 (v10) at 2 ms and writes 100 as v13 at 7 ms. The
        // stamps alone cannot place #2 (no state holds 100 before it); the versions say
        // #3 wrote over #2's v12, which held #1: both lost, #1 having read what #3 read,
        // #2 having committed inside #3's window.
        let records = vec![
            vreq(0, (0, 10), 1, 11, 6),
            vreq(1, (100, 11), 3, 12, 5),
            vreq(2, (0, 10), 2, 13, 7),
        ];
        let b = burst(&rep(records.clone(), 3, 100)).unwrap();
        assert!(b.reconciled, "{b:?}");
        assert_eq!(b.lost, 2);
        let got: Vec<(u32, u32, LossKind)> =
            b.losses.iter().map(|l| (l.lost, l.by, l.kind)).collect();
        assert_eq!(
            got,
            vec![(0, 2, LossKind::SameRead), (1, 2, LossKind::Interleaved)]
        );
        assert_eq!(
            b.losses[1].text,
            "#3 (pid 9) read 0 (v10) at t+2.0 ms and wrote 100 (v13) at t+7.0 ms, over #2's 200 (v12) written at t+5.0 ms: #2's +100 is lost"
        );
        // without the versions the stamps order #2 first, and the counts still add up
        // with #2's increment blamed on #1, which never wrote over it: why the lab
        // answers with versions
        let mut plain = records;
        for r in &mut plain {
            let body = r.body.as_mut().unwrap().as_object_mut().unwrap();
            body.remove("read_version");
            body.remove("written_version");
        }
        let b = burst(&rep(plain, 3, 100)).unwrap();
        let got: Vec<(u32, u32)> = b.losses.iter().map(|l| (l.lost, l.by)).collect();
        assert_eq!(got, vec![(1, 0), (0, 2)]);
    }

    #[test]
    fn a_version_no_answer_wrote_is_flagged() {
        // v12 was written by a request that got no answer: 3 ledger rows, 2 answers
        let records = vec![vreq(0, (0, 10), 1, 11, 2), vreq(1, (200, 12), 5, 13, 6)];
        let b = burst(&rep(records, 3, 300)).unwrap();
        assert!(!b.reconciled);
        let note = b.note.unwrap();
        assert!(note.contains("no answer wrote version 12"), "{note}");
        assert!(
            note.contains("version 12 read but written by no answer of the burst"),
            "{note}"
        );
    }

    #[test]
    fn duplicates_are_named_with_the_first_creator() {
        let created = |index: u32, pid: i64, t_write: i64, created: bool| RequestRecord {
            body: Some(
                json!({"pid": pid, "t_start": 0, "t_write": t_write * 1_000_000, "created": created}),
            ),
            ..req(index, pid, 0, 0, 0)
        };
        let unique = |total: i64, distinct: i64| Observation {
            extra: [
                ("total".to_string(), total),
                ("distinct_values".to_string(), distinct),
            ]
            .into(),
            ..Observation::default()
        };
        let mut r = rep(
            vec![
                created(0, 7, 205, true),
                created(1, 8, 203, true),
                created(2, 9, 210, false),
                created(3, 7, 207, true),
            ],
            0,
            0,
        );
        r.after = unique(3, 1);
        let b = unique_burst(&r).unwrap();
        assert!(b.reconciled, "{b:?}");
        assert_eq!(b.lost, 2);
        let got: Vec<(u32, u32)> = b.losses.iter().map(|l| (l.lost, l.by)).collect();
        assert_eq!(
            got,
            vec![(0, 1), (3, 1)],
            "in write order, after #2 created the first"
        );
        assert_eq!(
            b.losses[0].text,
            "#1 (pid 7) created a row at t+205.0 ms after #2 (pid 8) had created one at t+203.0 ms: neither saw the other's"
        );
        // a row nobody says it created: flagged
        r.after = unique(4, 1);
        let b = unique_burst(&r).unwrap();
        assert!(!b.reconciled);
        assert!(
            b.note
                .unwrap()
                .contains("3 answers say they created a row, the database has 4 new rows")
        );
    }
}
