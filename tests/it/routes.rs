//! The routes a burst can take to the target, on the real engine: straight to the
//! container (the default here, a local Linux engine), through the published port, and
//! from a racer container beside the target. Each run says which route it took, in its
//! progress and in results.json, and the verdicts do not depend on it.

use crate::common;

use crate::common::int;

fn run_by(route: &str) -> (String, serde_json::Value) {
    let out = common::temp_dir(&format!("routes-{route}"));
    let mut args = vec!["run", "tests/matrices/routes.yaml", "--output"];
    args.push(out.to_str().unwrap());
    if route != "default" {
        args.extend(["--route", route]);
    }
    let run = common::racy(&args);
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "route {route}: {stderr}");
    (stderr, common::results(&out))
}

#[tokio::test]
async fn every_route_measures_the_same_race() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let mut runs = vec![];
    for (route, taken, said) in [
        ("default", "direct", "straight to the container"),
        (
            "published",
            "published",
            "through the port published on the host",
        ),
        ("racer", "racer", "fired by a racer container"),
    ] {
        let (stderr, json) = run_by(route);
        runs.push(json["run_id"].as_str().unwrap().to_string());
        assert_eq!(json["routes"], serde_json::json!([taken]), "{route}");
        assert!(stderr.contains(said), "route {route} is not said: {stderr}");
        let rows = json["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{route}");
        for cell in json["cells"].as_array().unwrap() {
            assert_eq!(cell["route"], taken, "{route}");
        }
        let row = |ep: &str| rows.iter().find(|r| r["endpoint"] == ep).unwrap();
        let lossy = row("non_atomic_long_delay");
        let safe = row("row_locking_atomic_long_delay");
        for r in [lossy, safe] {
            assert_eq!(int(r, "acked"), 24, "route {route}: {r}");
            assert_eq!(int(r, "ack_gap"), 0, "route {route}: {r}");
        }
        // 4 workers and a 300 ms window lose about 3 of 4 increments, whatever the route
        assert!(int(lossy, "lost_updates") >= 6, "route {route}: {lossy}");
        assert_eq!(int(safe, "lost_updates"), 0, "route {route}: {safe}");
        assert_eq!(
            common::every_loss_explained(&json),
            int(lossy, "lost_updates"),
            "route {route}"
        );
    }
    // the racers went with their stacks
    for run in runs {
        let left = common::labelled(&format!("racy-matrix.run={run}")).await;
        assert_eq!(left, (0, 0), "run {run} left containers or networks behind");
    }
}
