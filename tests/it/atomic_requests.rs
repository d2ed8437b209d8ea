//! Seed 003 as the article writes it, on the real engine, MariaDB and PostgreSQL: the view
//! has no atomic() of its own and Django's ATOMIC_REQUESTS decides. `.delay()` in the
//! view misses its row only with the setting on; transaction.on_commit(),
//! @transaction.non_atomic_requests and Celery's delay_on_commit() never miss; an inner
//! atomic() under ATOMIC_REQUESTS is a savepoint, so dispatching after it still misses.

use crate::common;

use crate::common::int;

#[tokio::test]
async fn atomic_requests_decides_whether_the_task_finds_its_row() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let (out, json) = common::run_ok("matrices/atomic-requests.yaml", "atomic-requests");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 20, "2 stacks x 2 settings x 5 endpoints");
    let cell = |stack: &str, ep: &str, atomic: &str| {
        rows.iter()
            .find(|r| r["stack"] == stack && r["endpoint"] == ep && r["atomic_requests"] == atomic)
            .unwrap_or_else(|| panic!("no cell {stack} {ep} atomic_requests={atomic}"))
    };
    let rate = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
    for r in rows {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["anomaly_kind"], "task", "{r}");
        // every request acknowledged, so every one of them dispatched its task
        assert_eq!(int(r, "acked"), 32, "{r}");
    }
    for stack in ["django-mysql", "django-postgres"] {
        for ep in ["task_view_delay", "task_view_after_atomic"] {
            let on = cell(stack, ep, "true");
            let off = cell(stack, ep, "false");
            // under ATOMIC_REQUESTS the row commits after the view returns, 200 ms after
            // the task was sent: most tasks miss it (over bursts, the lower end > 0.5)
            assert!(rate(on, "anomaly_rate_lo") > 0.5, "{on}");
            // without it each statement (or the inner atomic()) commits before the send
            assert_eq!(int(off, "anomalies"), 0, "{off}");
            assert!(
                rate(off, "anomaly_rate_hi") < rate(on, "anomaly_rate_lo"),
                "{off}\n{on}"
            );
        }
        for ep in [
            "task_view_on_commit",
            "task_view_non_atomic",
            "task_view_delay_on_commit",
        ] {
            for atomic in ["true", "false"] {
                let r = cell(stack, ep, atomic);
                assert_eq!(int(r, "anomalies"), 0, "{r}");
                // 0 in 4 bursts of 8: the 95% upper bound is 0.107
                assert!(rate(r, "anomaly_rate_hi") < 0.12, "{r}");
            }
        }
    }
    claims_table(&out);
    std::fs::remove_dir_all(&out).ok();
}

/// `racy-matrix claims` on the run: one row per claim of the matrix, each held, with the
/// tasks of the cells it selects pooled (the two stacks, and both settings where the
/// claim names none).
fn claims_table(out: &std::path::Path) {
    let claims = common::racy(&["claims", out.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&claims.stdout);
    assert!(
        claims.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&claims.stderr)
    );
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert_eq!(rows.len(), 6, "{table}");
    for row in &rows {
        assert!(row.starts_with("| seed 003 | "), "{row}");
        assert!(row.contains(" | held | "), "{row}");
    }
    let row = |claim: &str| {
        *rows
            .iter()
            .find(|r| r.contains(claim))
            .unwrap_or_else(|| panic!("no claim {claim}: {table}"))
    };
    // one setting, two stacks: 64 tasks; both settings: 128
    assert!(
        row("with ATOMIC_REQUESTS, .delay()").contains(" of 64 tasks missed, "),
        "{table}"
    );
    assert!(
        row("@transaction.non_atomic_requests").contains(" 0 of 128 tasks missed, 0.00 [0.00, 0.0"),
        "{table}"
    );
}
