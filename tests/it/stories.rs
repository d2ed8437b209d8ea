//! The races of the other seeds, measured by the same machinery. get_or_create (seed
//! 004): duplicates without a unique constraint; with one, Django's retry hides the race
//! under READ COMMITTED, and MySQL's REPEATABLE READ snapshot lets the IntegrityError
//! reach the client; create-first-then-get holds under READ COMMITTED. The thread's
//! other answers: select_for_update() before the create has no row to lock, so the
//! creators collide (except where MariaDB's REPEATABLE READ locks the empty range); a
//! retry after the IntegrityError fails again inside PostgreSQL's REPEATABLE READ
//! snapshot and holds in a new transaction.

use crate::common;

use crate::common::int;

#[tokio::test]
async fn get_or_create_story() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let (out, json) = common::run_ok("matrices/get-or-create.yaml", "goc");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        28,
        "2 stacks x 2 isolation levels x 7 endpoints"
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
            // checked below, per database and isolation level
            "select_for_update_or_create_no_unique" => {}
            _ => assert_eq!(int(r, "anomalies"), 0, "the constraint holds: {r}"),
        }
    }
    // every duplicate named: which requests created a second row, as many as counted
    let stories = json["explanations"].as_array().expect("explanations");
    assert_eq!(stories.len(), 28, "every cell's answers say `created`");
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
    select_for_update_finds_nothing_to_lock(&cell);
    retry_needs_a_new_snapshot(&cell);
    std::fs::remove_dir_all(&out).ok();
}

/// Every request of a cell's 6 bursts of 8 answered: acked, or refused by the database.
fn all_answered(r: &serde_json::Value) {
    assert_eq!(
        int(r, "acked") + int(r, "integrity_errors") + int(r, "serialization_failures"),
        48,
        "{r}"
    );
}

/// select_for_update().filter().first(), then create: where the locking read takes no
/// lock on the missing row (READ COMMITTED, and PostgreSQL at any level), concurrent
/// creators collide in most bursts: refused by the constraint, or duplicates without one.
/// MariaDB's REPEATABLE READ locks the empty range, so its creators queue or deadlock.
fn select_for_update_finds_nothing_to_lock<'a>(
    cell: &impl Fn(&str, &str, &str) -> &'a serde_json::Value,
) {
    for (stack, iso) in [
        ("django-mysql", "read_committed"),
        ("django-postgres", "read_committed"),
        ("django-postgres", "repeatable_read"),
    ] {
        let unique = cell(stack, iso, "select_for_update_or_create");
        all_answered(unique);
        // about one creator in three refused: a rate over bursts, not a stray error
        assert!(int(unique, "integrity_errors") >= 6, "{unique}");
        let loose = cell(stack, iso, "select_for_update_or_create_no_unique");
        assert!(int(loose, "anomalies") >= 6, "{loose}");
        assert!(loose["anomaly_rate_lo"].as_f64().unwrap() > 0.3, "{loose}");
    }
    // MariaDB, REPEATABLE READ: the locking read locks the empty range, so no creator
    // gets past it while another holds it; they wait or deadlock, and none is refused by
    // the constraint or makes a duplicate
    for ep in [
        "select_for_update_or_create",
        "select_for_update_or_create_no_unique",
    ] {
        let r = cell("django-mysql", "repeatable_read", ep);
        assert_eq!(int(r, "anomalies"), 0, "{r}");
        assert_eq!(int(r, "integrity_errors"), 0, "{r}");
        all_answered(r);
    }
    // without an index on the name the range is the whole table: some creators deadlock
    let whole = cell(
        "django-mysql",
        "repeatable_read",
        "select_for_update_or_create_no_unique",
    );
    assert!(int(whole, "serialization_failures") > 0, "{whole}");
}

/// Catching the IntegrityError and retrying after 50 ms: in PostgreSQL's REPEATABLE READ,
/// a retry inside the request's transaction reads the same snapshot and the error reaches
/// the client as often as without the retry; a retry in a new transaction finds the row
/// on both databases at both levels.
fn retry_needs_a_new_snapshot<'a>(cell: &impl Fn(&str, &str, &str) -> &'a serde_json::Value) {
    let plain = cell("django-postgres", "repeatable_read", "get_or_create");
    let same = cell("django-postgres", "repeatable_read", "get_or_create_retry");
    assert!(int(same, "integrity_errors") >= 6, "{same}");
    assert!(
        int(same, "integrity_errors") * 2 >= int(plain, "integrity_errors"),
        "waiting did not make the row visible: {same}\n{plain}"
    );
    for stack in ["django-mysql", "django-postgres"] {
        for iso in ["read_committed", "repeatable_read"] {
            let fresh = cell(stack, iso, "get_or_create_retry_transaction");
            assert_eq!(int(fresh, "integrity_errors"), 0, "{fresh}");
            assert!(
                int(fresh, "retries") > 0,
                "conflicts were met and retried: {fresh}"
            );
            all_answered(fresh);
        }
        // MariaDB: the retry inside the transaction finds the row as well
        let same = cell(stack, "repeatable_read", "get_or_create_retry");
        if stack == "django-mysql" {
            assert_eq!(int(same, "integrity_errors"), 0, "{same}");
            assert!(int(same, "retries") > 0, "{same}");
        }
        all_answered(same);
    }
    // the fresh transaction is what made the difference
    let fresh = cell(
        "django-postgres",
        "repeatable_read",
        "get_or_create_retry_transaction",
    );
    assert!(
        int(fresh, "acked") >= int(same, "acked") + 6,
        "{fresh}\n{same}"
    );
}
