//! Interrupted and killed runs: SIGINT stops a run and removes everything it created,
//! keeping the cells it measured; after SIGKILL the next command removes the leftovers.

use crate::common;

use std::process::Child;
use std::time::{Duration, Instant};

use crate::common::{first_cell, interrupt, stderr_of, wait_exit, wait_for_containers};

// Every test here holds `common::exclusive()`: one stack at a time on this machine, and
// the leftovers of the killed run are removed by `down`, not by another test's command.

fn start_run(out: &std::path::Path) -> Child {
    common::spawn(&[
        "run",
        "tests/matrices/slow.yaml",
        "--output",
        out.to_str().unwrap(),
    ])
}

#[tokio::test]
async fn sigint_removes_everything_and_keeps_measured_cells() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let out = common::temp_dir("sigint");
    let mut child = start_run(&out);
    let run = wait_for_containers(child.id(), Duration::from_secs(300)).await;
    // let at least one cell finish, then interrupt mid-run
    first_cell(&out).await;
    let sent = Instant::now();
    interrupt(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let took = sent.elapsed();
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(
        common::labelled(&format!("racy-matrix.run={run}")).await,
        (0, 0),
        "nothing of run {run} is left"
    );
    let json = common::results(&out);
    let cells = json["cells"].as_array().unwrap();
    assert!(
        !cells.is_empty() && cells.len() < 4,
        "{} cells kept",
        cells.len()
    );
    assert!(cells.iter().all(|c| c["metrics"].is_object()));
    eprintln!("SIGINT to exit with cleanup: {:.2} s", took.as_secs_f64());
    assert!(err.contains("--resume"), "says how to resume: {err}");
    let kept: Vec<(String, String)> = cells
        .iter()
        .map(|c| {
            (
                c["cell"].to_string(),
                c["reps"][0]["records"][0].to_string(),
            )
        })
        .collect();

    // a changed matrix cannot complete the run
    let changed = out.join("changed.yaml");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/matrices/slow.yaml"),
    )
    .unwrap();
    std::fs::write(&changed, text.replace("requests: 4", "requests: 5")).unwrap();
    let refused = common::racy(&[
        "--stacks",
        "stacks",
        "run",
        changed.to_str().unwrap(),
        "--resume",
        out.to_str().unwrap(),
    ]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{why}");
    assert!(why.contains("requests was 4, is now 5"), "{why}");

    // resuming runs only the missing cells and ends with the whole matrix
    let resumed = common::racy(&[
        "run",
        "tests/matrices/slow.yaml",
        "--resume",
        out.to_str().unwrap(),
    ]);
    let rerr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{rerr}");
    assert!(
        rerr.contains(&format!("{} of 4 cells done", kept.len())),
        "{rerr}"
    );
    let json = common::results(&out);
    let cells = json["cells"].as_array().unwrap();
    let keys: std::collections::BTreeSet<String> =
        cells.iter().map(|c| c["cell"].to_string()).collect();
    assert_eq!(keys.len(), 4, "the whole matrix, each cell once");
    assert!(cells.iter().all(|c| c["metrics"].is_object()));
    for (cell, first_record) in &kept {
        let now = cells
            .iter()
            .find(|c| &c["cell"].to_string() == cell)
            .unwrap();
        assert_eq!(
            &now["reps"][0]["records"][0].to_string(),
            first_record,
            "kept, not re-run"
        );
    }
    std::fs::remove_dir_all(&out).ok();
}

#[tokio::test]
async fn leftovers_of_a_killed_run_are_removed_by_the_next_command() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let out = common::temp_dir("sigkill");
    let mut child = start_run(&out);
    let run = wait_for_containers(child.id(), Duration::from_secs(300)).await;
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let (containers, _) = common::labelled(&format!("racy-matrix.run={run}")).await;
    assert!(containers > 0, "the killed run left its containers");
    // `down` only removes `up` stacks, but every command first removes orphans
    let down = common::racy(&["down"]);
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(down.status.success(), "{err}");
    assert!(err.contains(&run), "says what it removed: {err}");
    assert_eq!(
        common::labelled(&format!("racy-matrix.run={run}")).await,
        (0, 0)
    );
    std::fs::remove_dir_all(&out).ok();
}

#[tokio::test]
async fn a_database_killed_mid_run_costs_a_retry_not_the_run() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let out = common::temp_dir("dbkill");
    let mut child = start_run(&out);
    let run = wait_for_containers(child.id(), Duration::from_secs(300)).await;
    first_cell(&out).await;
    // the first cell is done and the second is under way: kill its database
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let dbs = common::containers(&[
        format!("racy-matrix.run={run}"),
        "racy-matrix.service=db".to_string(),
    ])
    .await;
    let db = dbs[0].id.clone().unwrap();
    docker
        .kill_container(&db, None::<bollard::query_parameters::KillContainerOptions>)
        .await
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(300));
    let err = stderr_of(&mut child);
    assert!(status.success(), "the run finishes: {err}");
    assert!(err.contains("retrying on a fresh stack"), "{err}");
    let json = common::results(&out);
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4, "every cell is there");
    assert!(
        cells.iter().all(|c| c["metrics"].is_object()),
        "retried cells measured"
    );
    assert!(
        cells.iter().any(|c| c["attempts"] == 2),
        "one cell took a second attempt"
    );
    assert_eq!(
        common::labelled(&format!("racy-matrix.run={run}")).await,
        (0, 0)
    );
    std::fs::remove_dir_all(&out).ok();
}

#[tokio::test]
async fn sigint_while_the_stack_starts_leaves_nothing() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let out = common::temp_dir("sigint-start");
    let mut child = start_run(&out);
    // the first container exists: the stack is starting and being probed
    let run = wait_for_containers(child.id(), Duration::from_secs(300)).await;
    let sent = Instant::now();
    interrupt(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(3));
    assert_eq!(
        common::labelled(&format!("racy-matrix.run={run}")).await,
        (0, 0)
    );
    eprintln!(
        "SIGINT during start-up to exit with cleanup: {:.2} s",
        took.as_secs_f64()
    );
    std::fs::remove_dir_all(&out).ok();
}
