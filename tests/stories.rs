//! The races of the other seeds, measured by the same machinery. get_or_create (seed
//! 004): duplicates without a unique constraint; with one, Django's retry hides the race
//! under READ COMMITTED, and MySQL's REPEATABLE READ snapshot lets the IntegrityError
//! reach the client; create-first-then-get holds under READ COMMITTED.

mod common;

use common::int;

#[tokio::test]
async fn get_or_create_story() {
    if !common::engine_available().await {
        return;
    }
    let (out, json) = common::run_ok("matrices/get-or-create.yaml", "goc");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        12,
        "2 stacks x 2 isolation levels x 3 endpoints"
    );
    let cell = |stack: &str, iso: &str, ep: &str| {
        rows.iter()
            .find(|r| r["stack"] == stack && r["isolation"] == iso && r["endpoint"] == ep)
            .unwrap_or_else(|| panic!("no cell {stack} {iso} {ep}"))
    };
    for r in rows {
        assert_eq!(r["anomaly_kind"], "unique", "{r}");
        assert_eq!(
            int(r, "timeouts") + int(r, "conn_errors") + int(r, "worker_timeouts"),
            0
        );
        match r["endpoint"].as_str().unwrap() {
            // 6 bursts of 8 requests for one new name: without the constraint, duplicates
            "get_or_create_no_unique" => {
                assert!(int(r, "anomalies") >= 6, "{r}");
                assert!(r["anomaly_rate_lo"].as_f64().unwrap() > 0.3, "{r}");
            }
            _ => assert_eq!(int(r, "anomalies"), 0, "the constraint holds: {r}"),
        }
    }
    // every duplicate named: which requests created a second row, as many as counted
    let stories = json["explanations"].as_array().expect("explanations");
    assert_eq!(stories.len(), 12, "every cell's answers say `created`");
    for (cell, r) in stories.iter().zip(rows) {
        let bursts = cell["bursts"].as_array().unwrap();
        let explained: usize = bursts
            .iter()
            .map(|b| b["losses"].as_array().unwrap().len())
            .sum();
        assert_eq!(explained as i64, int(r, "anomalies"), "{cell}");
        for b in bursts {
            assert_eq!(b["reconciled"], true, "{}: {b}", cell["label"]);
        }
    }
    for stack in ["django-mysql", "django-postgres"] {
        // READ COMMITTED: the retry inside get_or_create hides every conflict
        let rc = cell(stack, "read_committed", "get_or_create");
        assert_eq!(int(rc, "integrity_errors"), 0, "{rc}");
        assert!(int(rc, "retries") > 0, "conflicts were hidden: {rc}");
        let safe = cell(stack, "read_committed", "create_or_get");
        assert_eq!(int(safe, "integrity_errors"), 0, "{safe}");
        // REPEATABLE READ: the final get reads the old snapshot and the error surfaces
        let rr = cell(stack, "repeatable_read", "get_or_create");
        assert!(int(rr, "integrity_errors") > 0, "{rr}");
        // every request answered: acked, the IntegrityError, or a conflict the database
        // reports instead (MariaDB may answer concurrent inserts of one key with a
        // deadlock, or 1020 under snapshot isolation)
        assert_eq!(
            int(rr, "acked") + int(rr, "integrity_errors") + int(rr, "serialization_failures"),
            48,
            "{rr}"
        );
    }
    std::fs::remove_dir_all(&out).ok();
}
