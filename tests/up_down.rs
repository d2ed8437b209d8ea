//! `up` brings a stack up that answers real HTTP and SQL; `down` removes all of it.

mod common;

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
    let d = down();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        inflight.contains("\"inflight\": 0") || inflight.contains("\"inflight\":0"),
        "{inflight}"
    );
    assert_eq!(
        (containers, networks),
        (3, 1),
        "db, app, web on one network"
    );
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    let left = common::labelled(&format!("racy-matrix.run={run_id}")).await;
    assert_eq!(left, (0, 0));
}
