//! SQLite on a volume shared by two app containers, on the real engine: unguarded
//! read-modify-write loses updates, a deferred transaction turns the race into
//! "database is locked", and BEGIN IMMEDIATE or BEGIN EXCLUSIVE serializes the writers.

use crate::common;

use crate::common::int;

#[tokio::test]
async fn sqlite_immediate_transactions_serialize_writers() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let (out, json) = common::run_ok("matrices/sqlite.yaml", "sqlite");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let cell = |ep: &str| {
        rows.iter()
            .find(|r| r["endpoint"] == ep)
            .unwrap_or_else(|| panic!("no cell {ep}"))
    };
    let plain = cell("non_atomic_long_delay");
    assert!(int(plain, "lost_updates") >= 4, "{plain}");
    assert!(plain["lost_rate_lo"].as_f64().unwrap() > 0.1, "{plain}");
    let deferred = cell("atomic_long_delay");
    assert_eq!(int(deferred, "lost_updates"), 0, "{deferred}");
    assert!(int(deferred, "database_locked") > 0, "{deferred}");
    assert_eq!(
        int(deferred, "acked") + int(deferred, "database_locked"),
        32,
        "every request either committed or was refused as locked: {deferred}"
    );
    for ep in ["immediate_long_delay", "exclusive_long_delay"] {
        let serial = cell(ep);
        assert_eq!(int(serial, "acked"), 32, "{serial}");
        assert_eq!(int(serial, "lost_updates"), 0, "{serial}");
        assert_eq!(int(serial, "database_locked"), 0, "{serial}");
        // both replicas served
        assert!(int(serial, "distinct_pids") >= 2, "{serial}");
        // not luck: its interval over bursts lies below the unguarded one's
        assert!(
            serial["lost_rate_hi"].as_f64().unwrap() < plain["lost_rate_lo"].as_f64().unwrap(),
            "{serial}\n{plain}"
        );
    }
    // each lost update named from the versions SQLite's UPDATE ... RETURNING gave
    assert_eq!(
        common::every_loss_explained(&json),
        int(plain, "lost_updates")
    );
    std::fs::remove_dir_all(&out).ok();
}
