//! An app that is not the lab, measured the way its developers would: the example in
//! examples/flask-counter (Flask + SQLAlchemy on PostgreSQL, plain-text answers, no
//! health path) with its own ordinary compose file (env_file, expose, restart, a bind
//! mount, string forms), reached through stacks/flask-counter/racy.yaml.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The example's database password (its .env): it must never be printed.
const SECRET: &str = "counter-dev-secret";

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn its_racy_endpoint_loses_updates_and_its_fix_does_not() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    upstream_base().await;
    let (_, json) = common::run_ok("matrices/flask-counter.yaml", "own-app");
    let rows = json["rows"].as_array().expect("rows");
    let cell = |endpoint: &str, workers: &str| {
        rows.iter()
            .find(|r| r["endpoint"] == endpoint && r["workers"] == workers)
            .unwrap_or_else(|| panic!("no cell {endpoint} x {workers}"))
    };
    let racy = cell("add", "4");
    assert!(common::int(racy, "lost_updates") >= 8, "{racy}");
    assert!(racy["lost_rate_lo"].as_f64().unwrap() > 0.0, "{racy}");
    for (endpoint, workers) in [("add_safe", "4"), ("add_safe", "1"), ("add", "1")] {
        let r = cell(endpoint, workers);
        assert_eq!(common::int(r, "ledger_rows"), 32, "{r}");
        assert_eq!(common::int(r, "lost_updates"), 0, "{r}");
    }
    // plain-text answers: what needs a pid or the server's times is blank, not 0
    for r in rows {
        assert!(r["distinct_pids"].is_null(), "{r}");
        assert!(r["start_skew_ms"].is_null(), "{r}");
        assert_eq!(common::int(r, "acked"), 32, "{r}");
    }
    assert!(!json.to_string().contains(SECRET));
}

#[tokio::test]
async fn check_tries_each_endpoint_and_says_what_fails() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    upstream_base().await;
    let good = common::racy(&["check", "flask-counter"]);
    let out = text(&good);
    assert!(good.status.success(), "{out}");
    for endpoint in ["add", "add_safe"] {
        let line = format!("ok    {endpoint}: POST /counters/1/{endpoint} answered 200: ok 100");
        assert!(out.contains(&line), "{out}");
    }
    assert_eq!(out.matches("one request, counted").count(), 2, "{out}");
    assert!(out.contains("not JSON"), "{out}");
    assert!(!out.contains(SECRET), "{out}");

    // the same stack with a ledger query that misses the endpoint's rows and a path that
    // does not exist: both said, with the app's own answer and its log lines
    let dir = common::temp_dir("check-bad");
    let stack = dir.join("broken");
    std::fs::create_dir_all(&stack).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let racy_yaml = std::fs::read_to_string(root.join("stacks/flask-counter/racy.yaml"))
        .unwrap()
        .replace(
            "compose: ../../examples",
            &format!("compose: {}/examples", root.display()),
        )
        .replace(
            "FROM hits WHERE counter_id = 1",
            "FROM hits WHERE counter_id = 7",
        )
        .replace("/counters/1/add_safe", "/counters/2/add_safe");
    std::fs::write(stack.join("racy.yaml"), racy_yaml).unwrap();
    let bad = common::racy(&["--stacks", dir.to_str().unwrap(), "check", "broken"]);
    let out = text(&bad);
    assert_eq!(bad.status.code(), Some(3), "{out}");
    assert!(
        out.contains("FAIL  add: POST /counters/1/add answered 200: ok 100; but the ledger query saw no new row"),
        "{out}"
    );
    assert!(
        out.contains("FAIL  add_safe: POST /counters/2/add_safe answered 404: counter not found"),
        "{out}"
    );
    // the app's log lines (its access log line may come after the answer: not asserted)
    assert!(
        out.contains("        | ") && out.contains("Starting gunicorn"),
        "{out}"
    );
    assert!(
        out.contains("2 of the checks failed (add, add_safe)"),
        "{out}"
    );
    assert!(!out.contains(SECRET), "{out}");
    let (containers, networks) = common::labelled("racy-matrix.stack=broken").await;
    assert_eq!((containers, networks), (0, 0), "check removes its stack");
}

