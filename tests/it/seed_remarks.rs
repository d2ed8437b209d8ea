//! Seed 001's side remarks on the real engine: one Gunicorn worker serializes a burst
//! only while it has one thread, and row locking, safe as it is, makes the burst wait in
//! line long enough for Gunicorn to kill the workers that outlast its timeout.

use crate::common;

use crate::common::int;

#[tokio::test]
async fn one_worker_and_row_locking_as_the_seed_says() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let (_, json) = common::run_ok("matrices/seed-001-remarks.yaml", "seed-001");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let cell = |ep: &str, threads: &str, timeout: &str| {
        rows.iter()
            .find(|r| {
                r["endpoint"] == ep && r["threads"] == threads && r["worker_timeout"] == timeout
            })
            .unwrap_or_else(|| panic!("no cell {ep} threads={threads} timeout={timeout}"))
    };
    // one sync worker, one thread: the burst is served one request at a time
    let serial = cell("non_atomic_long_delay", "1", "120");
    assert_eq!(int(serial, "lost_updates"), 0, "{serial}");
    assert_eq!(int(serial, "ledger_rows"), 32, "{serial}");
    // the same single worker with 4 threads loses updates; the burst-level interval
    // keeps its lower end above zero
    let threaded = cell("non_atomic_long_delay", "4", "120");
    assert_eq!(int(threaded, "distinct_pids"), 1, "one process: {threaded}");
    assert!(int(threaded, "lost_updates") >= 8, "{threaded}");
    assert!(
        threaded["lost_rate_lo"].as_f64().unwrap() > 0.1,
        "{threaded}"
    );
    // row locking loses nothing whatever the timeout ...
    let patient = cell("row_locking_atomic_long_delay", "1", "120");
    let short = cell("row_locking_atomic_long_delay", "1", "5");
    for r in [patient, short] {
        assert_eq!(int(r, "lost_updates"), 0, "{r}");
        assert_eq!(int(r, "other_errors"), 0, "every error classified: {r}");
    }
    // ... but those in line longer than Gunicorn's timeout lose their worker (a quarter
    // or more of the 32: the third in line has waited 4 s and holds 2 s more)
    assert_eq!(int(patient, "worker_timeouts"), 0, "{patient}");
    assert_eq!(int(patient, "acked"), 32, "{patient}");
    assert!(int(short, "worker_timeouts") >= 8, "{short}");
    assert_eq!(
        int(short, "acked") + int(short, "worker_timeouts"),
        32,
        "every request acked or timed out: {short}"
    );
}
