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
    // each shard runs on 2 stack instances, split with the same timings as every other
    // shard, from the one binary the build job made
    assert!(run.contains("--parallel 2"), "{run}");
    assert!(run.contains("--timings timings"), "{run}");
    let needs: Vec<&str> = shard["needs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(needs, ["build", "timings"]);
    for job in ["shard", "merge", "story"] {
        let builds = w["jobs"][job]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["run"].as_str())
            .any(|r| r.contains("cargo build"));
        assert!(!builds, "{job} uses the build job's binary");
    }
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

#[test]
fn every_story_matrix_runs_nightly() {
    let w = workflow();
    let story = &w["jobs"]["story"];
    let listed: Vec<String> = story["strategy"]["matrix"]["story"]
        .as_array()
        .expect("a story list")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // every shipped matrix that states a claim is a story of the nightly ...
    let dir = format!("{}/matrices", env!("CARGO_MANIFEST_DIR"));
    let mut with_claims = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if text.lines().any(|l| l.trim_start().starts_with("claim:")) {
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                listed.contains(&name),
                "{name} states claims: it runs nightly"
            );
            with_claims.push(name);
        }
    }
    assert!(with_claims.len() >= 9, "{with_claims:?}");
    // ... and the claims job tables them all
    let claims = w["jobs"]["claims"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains("racy-matrix claims"))
        .expect("a claims step");
    for name in &listed {
        assert!(claims.contains(name.as_str()), "{name} in {claims}");
    }
    let run = story["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains("racy-matrix run"))
        .expect("a run step");
    assert!(run.contains("matrices/${{ matrix.story }}.yaml"), "{run}");
}

#[test]
fn nightly_compares_with_the_last_night() {
    let w = workflow();
    let merge = &w["jobs"]["merge"];
    assert_eq!(
        merge["permissions"]["actions"], "read",
        "gh lists runs and downloads artifacts"
    );
    let steps = merge["steps"].as_array().unwrap();
    let at = |needle: &str| {
        steps
            .iter()
            .position(|s| s["run"].as_str().is_some_and(|r| r.contains(needle)))
            .unwrap_or_else(|| panic!("no step runs {needle}"))
    };
    assert!(at("racy-matrix merge") < at("racy-matrix compare"));
    let step = &steps[at("racy-matrix compare")];
    let run = step["run"].as_str().unwrap();
    assert!(
        run.contains("compare previous nightly --fail-on worse"),
        "{run}"
    );
    assert!(run.contains("gh run list") && run.contains("gh run download"));
    assert!(run.contains("GITHUB_STEP_SUMMARY"), "{run}");
    assert!(run.contains("skipped"), "a first night skips: {run}");
    assert!(step["env"]["GH_TOKEN"].is_string());
}
