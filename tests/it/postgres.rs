//! The PostgreSQL stack reaches the same verdicts as MariaDB on the negative controls, and
//! under REPEATABLE READ refuses the racing read-modify-write instead of losing updates.

use crate::common;

use crate::common::int;

#[tokio::test]
async fn postgres_isolation_levels() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let (out, json) = common::run_ok("tests/matrices/postgres.yaml", "pg");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        12,
        "2 isolation levels x 2 worker counts x 3 endpoints"
    );
    let cell = |iso: &str, workers: &str, ep: &str| {
        rows.iter()
            .find(|r| r["isolation"] == iso && r["workers"] == workers && r["endpoint"] == ep)
            .unwrap_or_else(|| panic!("no cell {iso} {workers} {ep}"))
    };
    for r in rows {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(int(r, "errors_5xx") + int(r, "timeouts"), 0, "{r}");
        // negative controls, as on MariaDB
        if r["workers"] == "1" || r["endpoint"] != "atomic_long_delay" {
            assert_eq!(int(r, "lost_updates"), 0, "{r}");
        }
    }
    // READ COMMITTED: the atomic read-modify-write silently loses updates
    let rc = cell("read_committed", "4", "atomic_long_delay");
    assert!(int(rc, "lost_updates") > 0, "{rc}");
    assert_eq!(int(rc, "serialization_failures"), 0, "{rc}");
    // REPEATABLE READ: the same race ends in serialization failures (40001), not loss
    let rr = cell("repeatable_read", "4", "atomic_long_delay");
    assert_eq!(int(rr, "lost_updates"), 0, "{rr}");
    assert!(int(rr, "serialization_failures") > 0, "{rr}");
    assert_eq!(int(rr, "failed"), int(rr, "serialization_failures"), "{rr}");
    // each lost update named from the versions PostgreSQL's UPDATE ... RETURNING gave
    assert_eq!(common::every_loss_explained(&json), int(rc, "lost_updates"));
    std::fs::remove_dir_all(&out).ok();
}
