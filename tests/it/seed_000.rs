//! Seed 000 on the real engine, MariaDB and PostgreSQL, each database initialising at
//! start: an app that migrates at start with compose's depends_on alone fails every
//! time; waiting until the database answers a query never does; the article's port loop
//! finds the port closed, waits its 3 s and migrates.

use crate::common;

use crate::common::int;

#[tokio::test]
async fn the_app_migrates_before_the_database_answers_unless_it_waits() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let (out, json) = common::run_ok("tests/matrices/startup.yaml", "startup");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 24, "2 stacks x 3 waits x 4 starts");
    for r in rows {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["anomaly_kind"], "start", "{r}");
        // the one request reported its app's start
        assert_eq!(int(r, "acked"), 1, "{r}");
    }
    // what each start's app said: (stack, wait) -> its answers
    let cells = json["cells"].as_array().unwrap();
    for stack in ["startup-mysql", "startup-postgres"] {
        let answers = |wait: &str| -> Vec<serde_json::Value> {
            cells
                .iter()
                .filter(|c| c["cell"]["stack"] == stack && c["cell"]["axes"]["start_wait"] == wait)
                .map(|c| c["reps"][0]["records"][0]["body"].clone())
                .collect()
        };
        let none = answers("none");
        let port = answers("port");
        let query = answers("query");
        assert_eq!((none.len(), port.len(), query.len()), (4, 4, 4), "{stack}");
        for a in &none {
            // four fresh starts: the database still initialising, the connection refused
            assert_eq!(a["failed"], true, "{stack}: {a}");
            assert_eq!(a["waited_s"].as_f64(), Some(0.0), "{stack}: {a}");
            let error = a["error"].as_str().unwrap();
            assert!(error.starts_with("OperationalError"), "{stack}: {a}");
        }
        for a in &query {
            assert_eq!(a["failed"], false, "{stack}: {a}");
            // it waited: the database was not answering when the app began
            assert!(a["waited_s"].as_f64().unwrap() > 0.5, "{stack}: {a}");
        }
        for a in &port {
            // the article's loop found the port closed at least once and slept its 3 s
            assert!(a["waited_s"].as_f64().unwrap() >= 3.0, "{stack}: {a}");
        }
    }
    // pooled over both databases, the two verdicts are not luck: 8 of 8 starts failed
    // (95% lower bound 0.68) against 0 of 8 (upper bound 0.32)
    let rate = |wait: &str| {
        let starts: Vec<(u64, u64)> = rows
            .iter()
            .filter(|r| r["start_wait"] == wait)
            .map(|r| (int(r, "anomalies") as u64, 1))
            .collect();
        racy_matrix::harness::cluster_wilson(&starts)
    };
    let (none_lo, _) = rate("none");
    let (_, query_hi) = rate("query");
    assert!(none_lo > 0.6 && query_hi < 0.4, "{none_lo} {query_hi}");
    std::fs::remove_dir_all(&out).ok();
}
