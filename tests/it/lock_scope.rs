//! Seed 002 on the real engine: each lock guards the read-modify-write only within its
//! scope. A thread lock holds within one process, an flock inside the container within
//! one replica, an flock on a shared volume and a Redis lease across replicas; a lease
//! shorter than the work lets others in. And flock is advisory: when half the requests
//! write without the shared flock, the half that takes it loses updates too.

use crate::common;

use crate::common::int;
use racy_matrix::harness::CellResult;
use racy_matrix::harness::{Check, anomaly_bursts, cluster_wilson};

#[tokio::test]
async fn each_lock_is_safe_up_to_its_scope() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let (out, json) = common::run_ok("matrices/lock-scope.yaml", "lock-scope");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        25,
        "2 replica counts x 2 worker counts x 6 endpoints + 1"
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
    // the shared flock taken by half the requests only: lossy wherever the same lock
    // taken by all is safe
    for (replicas, workers) in [("1", "3"), ("3", "1"), ("3", "3")] {
        lossy(cell(replicas, workers, "lock_flock_mixed", long));
    }
    // ... and the two intervals do not overlap. One cell's 4 bursts cannot show it: 0 of
    // 32 has an upper bound of 0.107, and 3 replicas of 1 worker have lost as few as 7
    // of 32 (lower bound 0.067). Pooled over the three multi-process cells, 12 bursts
    // each, the bounds are about 0.04 against 0.2.
    let shared = pooled_interval(&json, "lock_flock_shared");
    let mixed = pooled_interval(&json, "lock_flock_mixed");
    assert!(shared.1 < mixed.0, "shared {shared:?}, mixed {mixed:?}");
    advisory_lock_fails_its_takers(&json);
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

/// The burst-level interval of the lost-update rate of `endpoint` (30 s lease), pooled
/// over the cells with more than one process: every burst of those cells, as the cells'
/// own intervals count them.
fn pooled_interval(json: &serde_json::Value, endpoint: &str) -> (f64, f64) {
    let mut bursts = Vec::new();
    let mut cells = 0;
    for c in json["cells"].as_array().unwrap() {
        let c: CellResult = serde_json::from_value(c.clone()).unwrap();
        let axes = &c.cell.axes;
        let one_process = axes["replicas"] == "1" && axes["workers"] == "1";
        if axes["endpoint"] != endpoint || axes["lock_ttl_ms"] != "30000" || one_process {
            continue;
        }
        cells += 1;
        // the matrix's amount is the default, 100
        bursts.extend(anomaly_bursts(&c.reps, 100, &Check::Counter));
    }
    assert_eq!(cells, 3, "{endpoint}: three multi-process cells");
    assert_eq!(bursts.len(), 12, "{endpoint}: {bursts:?}");
    cluster_wilson(&bursts)
}

/// In the lock_flock_mixed cells with more than one process: exactly half the requests of
/// each burst took the shared flock (the app's ticket alternates); takers never race each
/// other (a taker erases another taker's increment only by reading, after its commit, a
/// state from which a request that skipped the lock had taken it), and increments of
/// lock-takers were erased by requests that skipped it (it does not protect those who
/// take it).
fn advisory_lock_fails_its_takers(json: &serde_json::Value) {
    let cells = json["cells"].as_array().unwrap();
    let mut takers_lost = 0;
    let mut mixed_cells = 0;
    for story in json["explanations"].as_array().unwrap() {
        let cell = &cells[story["cell"].as_u64().unwrap() as usize - 1];
        let axes = &cell["cell"]["axes"];
        if axes["endpoint"] != "lock_flock_mixed"
            || (axes["replicas"] == "1" && axes["workers"] == "1")
        {
            continue;
        }
        mixed_cells += 1;
        for (rep, burst) in cell["reps"]
            .as_array()
            .unwrap()
            .iter()
            .zip(story["bursts"].as_array().unwrap())
        {
            // request index -> whether it took the lock
            let locked: std::collections::BTreeMap<u64, bool> = rep["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let took = r["body"]["locked"].as_bool().expect("answer says `locked`");
                    (r["index"].as_u64().unwrap(), took)
                })
                .collect();
            let takers = locked.values().filter(|&&l| l).count();
            assert_eq!(takers * 2, locked.len(), "half take the lock: {rep}");
            assert_eq!(burst["reconciled"], true, "{burst}");
            for loss in burst["losses"].as_array().unwrap() {
                let lost = locked[&loss["lost"].as_u64().unwrap()];
                let by = locked[&loss["by"].as_u64().unwrap()];
                // A loss is told by its last erasure. A taker's increment that a request
                // skipping the lock erased, and that another skipper then read back, can
                // be erased for good by a later taker who built on the first skipper's
                // branch: that taker read after the victim's commit (a stale read). Two
                // takers never overlap, so they never erase each other any other way.
                assert!(
                    !(lost && by) || loss["kind"] == "stale_read",
                    "two lock-takers overlapped: {loss}"
                );
                if lost {
                    takers_lost += 1;
                }
            }
        }
    }
    assert_eq!(mixed_cells, 3, "every mixed cell has its stories");
    assert!(
        takers_lost >= 3,
        "requests that took the lock lost their increment to those that skipped it: {takers_lost}"
    );
}
