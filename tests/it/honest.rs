//! Numbers and files that can be trusted: the final state is read only after the server
//! finished every request (queued ones included), the store stands alone, the database
//! password never shows, a broken stack says so at once, and what `--keep-up`, `--resume`,
//! `down`, `clean` and an interrupted `up` leave is what they promise.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// Every test here holds `common::exclusive()`: one stack at a time on this machine, and
// `down` and `clean` act on every racy-matrix object of the engine.

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A stacks directory in `dir` holding one stack `name` with this compose file; the
/// shipped images are reached through a link, so build contexts resolve as in `stacks/`.
fn stack_dir(dir: &Path, name: &str, compose: &str) -> PathBuf {
    let stacks = dir.join("stacks");
    std::fs::create_dir_all(stacks.join(name)).unwrap();
    let images = stacks.join("images");
    if !images.exists() {
        std::os::unix::fs::symlink(Path::new(ROOT).join("stacks/images"), &images).unwrap();
    }
    std::fs::write(stacks.join(name).join("compose.yaml"), compose).unwrap();
    stacks
}

/// Every file below `dir`, read as bytes.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn observation_waits_for_requests_queued_behind_a_client_timeout() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let out = common::temp_dir("queued");
    let run = common::racy(&[
        "run",
        "tests/matrices/queued.yaml",
        "--output",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    let json = common::results(&out);
    let row = &json["rows"][0];
    let timeouts = common::int(row, "timeouts");
    let acked = common::int(row, "acked");
    // 12 requests in each of 6 repetitions (tests/matrices/queued.yaml)
    let sent = common::int(row, "requests") * common::int(row, "repetitions");
    assert_eq!(sent, 72, "{row}");
    // The client gave up on most requests while they waited in the backlogs...
    assert!(timeouts > 0, "no request outlived the client: {row}");
    assert_eq!(
        acked + timeouts,
        sent,
        "every request was answered or timed out"
    );
    // ...and the app still ran every one of them before the final observation: each
    // request adds one ledger row and one increment (an F() update), so an observation
    // taken while some were queued, or between one's update and its ledger row, would
    // show fewer rows or a negative loss.
    assert_eq!(common::int(row, "ledger_rows"), sent, "{row}");
    assert_eq!(common::int(row, "applied"), sent, "{row}");
    assert_eq!(common::int(row, "lost_updates"), 0, "{row}");
    assert!(
        common::int(row, "distinct_pids") >= 2,
        "both replicas served: {row}"
    );

    // The store stands alone: no -wal beside it, and a copy of results.db by itself
    // holds every cell and record.
    assert!(!out.join("results.db-wal").exists(), "a -wal file was left");
    let copy = common::temp_dir("queued-copy");
    std::fs::copy(out.join("results.db"), copy.join("results.db")).unwrap();
    let report = common::racy(&["report", copy.to_str().unwrap(), "--format", "json"]);
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let back: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(back["rows"], json["rows"], "the copy holds the same rows");
    let records = back["cells"][0]["reps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["records"].as_array().unwrap().len())
        .sum::<usize>();
    assert_eq!(records as i64, sent, "and every request record");

    // Resuming with the run directory's own copy of the matrix keeps that copy whole.
    let own = out.join("matrix.yaml");
    let before = std::fs::read_to_string(&own).unwrap();
    let resumed = common::racy(&[
        "run",
        own.to_str().unwrap(),
        "--resume",
        out.to_str().unwrap(),
    ]);
    let rerr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{rerr}");
    assert!(rerr.contains("1 of 1 cells done, 0 to run"), "{rerr}");
    assert_eq!(std::fs::read_to_string(&own).unwrap(), before);
    std::fs::remove_dir_all(&out).ok();
    std::fs::remove_dir_all(&copy).ok();
}

/// The PostgreSQL lab stack with credentials the database refuses.
fn wrong_password_stack(password: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join("stacks/django-postgres/compose.yaml"))
        .unwrap()
        .replacen(
            "    password: ${db_password:-racy}\n",
            &format!("    password: {password}\n"),
            1,
        )
}

#[tokio::test]
async fn a_refused_password_fails_at_once_and_never_shows() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let dir = common::temp_dir("secret");
    let secret = "Wr0ngPassw0rd4242xyz";
    let compose = wrong_password_stack(secret);
    assert!(compose.contains(secret), "the stack file was rewritten");
    let stacks = stack_dir(&dir, "pg-wrong", &compose);
    let matrix = dir.join("m.yaml");
    std::fs::write(
        &matrix,
        "name: secret\nstacks: [pg-wrong]\naxes:\n  endpoint: [f_expression]\n  delay_ms: [\"0\"]\nrequests: 2\nrepetitions: 1\n",
    )
    .unwrap();
    let out = dir.join("out");
    let run = common::racy(&[
        "--stacks",
        stacks.to_str().unwrap(),
        "run",
        matrix.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--retries",
        "0",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    let json = common::results(&out);
    let error = json["cells"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("refused"),
        "says the credentials were refused: {error}"
    );
    assert!(
        !error.contains("not ready after"),
        "did not wait for a deadline: {error}"
    );
    assert!(error.contains("****"), "the URL shows, redacted: {error}");
    for (what, text) in [("stdout", stdout.as_bytes()), ("stderr", stderr.as_bytes())] {
        assert!(!contains(text, secret), "the password is in {what}");
    }
    let files = all_files(&out);
    assert!(files.len() >= 5, "store, matrix and three exports");
    for (path, bytes) in files {
        assert!(
            !contains(&bytes, secret),
            "the password is in {}",
            path.display()
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A stack whose app dies two seconds after it starts, behind nginx (which then answers
/// 502 for as long as anyone waits).
fn dying_app_stack() -> String {
    r#"
x-racy:
  target: {service: web, port: 80, health: /health}
  database: {service: db, port: 5432, engine: postgres, user: racy, password: "${db_password:-racy}", name: racy}
  request: {account: "1", amount: "${amount:-100}", delay_ms: "${delay_ms:-}"}
  endpoints:
    f_expression: {path: /f_expression/, method: POST}
  reset:
    - DELETE FROM demo_transaction
    - DELETE FROM demo_account
    - INSERT INTO demo_account (id, balance, version) VALUES (1, 0, 0)
  observe:
    balance: SELECT CAST(balance AS BIGINT) FROM demo_account WHERE id = 1
    ledger: SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM demo_transaction WHERE account_id = 1
services:
  db:
    build: {context: ../images/postgres, args: {BASE_IMAGE: "${BASE_IMAGE:-racy-matrix/debian:trixie}"}}
    environment: {DB_PASSWORD: "${db_password:-racy}"}
    ports: ["127.0.0.1::5432"]
  app:
    build: {context: ../images/django, args: {BASE_IMAGE: "${BASE_IMAGE:-racy-matrix/debian:trixie}"}}
    entrypoint: ["sh", "-c", "sleep 2; echo 'cannot start ${workers} workers: no config' >&2; exit 7"]
  web:
    build: {context: ../images/nginx, args: {BASE_IMAGE: "${BASE_IMAGE:-racy-matrix/debian:trixie}"}}
    ports: ["127.0.0.1::80"]
    cap_drop: [ALL]
    cap_add: [CHOWN, SETUID, SETGID, NET_BIND_SERVICE, DAC_OVERRIDE]
"#
    .to_string()
}

#[tokio::test]
async fn a_service_that_dies_at_start_is_named_at_once_and_its_stack_given_up() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let dir = common::temp_dir("dying");
    let stacks = stack_dir(&dir, "dying-app", &dying_app_stack());
    let matrix = dir.join("m.yaml");
    std::fs::write(
        &matrix,
        "name: dying\nstacks: [dying-app]\naxes:\n  workers: [1, 2, 3]\n  endpoint: [f_expression]\n  delay_ms: [\"0\"]\nrequests: 2\nrepetitions: 1\n",
    )
    .unwrap();
    let out = dir.join("out");
    let started = Instant::now();
    let run = common::racy(&[
        "--stacks",
        stacks.to_str().unwrap(),
        "run",
        matrix.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    let json = common::results(&out);
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3, "every cell is recorded");
    let first = cells[0]["error"].as_str().unwrap();
    assert!(
        first.contains("service 'app' exited with code 7"),
        "names the service that died and its exit code: {first}"
    );
    assert!(
        first.contains("cannot start 1 workers: no config"),
        "shows its last log lines: {first}"
    );
    assert!(!first.contains("not ready after"), "{first}");
    assert_eq!(cells[0]["attempts"], 2, "retried once on a fresh stack");
    for later in &cells[1..] {
        let e = later["error"].as_str().unwrap();
        assert!(
            e.starts_with("not run: stack dying-app failed to start twice")
                && e.contains("service 'app' exited with code 7"),
            "{e}"
        );
        assert_eq!(later["attempts"], 0, "not attempted");
    }
    assert!(
        stderr.contains("--resume"),
        "says how to run them later: {stderr}"
    );
    // Two starts that each fail about two seconds in, not two readiness deadlines.
    assert!(took < Duration::from_secs(120), "took {took:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn an_app_killed_mid_run_fails_its_cell_with_the_reason_and_is_retried() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let out = common::temp_dir("appkill");
    let mut child = common::spawn(&[
        "run",
        "tests/matrices/slow.yaml",
        "--output",
        out.to_str().unwrap(),
    ]);
    let run = common::wait_for_containers(child.id(), Duration::from_secs(300)).await;
    common::first_cell(&out).await;
    let apps = common::containers(&[
        format!("racy-matrix.run={run}"),
        "racy-matrix.service=app".to_string(),
    ])
    .await;
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    docker
        .kill_container(
            apps[0].id.as_deref().unwrap(),
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .unwrap();
    let status = common::wait_exit(&mut child, Duration::from_secs(300));
    let err = common::stderr_of(&mut child);
    assert!(status.success(), "the run finishes: {err}");
    assert!(
        err.contains(
            "retrying on a fresh stack: stack django-mysql: service 'app' exited with code 137"
        ),
        "the cell failed naming the app and its exit code: {err}"
    );
    let json = common::results(&out);
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    assert!(cells.iter().all(|c| c["metrics"].is_object()));
    assert!(cells.iter().any(|c| c["attempts"] == 2));
    // no cell was recorded with the proxy's 502s in place of the app's answers
    let rows = json["rows"].as_array().unwrap();
    assert!(
        rows.iter().all(|r| common::int(r, "worker_timeouts") == 0),
        "{rows:?}"
    );
    std::fs::remove_dir_all(&out).ok();
}

#[tokio::test]
async fn keep_up_stacks_outlive_down_and_go_with_clean() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let out = common::temp_dir("keepup");
    let run = common::racy(&[
        "run",
        "tests/matrices/queued.yaml",
        "--output",
        out.to_str().unwrap(),
        "--keep-up",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let run_id = common::results(&out)["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let label = format!("racy-matrix.run={run_id}");
    let (kept, _) = common::labelled(&label).await;
    assert!(kept > 0, "the stack is up after the run");
    // The process that made it is gone; neither `down` nor another command's reaping of
    // leftovers takes it.
    let down = common::racy(&["down"]);
    assert!(down.status.success());
    assert_eq!(common::labelled(&label).await.0, kept, "down left it");
    let clean = common::racy(&["clean"]);
    assert!(clean.status.success());
    assert_eq!(common::labelled(&label).await, (0, 0), "clean removed it");
    assert_eq!(common::volumes(&label).await, 0);
    std::fs::remove_dir_all(&out).ok();
}

#[tokio::test]
async fn down_and_clean_find_runs_that_left_only_volumes() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    for (run, command) in [
        ("up-volume-only-test", "down"),
        ("volume-only-test", "clean"),
    ] {
        let label = format!("racy-matrix.run={run}");
        docker
            .create_volume(bollard::models::VolumeCreateRequest {
                name: Some(format!("racy-{run}-{}", std::process::id())),
                labels: Some(std::collections::HashMap::from([
                    ("racy-matrix.run".to_string(), run.to_string()),
                    ("racy-matrix.host".to_string(), "elsewhere".to_string()),
                ])),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(common::volumes(&label).await, 1);
        let done = common::racy(&[command]);
        assert!(done.status.success());
        assert_eq!(common::volumes(&label).await, 0, "{command} removed it");
    }
}

#[tokio::test]
async fn up_interrupted_while_starting_leaves_nothing() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let mut child = common::spawn(&["up", "django-postgres"]);
    let run = common::wait_for_containers(child.id(), Duration::from_secs(300)).await;
    common::interrupt(&child);
    let status = common::wait_exit(&mut child, Duration::from_secs(30));
    let err = common::stderr_of(&mut child);
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let label = format!("racy-matrix.run={run}");
    assert_eq!(common::labelled(&label).await, (0, 0), "{err}");
    assert_eq!(common::volumes(&label).await, 0);
}
