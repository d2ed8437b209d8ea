//! The whole tool against the real engine: a small matrix over every endpoint of the
//! django-mysql stack, with 1 and 4 Gunicorn workers.

use crate::common;

use serde_json::Value;

fn rows_where<'a>(rows: &'a [Value], key: &str, val: &str) -> Vec<&'a Value> {
    rows.iter()
        .filter(|r| {
            r[key]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| r[key].to_string())
                == val
        })
        .collect()
}

use crate::common::int;

#[tokio::test]
async fn matrix_measures_lost_updates_and_leaves_nothing() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let (out, json) = common::run_ok("tests/matrices/e2e.yaml", "e2e");
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 16, "8 endpoints x 2 worker counts");
    for f in ["results.csv", "results.md"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(text.contains("lost_rate"), "{f} has the metric columns");
    }

    for r in rows {
        assert_eq!(r["status"], "ok", "{r}");
        // every request answered: acked, or refused by the database (a deadlock is a 409),
        // never a gateway error, a timeout or a connection error
        assert_eq!(
            int(r, "acked") + int(r, "failed"),
            24,
            "8 requests x 3 repetitions: {r}"
        );
        assert_eq!(int(r, "errors_5xx"), 0, "{r}");
        assert_eq!(int(r, "timeouts") + int(r, "conn_errors"), 0, "{r}");
        // every acknowledged increment left exactly one ledger row
        assert_eq!(int(r, "ack_gap"), 0, "{r}");
    }
    let cell = |ep: &str, workers: &str| {
        rows.iter()
            .find(|r| r["endpoint"] == ep && r["workers"] == workers)
            .unwrap_or_else(|| panic!("no cell {ep} workers={workers}"))
    };
    // one worker serializes everything: nothing lost anywhere
    for r in rows_where(rows, "workers", "1") {
        assert_eq!(int(r, "lost_updates"), 0, "1 worker must not lose: {r}");
        assert_eq!(int(r, "failed"), 0, "{r}");
        assert_eq!(int(r, "distinct_pids"), 1, "{r}");
    }
    // every refusal is classified: the only errors here are database conflicts
    for r in rows {
        assert_eq!(
            int(r, "failed"),
            int(r, "serialization_failures") + int(r, "lock_timeouts"),
            "{r}"
        );
    }
    // the countermeasures hold with 4 workers
    for ep in ["f_expression", "optimistic_version", "row_locking_nowait"] {
        let r = cell(ep, "4");
        assert_eq!(int(r, "lost_updates"), 0, "{ep} must not lose: {r}");
    }
    // NOWAIT refuses the requests that would have waited for the lock
    assert!(int(cell("row_locking_nowait", "4"), "lock_timeouts") > 0);
    // compare-and-swap pays with retries, not with lost updates
    assert!(int(cell("optimistic_version", "4"), "retries") > 0);
    let locked = cell("row_locking_atomic_long_delay", "4");
    assert_eq!(
        int(locked, "lost_updates"),
        0,
        "row lock must hold: {locked}"
    );
    assert_eq!(int(locked, "acked"), 24, "{locked}");
    for ep in ["atomic_long_delay", "non_atomic_long_delay"] {
        let r = cell(ep, "4");
        assert!(
            int(r, "lost_updates") > 0,
            "{ep} with 4 workers must lose: {r}"
        );
        assert!(r["lost_rate_lo"].as_f64().unwrap() > 0.0, "{r}");
        assert!(int(r, "distinct_pids") > 1, "{r}");
    }
    // every counter cell's answers carry their balances and times, but f_expression's,
    // which reads nothing
    assert_eq!(json["explanations"].as_array().unwrap().len(), 14);
    assert!(
        common::every_loss_explained(&json) > 0,
        "the 4-worker read-modify-write cells lose"
    );
    for r in rows {
        // the 8 last bytes of a burst go out back to back: microseconds, not milliseconds
        let spread = r["release_spread_us"].as_f64().unwrap_or(f64::NAN);
        assert!((0.0..50_000.0).contains(&spread), "{r}");
        // 1 or 4 handlers for 8 requests: some queue, and a queue is not start skew
        assert!(r["start_skew_ms"].is_null(), "{r}");
    }
    // every request record is kept
    let cells = json["cells"].as_array().unwrap();
    let records: usize = cells
        .iter()
        .flat_map(|c| c["reps"].as_array().unwrap())
        .map(|r| r["records"].as_array().unwrap().len())
        .sum();
    assert_eq!(records, 16 * 3 * 8);

    let run_id = json["run_id"].as_str().unwrap();
    let left = common::labelled(&format!("racy-matrix.run={run_id}")).await;
    assert_eq!(
        left,
        (0, 0),
        "containers and networks of run {run_id} left behind"
    );
    std::fs::remove_dir_all(&out).ok();
}
