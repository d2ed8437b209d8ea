//! `racy-matrix check STACK`: a stack tried once, as a matrix would use it, before any
//! matrix is written: its reset and observe SQL run, one request goes to each endpoint,
//! and each step says what it saw, so that a new stack file's mistakes show one by one
//! with the app's own words and log lines.

use std::time::Duration;

use crate::burst::http::{HttpRequest, send};
use crate::deploy::deployment::Deployment;
use crate::measure::metrics::{Check, OUT_OF, Observation, VIOLATIONS};

/// Fields of an answer that give metrics more than status codes (see the README, "Measure
/// your own app"): which process served it, when it started, the retries it made.
const FIELDS: &[(&str, &str)] = &[
    ("pid", "distinct_pids"),
    ("t_start", "start_skew_ms"),
    ("retries", "retries"),
];

/// How long the one request of an endpoint may take.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs every check on a started stack, printing one line (or a few) per step through
/// `say`; returns the names of the steps that failed.
pub async fn check(dep: &Deployment, say: &dyn Fn(&str)) -> Vec<String> {
    let mut failed = Vec::new();
    let Some(db) = dep.db.as_ref() else {
        say("FAIL  database: no connection to the database");
        return vec!["database".into()];
    };
    let driver = &dep.driver;
    let todo = todos(driver);
    if !todo.is_empty() {
        say(&format!(
            "TODO  the stack file still has TODOs: {}",
            todo.join(", ")
        ));
        failed.push("TODO".into());
    }
    match db.reset().await {
        Ok(()) => say(&format!(
            "ok    reset: {} statement(s) ran",
            driver.reset.len()
        )),
        Err(e) => {
            say(&format!("FAIL  reset: {e:#}"));
            failed.push("reset".into());
        }
    }
    // the counter, or where a stack has none (only other checks), its first check
    let counter = !driver.observe.balance.trim().is_empty();
    let first = match driver.observe.checks.keys().next() {
        Some(check) if !counter => check.clone(),
        _ => Check::Counter,
    };
    match db.observe(&first).await {
        Ok(o) => say(&format!("ok    observe: {}", counter_state(&o, counter))),
        Err(e) => {
            say(&format!("FAIL  observe: {e:#}"));
            failed.push("observe".into());
        }
    }
    if failed.iter().any(|f| f == "reset" || f == "observe") {
        say("      (endpoints are not tried until reset and observe work)");
        return failed;
    }
    for (name, endpoint) in &driver.endpoints {
        let (lines, ok) = match try_endpoint(dep, name, &endpoint.check).await {
            Ok(lines) => (lines, true),
            Err(lines) => (lines, false),
        };
        lines.iter().for_each(|l| say(l));
        if !ok {
            failed.push(name.clone());
        }
    }
    failed
}

/// The parts of the x-racy block that `init` left marked TODO.
fn todos(driver: &crate::input::stack::Driver) -> Vec<String> {
    let mut out = Vec::new();
    for (name, e) in &driver.endpoints {
        if name.contains("TODO") || e.path.contains("TODO") {
            out.push(format!("endpoint {name}"));
        }
    }
    if driver.reset.iter().any(|s| s.contains("TODO")) {
        out.push("reset".into());
    }
    let o = &driver.observe;
    for (what, sql) in [
        ("observe.balance", &o.balance),
        ("observe.ledger", &o.ledger),
    ] {
        if sql.contains("TODO") {
            out.push(what.into());
        }
    }
    out
}

/// An observation in words: the counter's state (when the stack has one) and the
/// columns of the checks read with it.
fn counter_state(o: &Observation, counter: bool) -> String {
    let mut parts = Vec::new();
    if counter {
        parts.push(format!(
            "balance {}, ledger {} rows summing {}",
            o.balance, o.ledger_rows, o.ledger_total
        ));
    }
    for (k, v) in &o.extra {
        parts.push(format!("{k} {v}"));
    }
    parts.join(", ")
}

/// One endpoint: reset, observe, one request, observe; the lines that say what it did,
/// or (`Err`) what went wrong, with the target service's last log lines.
async fn try_endpoint(
    dep: &Deployment,
    name: &str,
    check: &Check,
) -> Result<Vec<String>, Vec<String>> {
    let driver = &dep.driver;
    let endpoint = &driver.endpoints[name];
    let db = dep.db.as_ref().expect("checked");
    let fields = match driver.fields_of(0, 0) {
        Ok(f) => f,
        Err(e) => return Err(vec![format!("FAIL  {name}: {e:#}")]),
    };
    let request = HttpRequest::form(&endpoint.method, "localhost", &endpoint.path, &fields);
    let what = format!("{name}: {} {}", endpoint.method, endpoint.path);
    let fail = |line: String| async move {
        let logs = dep.logs(&driver.target.service, 10).await;
        let mut lines = vec![format!("FAIL  {line}")];
        lines.extend(logs.lines().map(|l| format!("        | {l}")));
        Err(lines)
    };
    if let Err(e) = db.reset().await {
        return fail(format!("{what}: reset: {e:#}")).await;
    }
    let before = match db.observe(check).await {
        Ok(o) => o,
        Err(e) => return fail(format!("{what}: observe ({}): {e:#}", check.name())).await,
    };
    let answer = match send(dep.target, &request, LIMIT).await {
        Ok(a) => a,
        Err(e) => return fail(format!("{what}: no answer: {e:#}")).await,
    };
    let body = String::from_utf8_lossy(&answer.body).to_string();
    let shown = first_line(&body);
    if !(200..300).contains(&answer.status) {
        return fail(format!("{what} answered {}: {shown}", answer.status)).await;
    }
    let after = match db.observe(check).await {
        Ok(o) => o,
        Err(e) => return fail(format!("{what}: observe ({}): {e:#}", check.name())).await,
    };
    let seen = effect(check, &before, &after);
    let fields_line = fields_present(&body);
    match seen {
        Ok(effect) => Ok(vec![
            format!("ok    {what} answered {}: {shown}", answer.status),
            format!("        {effect}"),
            format!("        {fields_line}"),
        ]),
        Err(problem) => {
            fail(format!(
                "{what} answered {}: {shown}; but {problem}",
                answer.status
            ))
            .await
        }
    }
}

