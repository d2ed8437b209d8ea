//! Seed 003 on the real engine: a Celery task dispatched inside the view's transaction
//! runs before the commit and misses its row; dispatched from `transaction.on_commit`
//! it finds it. The run waits for the queue to drain before it counts.

use crate::common;

use crate::common::int;

#[tokio::test]
async fn tasks_dispatched_before_commit_miss_their_row() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let (out, json) = common::run_ok("matrices/on-commit.yaml", "on-commit");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "2 stacks x 2 endpoints");
    for r in rows {
        assert_eq!(r["anomaly_kind"], "task", "{r}");
        assert_eq!(r["status"], "ok", "{r}");
        // every acknowledged request dispatched one task, and every task ran
        let acked = int(r, "acked");
        assert_eq!(acked, 32, "{r}");
        match r["endpoint"].as_str().unwrap() {
            "task_in_transaction" => {
                assert!(
                    int(r, "anomalies") >= 16 && int(r, "anomalies") <= acked,
                    "{r}"
                );
                // over bursts: 32 of 32 gives 0.89; one burst at 4 of 8 beside three at
                // 8 of 8 still gives 0.505
                assert!(r["anomaly_rate_lo"].as_f64().unwrap() > 0.5, "{r}");
            }
            "task_on_commit" => {
                assert_eq!(int(r, "anomalies"), 0, "{r}");
                // 0 in 4 bursts of 8: every burst agreed, the verdict is not luck (95%
                // upper bound 0.107; one burst alone would only give 0.79)
                assert!(r["anomaly_rate_hi"].as_f64().unwrap() < 0.12, "{r}");
            }
            other => panic!("unexpected endpoint {other}"),
        }
    }
    std::fs::remove_dir_all(&out).ok();
}
