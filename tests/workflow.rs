//! The nightly workflow is well formed and its shards cover the nightly matrix exactly:
//! the job matrix lists shards 1..=N and every shard runs `--shard K/N` of the same N.

use serde_json::Value;

fn workflow() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.github/workflows/nightly.yml"
    ))
    .unwrap();
    serde_saphyr::from_str(&text).expect("nightly.yml is valid YAML")
}

#[test]
fn nightly_shards_cover_the_matrix() {
    let w = workflow();
    assert!(w["on"]["schedule"][0]["cron"].is_string(), "scheduled");
    assert!(
        w["on"].get("workflow_dispatch").is_some(),
        "runnable by hand"
    );
    let shard = &w["jobs"]["shard"];
    let list: Vec<u64> = shard["strategy"]["matrix"]["shard"]
        .as_array()
        .expect("a shard list")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let n = list.len() as u64;
    assert_eq!(list, (1..=n).collect::<Vec<_>>(), "shards 1..=N");
    let steps = shard["steps"].as_array().unwrap();
    let run = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains("racy-matrix run"))
        .expect("a run step");
    assert!(run.contains("matrices/nightly.yaml"), "{run}");
    assert!(
        run.contains(&format!("--shard \"${{{{ matrix.shard }}}}/{n}\"")),
        "every shard runs K/{n}: {run}"
    );
    let merge = &w["jobs"]["merge"];
    assert_eq!(merge["needs"], "shard");
    let merge_runs: Vec<&str> = merge["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect();
    assert!(merge_runs.iter().any(|r| r.contains("racy-matrix merge")));
    assert!(
        merge_runs
            .iter()
            .any(|r| r.contains("racy-matrix report") && r.contains("GITHUB_STEP_SUMMARY"))
    );
}