#[tokio::test]
async fn the_compose_files_keys_reach_the_containers() {
    if !common::engine_available().await {
        return;
    }
    // `down` removes every `up` stack, not only this test's
    let _engine = common::exclusive().await;
    upstream_base().await;
    let up = common::racy(&["up", "flask-counter", "--set", "workers=2"]);
    let out = text(&up);
    let inspected = if up.status.success() {
        Some(inspect_web().await)
    } else {
        None
    };
    let down = common::racy(&["down"]);
    assert!(up.status.success(), "{out}");
    assert!(down.status.success(), "{}", text(&down));
    assert!(!out.contains(SECRET), "{out}");
    // said once each, with where
    assert_eq!(
        out.matches("services.db.restart is ignored").count(),
        1,
        "{out}"
    );
    assert!(
        out.contains("docker-compose.yml:1:1: version is ignored"),
        "{out}"
    );
    let web = inspected.unwrap();
    let config = web.config.unwrap();
    let labels = config.labels.unwrap();
    assert_eq!(
        labels["com.example.project"], "flask-counter",
        "its own label"
    );
    assert!(
        labels.contains_key("racy-matrix.run"),
        "beside racy-matrix's"
    );
    assert_eq!(config.working_dir.as_deref(), Some("/srv/app"));
    let env = config.env.unwrap();
    assert!(env.contains(&"WEB_CONCURRENCY=2".to_string()), "{env:?}");
    assert!(
        env.contains(&"POSTGRES_USER=counter".to_string()),
        "env_file: {env:?}"
    );
    let host = web.host_config.unwrap();
    assert_eq!(host.init, Some(true));
    let mounts = web.mounts.unwrap();
    let bind = mounts
        .iter()
        .find(|m| m.destination.as_deref() == Some("/srv/app"))
        .expect("the source bind mount");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flask-counter/app");
    assert_eq!(
        bind.source.as_deref().map(Path::new),
        Some(source.canonicalize().unwrap().as_path())
    );
    assert_eq!(bind.rw, Some(false), "mounted read-only as the file says");
}

async fn inspect_web() -> bollard::models::ContainerInspectResponse {
    let web = common::containers(&[
        "racy-matrix.stack=flask-counter".to_string(),
        "racy-matrix.service=web".to_string(),
    ])
    .await;
    let id = web[0].id.clone().unwrap();
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    docker
        .inspect_container(
            &id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap()
}

/// The example's compose file is an ordinary one: `docker-compose up` runs it as it is.
/// (No registry here: the Debian base racy-matrix made stands in for debian:trixie-slim.)
#[tokio::test]
async fn docker_compose_runs_the_same_file_unchanged() {
    if !common::engine_available().await {
        return;
    }
    upstream_base().await;
    let Ok(version) = Command::new("docker-compose").arg("version").output() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI installs docker-compose (.ci/run)"
        );
        eprintln!("SKIPPED: no docker-compose");
        return;
    };
    assert!(version.status.success());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flask-counter");
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .args(["-p", "racy-matrix-plain"])
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let up = compose(&["up", "-d", "--build"]);
    let answered = if up.status.success() {
        answers(&compose(&["port", "web", "8000"]))
    } else {
        Err(text(&up))
    };
    let down = compose(&["down", "-v"]);
    assert!(down.status.success(), "{}", text(&down));
    let body = answered.unwrap();
    assert!(
        body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"),
        "{body}"
    );
}

/// The example's Dockerfiles build `FROM debian:trixie-slim`, as most do. With no registry
/// to pull it from, the Debian base racy-matrix made stands in under that name (as a user
/// without a registry would tag it); every test that builds the example's images makes sure
/// of it before it starts, since the tests of this file run side by side.
async fn upstream_base() {
    let engine = racy_matrix::harness::Engine::connect().await.unwrap();
    let base = racy_matrix::harness::ensure_base(&engine, &mut |_| {})
        .await
        .unwrap();
    if base == racy_matrix::harness::UPSTREAM_BASE {
        return;
    }
    let docker = |args: &[&str]| Command::new("docker").args(args).output().unwrap();
    if !docker(&["image", "inspect", racy_matrix::harness::UPSTREAM_BASE])
        .status
        .success()
    {
        let tagged = docker(&["tag", &base, racy_matrix::harness::UPSTREAM_BASE]);
        assert!(tagged.status.success(), "{}", text(&tagged));
    }
}

/// GET / on the published port until the app answers (it waits for its database first).
fn answers(port: &std::process::Output) -> Result<String, String> {
    use std::io::{Read, Write};
    let addr = String::from_utf8_lossy(&port.stdout)
        .trim()
        .replace("0.0.0.0", "127.0.0.1");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let attempt = std::net::TcpStream::connect(&addr).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(s, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut buf = String::new();
            s.read_to_string(&mut buf)?;
            Ok(buf)
        });
        match attempt {
            Ok(body) if !body.is_empty() => return Ok(body),
            _ if Instant::now() > deadline => {
                return Err(format!("{addr} never answered: {attempt:?}"));
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}
