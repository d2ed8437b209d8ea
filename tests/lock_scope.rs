//! Seed 002 on the real engine: each lock guards the read-modify-write only within its
//! scope. A thread lock holds within one process, an flock inside the container within
//! one replica, an flock on a shared volume and a Redis lease across replicas; a lease
//! shorter than the work lets others in.

mod common;

use common::int;

#[tokio::test]
async fn each_lock_is_safe_up_to_its_scope() {
    if !common::engine_available().await {
        return;
    }
    let (out, json) = common::run_ok("matrices/lock-scope.yaml", "lock-scope");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        21,
        "2 replica counts x 2 worker counts x 5 endpoints + 1"
    );
    let cell = |replicas: &str, workers: &str, ep: &str, ttl: &str| {
        rows.iter()
            .find(|r| {
                r["replicas"] == replicas
                    && r["workers"] == workers
                    && r["endpoint"] == ep
                    && r["lock_ttl_ms"] == ttl
            })
            .unwrap_or_else(|| panic!("no cell {replicas} {workers} {ep} {ttl}"))
    };
    // unsafe: lost updates, with the lower end of the 95% interval above zero (over
    // bursts: even 8 losses all in one of the 4 bursts keep it at 0.037)
    let lossy = |r: &serde_json::Value| {
        assert!(int(r, "lost_updates") >= 3, "{r}");
        assert!(r["lost_rate_lo"].as_f64().unwrap() > 0.02, "{r}");
    };
    // safe: nothing lost out of the 32 increments of the cell
    let safe = |r: &serde_json::Value| {
        assert_eq!(int(r, "ledger_rows"), 32, "{r}");
        assert_eq!(int(r, "lost_updates"), 0, "{r}");
    };
    for r in rows {
        assert_eq!(r["status"], "ok", "{r}");
        if r["replicas"] == "1" && r["workers"] == "1" {
            safe(r);
        }
    }
    let long = "30000";
    lossy(cell("1", "3", "non_atomic_long_delay", long));
    lossy(cell("3", "1", "non_atomic_long_delay", long));
    // a process-local lock: fine alone, useless across processes
    lossy(cell("1", "3", "lock_thread", long));
    lossy(cell("3", "1", "lock_thread", long));
    // an flock in the container: holds across its workers, not across replicas
    safe(cell("1", "3", "lock_flock_local", long));
    lossy(cell("3", "1", "lock_flock_local", long));
    lossy(cell("3", "3", "lock_flock_local", long));
    // shared scope: holds everywhere here
    for (replicas, workers) in [("1", "3"), ("3", "1"), ("3", "3")] {
        safe(cell(replicas, workers, "lock_flock_shared", long));
        safe(cell(replicas, workers, "lock_redis", long));
    }
    // a lease that expires before the work is done lets the next request in
    lossy(cell("3", "3", "lock_redis", "50"));
    // start skew only where the stack serves a whole burst at once (3 replicas x 3
    // workers = 9 handlers for 8 requests); with fewer, requests queue: blank
    for r in rows {
        let whole_burst = r["replicas"] == "3" && r["workers"] == "3";
        assert_eq!(r["start_skew_ms"].is_null(), !whole_burst, "{r}");
    }
    // several replicas really served the bursts
    assert!(int(cell("3", "1", "lock_flock_shared", long), "distinct_pids") >= 2);
    std::fs::remove_dir_all(&out).ok();
}
