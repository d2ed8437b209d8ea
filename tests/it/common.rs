//! Helpers shared by the integration tests: the binary, the engine, leftovers, and the
//! lock that keeps the tests which act on the whole engine apart from the others.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, MutexGuard};

/// The engine, as far as the tests of this binary are concerned.
///
/// All areas run in one process, so a test of one area may run beside a test of any
/// other. Two things make tests that put stacks on the engine interfere:
///
/// - some commands act on every labelled object of the engine: `racy-matrix clean`
///   removes every run's containers, `down` every `up` stack, and every command that
///   connects first removes the leftovers of runs whose process is gone (so a test that
///   kills a run to count its leftovers must be the only one starting commands);
/// - the measurements are timed: a second stack on a 2-core machine changes how bursts
///   are released and served, which the tests of skew, spread and start-up races read.
///
/// So a test that runs `racy-matrix run`, `up`, `check`, `down` or `clean` holds
/// [`exclusive`] for as long as its engine objects exist: such tests run one at a time,
/// as they did when each area was a binary of its own. Tests without an engine, and
/// tests whose engine objects carry no racy-matrix label (a bare container named after
/// this process, a plain docker-compose project), take nothing and run beside them.
/// The lock does not poison: a test that fails while holding it frees it for the rest.
static ENGINE: Mutex<()> = Mutex::const_new(());

/// The whole engine to this test: no other test holding it runs until the guard is
/// dropped.
pub async fn exclusive() -> MutexGuard<'static, ()> {
    ENGINE.lock().await
}

/// The racy-matrix binary built for these tests, run from the project root.
pub fn racy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_racy-matrix"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("racy-matrix runs")
}

/// Starts the racy-matrix binary from the project root with its output piped, without
/// waiting for it (for tests that signal or kill it).
pub fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_racy-matrix"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("racy-matrix starts")
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "racy-test-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Whether the engine answers. Under CI=true a missing engine fails the test instead of
/// skipping it.
pub async fn engine_available() -> bool {
    let ok = match bollard::Docker::connect_with_local_defaults() {
        Ok(d) => d.ping().await.is_ok(),
        Err(_) => false,
    };
    if !ok {
        if std::env::var("CI")
            .map(|v| v == "true" || v == "1")
            .unwrap_or(false)
        {
            panic!("CI=true and no Docker Engine answers: the integration tests need one");
        }
        eprintln!("SKIPPED: no Docker Engine answers (set CI=true to make this a failure)");
    }
    ok
}

/// Containers and networks whose labels match `filter` (e.g. `racy-matrix.run=ID`).
pub async fn labelled(filter: &str) -> (usize, usize) {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    labelled_on(&docker, filter).await
}

/// [`labelled`], on the engine `docker` talks to.
pub async fn labelled_on(docker: &bollard::Docker, filter: &str) -> (usize, usize) {
    let filters = HashMap::from([("label".to_string(), vec![filter.to_string()])]);
    let containers = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .unwrap();
    let networks = docker
        .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
            filters: Some(filters),
        }))
        .await
        .unwrap();
    (containers.len(), networks.len())
}

/// Volumes whose labels match `filter`.
pub async fn volumes(filter: &str) -> usize {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let filters = HashMap::from([("label".to_string(), vec![filter.to_string()])]);
    docker
        .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
            filters: Some(filters),
        }))
        .await
        .unwrap()
        .volumes
        .unwrap_or_default()
        .len()
}

/// An integer column of a results row.
pub fn int(r: &serde_json::Value, k: &str) -> i64 {
    r[k].as_i64()
        .unwrap_or_else(|| panic!("{k} is not an integer in {r}"))
}

/// A run directory's results.json.
pub fn results(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

/// Runs a matrix into a fresh directory, asserts it succeeded, and returns the directory
/// and its results.json.
pub fn run_ok(matrix: &str, name: &str) -> (PathBuf, serde_json::Value) {
    let out = temp_dir(name);
    let run = racy(&["run", matrix, "--output", out.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "run {matrix} failed: {}\n{}",
        String::from_utf8_lossy(&run.stderr),
        String::from_utf8_lossy(&run.stdout)
    );
    let json = results(&out);
    (out, json)
}

/// Containers (running or not) whose labels match every filter (`key=value`).
pub async fn containers(filters: &[String]) -> Vec<bollard::models::ContainerSummary> {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), filters.to_vec())])),
            ..Default::default()
        }))
        .await
        .unwrap()
}

/// The run label of the process `pid`, once its containers exist.
pub async fn wait_for_containers(pid: u32, deadline: Duration) -> String {
    let until = Instant::now() + deadline;
    loop {
        let list = containers(&[format!("racy-matrix.pid={pid}")]).await;
        if let Some(run) = list
            .iter()
            .find_map(|c| c.labels.as_ref()?.get("racy-matrix.run").cloned())
        {
            return run;
        }
        assert!(Instant::now() < until, "no container of pid {pid} appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends SIGINT to a child.
pub fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until a run writing to `out` has written its first finished cell.
pub async fn first_cell(out: &std::path::Path) {
    let until = Instant::now() + Duration::from_secs(120);
    while !out.join("results.json").exists() {
        assert!(Instant::now() < until, "no cell finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the child wrote to stderr.
pub fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < until,
            "the run did not stop within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every lost update of every burst is explained, request by request: the history
/// rebuilt from the answers alone (the balance and the row version each request read and
/// wrote) ends where the database is, with as many erased increments as the SQL counted.
/// A burst that does not reconcile fails the test: nothing is left to flagging here.
/// Returns the losses explained.
pub fn every_loss_explained(json: &serde_json::Value) -> i64 {
    let stories = json["explanations"].as_array().expect("explanations");
    let mut explained_total = 0;
    for cell in stories {
        let label = cell["label"].as_str().unwrap();
        for b in cell["bursts"].as_array().unwrap() {
            let lost = b["lost"].as_i64().unwrap();
            let losses = b["losses"].as_array().unwrap();
            assert_eq!(b["reconciled"], true, "{label}: {b}");
            assert!(b["note"].is_null(), "{label}: {b}");
            assert_eq!(losses.len() as i64, lost, "{label}: {b}");
            for l in losses {
                // ordered by the versions the lab answers with, not by the clock
                let text = l["text"].as_str().unwrap();
                assert!(text.contains(" (v"), "{label}: {text}");
                assert_ne!(l["lost"], l["by"], "{label}: {text}");
            }
            explained_total += lost;
        }
    }
    let counted: i64 = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        // f_expression reads nothing and loses nothing: no story to tell
        .filter(|r| r["endpoint"] != "f_expression")
        .map(|r| int(r, "lost_updates"))
        .sum();
    assert_eq!(explained_total, counted);
    explained_total
}
