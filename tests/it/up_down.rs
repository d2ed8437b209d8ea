//! `up` brings a stack up that answers real HTTP and SQL; `down` removes all of it.

use crate::common;

use std::io::{Read, Write};

fn http_get(url_line: &str, path: &str) -> String {
    // url_line: "  app:      http://127.0.0.1:PORT/"
    let addr = url_line
        .split("http://")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('/')
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf
}

#[tokio::test]
async fn up_answers_and_down_removes_everything() {
    if !common::engine_available().await {
        return;
    }
    // `down` removes every `up` stack, not only this test's
    let _engine = common::exclusive().await;
    let up = common::racy(&["up", "django-mysql", "--set", "workers=2"]);
    let stdout = String::from_utf8_lossy(&up.stdout).to_string();
    let down = || common::racy(&["down"]);
    if !up.status.success() {
        down();
        panic!(
            "up failed: {}\n{stdout}",
            String::from_utf8_lossy(&up.stderr)
        );
    }
    let run_id = stdout
        .split("(run ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .to_string();
    let app = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("app:"))
        .unwrap();
    let health = http_get(app, "/health");
    let inflight = http_get(app, "/inflight");
    let (containers, networks) = common::labelled(&format!("racy-matrix.run={run_id}")).await;
    let volumes = common::volumes(&format!("racy-matrix.run={run_id}")).await;
    let locked = locked_down(&run_id, &stdout).await;
    let d = down();
    if let Err(e) = locked {
        panic!("{e}");
    }
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        inflight.contains("\"inflight\": 0") || inflight.contains("\"inflight\":0"),
        "{inflight}"
    );
    assert_eq!(
        (containers, networks, volumes),
        (6, 1, 1),
        "db, migrate, redis, app, worker, web on one network, with the app's shared volume"
    );
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    let left = common::labelled(&format!("racy-matrix.run={run_id}")).await;
    assert_eq!(left, (0, 0));
    assert_eq!(
        common::volumes(&format!("racy-matrix.run={run_id}")).await,
        0
    );
}

/// Every container of the run is locked down: no privileges, all capabilities dropped
/// (nginx adds back the few it needs), a memory limit, ports on 127.0.0.1 only, the
/// database and app as non-root users, and a random database password never printed.
async fn locked_down(run_id: &str, printed: &str) -> Result<(), String> {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let list = common::containers(&[format!("racy-matrix.run={run_id}")]).await;
    for c in list {
        let info = docker
            .inspect_container(
                c.id.as_deref().unwrap(),
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .unwrap();
        let labels = c.labels.unwrap_or_default();
        let svc = labels["racy-matrix.service"].clone();
        let host = info.host_config.unwrap();
        let config = info.config.unwrap();
        if host.privileged == Some(true) {
            return Err(format!("{svc} is privileged"));
        }
        if host.cap_drop != Some(vec!["ALL".to_string()]) {
            return Err(format!("{svc} keeps its capabilities: {:?}", host.cap_drop));
        }
        if host.memory.unwrap_or(0) <= 0 {
            return Err(format!("{svc} has no memory limit"));
        }
        for (port, bindings) in host.port_bindings.unwrap_or_default() {
            for b in bindings.unwrap_or_default() {
                if b.host_ip.as_deref() != Some("127.0.0.1") {
                    return Err(format!("{svc} publishes {port} on {:?}", b.host_ip));
                }
            }
        }
        let user = config.user.unwrap_or_default();
        if svc != "web" && (user.is_empty() || user == "root" || user.starts_with("0")) {
            return Err(format!("{svc} runs as root ('{user}')"));
        }
        for var in config.env.unwrap_or_default() {
            if let Some(pw) = var.strip_prefix("DB_PASSWORD=") {
                if pw == "racy" || pw.len() < 16 {
                    return Err(format!("{svc} has a weak database password"));
                }
                if printed.contains(pw) {
                    return Err("the database password was printed".into());
                }
            }
        }
    }
    Ok(())
}
