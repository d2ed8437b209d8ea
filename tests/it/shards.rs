//! Shards of a matrix, merged, hold exactly the cells of the unsharded run.

use crate::common;

use std::collections::BTreeSet;

fn cell_keys(dir: &std::path::Path) -> BTreeSet<String> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    json["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cell"].to_string())
        .collect()
}

#[tokio::test]
async fn merged_shards_equal_the_whole_run() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let base = common::temp_dir("shards");
    let path = |n: &str| base.join(n).to_str().unwrap().to_string();
    let ok = |args: &[&str]| {
        let o = common::racy(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(&[
        "run",
        "tests/matrices/shards.yaml",
        "--output",
        &path("all"),
    ]);
    ok(&[
        "run",
        "tests/matrices/shards.yaml",
        "--shard",
        "1/2",
        "--output",
        &path("s1"),
    ]);
    ok(&[
        "run",
        "tests/matrices/shards.yaml",
        "--shard",
        "2/2",
        "--output",
        &path("s2"),
    ]);
    ok(&[
        "merge",
        &path("s1"),
        &path("s2"),
        "--output",
        &path("merged"),
    ]);
    let (s1, s2) = (cell_keys(&base.join("s1")), cell_keys(&base.join("s2")));
    assert!(s1.is_disjoint(&s2), "shards overlap");
    assert_eq!(s1.len() + s2.len(), 6);
    assert_eq!(
        cell_keys(&base.join("merged")),
        cell_keys(&base.join("all"))
    );
    // merging a shard twice is refused
    let twice = common::racy(&["merge", &path("s1"), &path("s1"), "--output", &path("bad")]);
    assert_eq!(twice.status.code(), Some(2));
    std::fs::remove_dir_all(&base).ok();
}

/// `--parallel 2` measures the same cells on two stack instances at once.
#[tokio::test]
async fn parallel_instances_measure_every_cell() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let out = common::temp_dir("parallel");
    let o = common::racy(&[
        "run",
        "tests/matrices/shards.yaml",
        "--parallel",
        "2",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = common::results(&out);
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for r in rows {
        assert_eq!(r["status"], "ok", "{r}");
        // every request got the app's answer: acked, or a conflict that MariaDB's
        // snapshot isolation rightly reports when two atomic read-writes overlap
        assert_eq!(
            common::int(r, "acked") + common::int(r, "serialization_failures"),
            4,
            "{r}"
        );
        for k in ["conn_errors", "timeouts", "errors_5xx", "other_errors"] {
            assert_eq!(common::int(r, k), 0, "{k}: {r}");
        }
    }
    // the two halves were served by two app containers
    let hosts: BTreeSet<String> = json["cells"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["reps"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["records"].as_array().cloned().unwrap_or_default())
        .filter_map(|rec| rec["body"]["host"].as_str().map(String::from))
        .collect();
    assert!(hosts.len() >= 2, "one instance only: {hosts:?}");
    std::fs::remove_dir_all(&out).ok();
}
