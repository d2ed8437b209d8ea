//! One run across two engines: this machine's own and a second Docker daemon that the
//! test starts in a network namespace of its own, reached over tcp through a veth pair.
//! From this host that second engine is as remote as another machine: its stack networks
//! are inside its namespace and its published ports on the namespace's loopback. So its
//! stacks are measured through a racer, and this host's probes, SQL and quiesce requests
//! go through the racer's tunnels. Each cell records the engine that measured it, and the
//! verdicts are those of one engine alone.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::int;

/// A Docker daemon in a network namespace of its own; removed (daemon, namespace, veth
/// pair, data) when dropped.
struct SecondEngine {
    daemon: Child,
    rules: Vec<(&'static str, &'static str, Vec<String>)>,
    ns: String,
    veth: String,
    dir: PathBuf,
    url: String,
}

fn sh(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rules that route and masquerade the namespace's traffic: (table, chain, rule).
fn nat_rules(subnet: &str, veth: &str) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let v = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        ("nat", "POSTROUTING", v(&["-s", subnet, "-j", "MASQUERADE"])),
        ("filter", "FORWARD", v(&["-i", veth, "-j", "ACCEPT"])),
        ("filter", "FORWARD", v(&["-o", veth, "-j", "ACCEPT"])),
    ]
}

/// `iptables` arguments that add (`-I`) or delete (`-D`) a rule of [`nat_rules`].
fn iptables<'a>(op: &'a str, rule: &'a (&str, &str, Vec<String>)) -> Vec<&'a str> {
    let mut args = vec!["-t", rule.0, op, rule.1];
    args.extend(rule.2.iter().map(String::as_str));
    args
}

