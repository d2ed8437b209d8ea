//! Seed 004's refresh_from_db() on the real engine, MariaDB and PostgreSQL: re-reading
//! the row right before the write narrows the read -> write window from the 200 ms delay
//! to the ledger insert, so fewer updates are lost, but not none — and hardly fewer when
//! every request of a synchronized burst waits exactly as long, so all re-read at once.

use crate::common;

use crate::common::int;

#[tokio::test]
async fn refresh_from_db_narrows_the_window_without_closing_it() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let (out, json) = common::run_ok("matrices/refresh.yaml", "refresh");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        10,
        "2 stacks x (3 endpoints + 2 with a varying delay)"
    );
    let cell = |stack: &str, ep: &str, delay: &str| {
        rows.iter()
            .find(|r| r["stack"] == stack && r["endpoint"] == ep && r["delay_ms"] == delay)
            .unwrap_or_else(|| panic!("no cell {stack} {ep} {delay}"))
    };
    let rate = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
    for r in rows {
        assert_eq!(r["status"], "ok", "{r}");
        // no transaction, nothing to refuse: every increment is acknowledged and recorded
        assert_eq!(int(r, "acked"), 80, "{r}");
        assert_eq!(int(r, "ledger_rows"), 80, "{r}");
    }
    for stack in ["django-mysql", "django-postgres"] {
        // one delay for all: the re-reads come at the same moment, most updates still lost
        let same = cell(stack, "refresh_long_delay", "200");
        assert!(rate(same, "lost_rate_lo") > 0.3, "{same}");
        // a delay that varies by 10 ms spreads the re-reads: far fewer losses than with
        // the whole delay in the window (the intervals over bursts do not overlap) ...
        let long = cell(stack, "non_atomic_long_delay", "190-210");
        let refreshed = cell(stack, "refresh_long_delay", "190-210");
        assert!(rate(long, "lost_rate_lo") > 0.3, "{long}");
        assert!(
            rate(refreshed, "lost_rate_hi") < rate(long, "lost_rate_lo"),
            "{refreshed}\n{long}"
        );
        // ... but not none: the interval stays above zero
        assert!(int(refreshed, "lost_updates") >= 3, "{refreshed}");
        assert!(rate(refreshed, "lost_rate_lo") > 0.01, "{refreshed}");
    }
    // each loss named, the re-read being what the answers report as read
    common::every_loss_explained(&json);
    std::fs::remove_dir_all(&out).ok();
}
