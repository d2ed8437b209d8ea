//! Shards of a matrix, merged, hold exactly the cells of the unsharded run.

mod common;

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