impl SecondEngine {
    /// Starts dockerd in a new namespace (`ip netns`), with the host engine's storage
    /// driver, its own data and exec roots, listening on tcp on the namespace's end of
    /// the veth pair; returns once its API answers.
    async fn start() -> SecondEngine {
        let id = std::process::id() % 100_000;
        let net = 1 + id % 250;
        let (ns, veth) = (format!("racy-e2-{id}"), format!("rme{id}"));
        let (host_ip, ns_ip) = (format!("10.199.{net}.1"), format!("10.199.{net}.2"));
        let dir = PathBuf::from(format!("/tmp/rme-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        // what a run of this test killed half-way would have left under these names
        let _ = Command::new("ip").args(["link", "del", &veth]).output();
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        sh("ip", &["netns", "add", &ns]);
        sh(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth-e2",
            ],
        );
        sh("ip", &["link", "set", "eth-e2", "netns", &ns]);
        sh(
            "ip",
            &["addr", "add", &format!("{host_ip}/30"), "dev", &veth],
        );
        sh("ip", &["link", "set", &veth, "up"]);
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns];
            all.extend_from_slice(args);
            sh("ip", &all);
        };
        in_ns(&["ip", "addr", "add", &format!("{ns_ip}/30"), "dev", "eth-e2"]);
        in_ns(&["ip", "link", "set", "eth-e2", "up"]);
        in_ns(&["ip", "link", "set", "lo", "up"]);
        // Its own way out, as another host has: routed and masqueraded through this host,
        // so names its containers look up (the stack's services, Debian's mirror) are
        // answered as on this host rather than after resolver timeouts.
        in_ns(&["ip", "route", "add", "default", "via", &host_ip]);
        let rules = nat_rules(&format!("10.199.{net}.0/30"), &veth);
        for rule in &rules {
            sh("iptables", &iptables("-I", rule));
        }
        let driver = Command::new("docker")
            .args(["info", "--format", "{{.Driver}}"])
            .output()
            .unwrap();
        let driver = String::from_utf8_lossy(&driver.stdout).trim().to_string();
        let url = format!("tcp://{ns_ip}:2375");
        let d = |p: &str| dir.join(p).to_string_lossy().to_string();
        // nsenter keeps this host's mounts (the cgroup tree dockerd needs), where `ip netns
        // exec` would mount a fresh /sys
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let daemon = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{ns}"))
            .args(["dockerd", "--config-file", &d("daemon.json")])
            .args(["--data-root", &d("data"), "--exec-root", &d("x")])
            .args([
                "--pidfile",
                &d("pid"),
                "-H",
                &format!("unix://{}", d("sock")),
            ])
            .args(["-H", &format!("tcp://{ns_ip}:2375")])
            .arg(format!("--storage-driver={driver}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        let mut engine = SecondEngine {
            daemon,
            rules,
            ns,
            veth,
            dir,
            url,
        };
        // its API answers once it has started its own containerd and networks
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = engine.daemon.try_wait() {
                panic!(
                    "the second dockerd exited ({status}):\n{}",
                    engine.log_tail()
                );
            }
            let docker =
                bollard::Docker::connect_with_http(&engine.url, 5, bollard::API_DEFAULT_VERSION)
                    .unwrap();
            if docker.ping().await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the second dockerd did not answer on {} within 120 s:\n{}",
                engine.url,
                engine.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        engine
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn docker(&self) -> bollard::Docker {
        bollard::Docker::connect_with_http(&self.url, 30, bollard::API_DEFAULT_VERSION).unwrap()
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        // SIGTERM: dockerd stops its containers and unmounts its layers before it exits
        let _ = Command::new("kill")
            .arg(self.daemon.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while matches!(self.daemon.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        for rule in &self.rules {
            let _ = Command::new("iptables").args(iptables("-D", rule)).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_matrix_runs_across_this_engine_and_a_remote_one() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let second = SecondEngine::start().await;
    let local = "unix:///var/run/docker.sock";
    let out = common::temp_dir("engines");
    let run = common::racy(&[
        "run",
        "tests/matrices/routes.yaml",
        "--output",
        out.to_str().unwrap(),
        "--engine",
        local,
        "--engine",
        &second.url,
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    // shown with --nocapture: the run's progress and table
    println!("{stderr}\n{}", String::from_utf8_lossy(&run.stdout));
    assert!(
        run.status.success(),
        "{stderr}\n--- second dockerd ---\n{}",
        second.log_tail()
    );
    assert!(
        stderr.contains("2 stack instances over 2 engines"),
        "{stderr}"
    );
    let json = common::results(&out);
    assert_eq!(
        json["engines"],
        serde_json::json!([second.url.as_str(), local]),
        "every engine measured a cell"
    );
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    for cell in cells {
        // the local engine's containers answer from this host; the other one's do not
        let route = if cell["engine"] == local {
            "direct"
        } else {
            "racer"
        };
        assert_eq!(cell["route"], route, "{}", cell["engine"]);
    }
    let rows = json["rows"].as_array().unwrap();
    let row = |ep: &str| rows.iter().find(|r| r["endpoint"] == ep).unwrap();
    let (lossy, safe) = (
        row("non_atomic_long_delay"),
        row("row_locking_atomic_long_delay"),
    );
    for r in [lossy, safe] {
        // every request acknowledged and counted by the database reached through its engine
        assert_eq!(int(r, "acked"), 24, "{r}");
        assert_eq!(int(r, "ack_gap"), 0, "{r}");
    }
    assert!(int(lossy, "lost_updates") >= 6, "{lossy}");
    assert_eq!(int(safe, "lost_updates"), 0, "{safe}");
    assert_eq!(
        common::every_loss_explained(&json),
        int(lossy, "lost_updates")
    );
    // nothing of the run is left on either engine
    let run_id = json["run_id"].as_str().unwrap();
    assert_eq!(
        common::labelled(&format!("racy-matrix.run={run_id}")).await,
        (0, 0)
    );
    assert_eq!(
        common::labelled_on(&second.docker(), &format!("racy-matrix.run={run_id}")).await,
        (0, 0)
    );
}