/// What one request did to the observed state, or why it does not look like one
/// measured request.
fn effect(check: &Check, before: &Observation, after: &Observation) -> Result<String, String> {
    match check {
        Check::Counter => {
            let rows = after.ledger_rows - before.ledger_rows;
            let total = after.ledger_total - before.ledger_total;
            let balance = after.balance - before.balance;
            match (rows, balance == total) {
                (1, true) => Ok(format!(
                    "balance +{balance}, ledger +1 row of {total}: one request, counted"
                )),
                (0, _) => Err(format!(
                    "the ledger query saw no new row (balance {balance:+}): does observe.ledger read the table the endpoint writes, for the row reset creates?"
                )),
                (n, true) => Err(format!(
                    "the ledger query saw {n} new rows for one request: it should count one row per request"
                )),
                (_, false) => Err(format!(
                    "the balance moved by {balance:+} but the ledger by {total:+}: observe.balance and observe.ledger must read the same counter"
                )),
            }
        }
        Check::Invariant(name) => {
            let broken = |o: &Observation| o.extra.get(VIOLATIONS).copied().unwrap_or(0);
            let out_of = match after.extra.get(OUT_OF) {
                Some(n) => format!("out of {n} (its out_of query)"),
                None => "out of 1 acknowledged request".into(),
            };
            match (broken(before), broken(after)) {
                (0, 0) => Ok(format!("invariant {name}: 0 violations {out_of}")),
                (0, n) => Err(format!(
                    "invariant {name} counts {n} violation(s) after one request alone: does x-racy.invariants.{name}.violations count what is broken, and does the reset leave room for one request?"
                )),
                (n, _) => Err(format!(
                    "invariant {name} counts {n} violation(s) right after the reset: the reset must leave it holding"
                )),
            }
        }
        Check::Unique | Check::Task | Check::Start => {
            let moved: Vec<String> = after
                .extra
                .iter()
                .map(|(k, v)| format!("{k} {:+}", v - before.extra.get(k).copied().unwrap_or(0)))
                .collect();
            Ok(format!("{}: {}", check.name(), moved.join(", ")))
        }
    }
}

fn first_line(body: &str) -> String {
    let line = body.trim().lines().next().unwrap_or("").trim();
    let cut: String = line.chars().take(120).collect();
    if cut.len() < line.len() {
        format!("{cut}…")
    } else if cut.is_empty() {
        "(empty body)".into()
    } else {
        cut
    }
}

/// Which of the answer fields that give more columns it carries.
fn fields_present(body: &str) -> String {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let Some(obj) = json.as_ref().and_then(|j| j.as_object()) else {
        return "not JSON: every count and rate is measured; distinct_pids, start_skew_ms and retries stay blank".into();
    };
    let (have, lack): (Vec<_>, Vec<_>) = FIELDS.iter().partition(|(f, _)| obj.contains_key(*f));
    let names = |v: &[&(&str, &str)]| v.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ");
    if lack.is_empty() {
        format!("JSON with {}: every column is measured", names(&have))
    } else {
        let blank = lack.iter().map(|(_, c)| *c).collect::<Vec<_>>().join(", ");
        format!(
            "JSON without {}: {blank} stay blank (add the fields to fill them)",
            names(&lack)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn obs(balance: i64, rows: i64, total: i64) -> Observation {
        Observation {
            balance,
            ledger_rows: rows,
            ledger_total: total,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn one_request_must_show_as_one_counted_row() {
        let c = &Check::Counter;
        assert!(
            effect(c, &obs(0, 0, 0), &obs(100, 1, 100))
                .unwrap()
                .contains("counted")
        );
        let e = effect(c, &obs(0, 0, 0), &obs(100, 0, 0)).unwrap_err();
        assert!(e.contains("no new row"), "{e}");
        let e = effect(c, &obs(0, 0, 0), &obs(100, 2, 100)).unwrap_err();
        assert!(e.contains("2 new rows"), "{e}");
        let e = effect(c, &obs(0, 0, 0), &obs(0, 1, 100)).unwrap_err();
        assert!(e.contains("same counter"), "{e}");
    }

    #[test]
    fn answers_say_which_columns_they_fill() {
        assert!(fields_present("ok 100\n").starts_with("not JSON"));
        let some = fields_present(r#"{"pid": 3, "t_start": 1}"#);
        assert!(
            some.contains("without retries: retries stay blank"),
            "{some}"
        );
        let all = fields_present(r#"{"pid": 3, "t_start": 1, "retries": 0}"#);
        assert!(all.contains("every column"), "{all}");
        assert_eq!(first_line("\n  200 ok\nmore"), "200 ok");
        assert_eq!(first_line(""), "(empty body)");
    }
}
