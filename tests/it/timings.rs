//! `plan --timings` and `--shards`, end to end without an engine: a run directory whose
//! cells carry measured durations is written through the real store, and `plan` reads it
//! back (from the store, and from its results.json).

use std::path::{Path, PathBuf};

use crate::common::{racy, temp_dir};
use racy_matrix::harness::Cell;
use racy_matrix::harness::CellMetrics;
use racy_matrix::harness::RunDir;
use racy_matrix::harness::Setup;
use racy_matrix::harness::StackCatalog;
use racy_matrix::harness::{CellResult, CellTiming};

fn quick_cells() -> Vec<Cell> {
    let stacks = racy_matrix::harness::discover_stacks(Path::new("stacks")).unwrap();
    let catalog = StackCatalog { stacks };
    let m = racy_matrix::harness::load_matrix(Path::new("matrices/quick.yaml"), &catalog).unwrap();
    racy_matrix::harness::expand_matrix(&m, &catalog)
}

/// A run directory of the quick matrix in which its first `n` cells were measured, each
/// repetition taking 1.5 s, the first after a 9 s start.
async fn measured_run(n: usize) -> PathBuf {
    let dir = temp_dir("timings").join("run");
    let mut run = RunDir::create(&dir, "quick").await.unwrap();
    for (i, c) in quick_cells().into_iter().take(n).enumerate() {
        let (setup, setup_seconds) = if i == 0 {
            (Setup::Start, 9.0)
        } else {
            (Setup::None, 0.0)
        };
        run.push(
            CellResult::measured(c, 4, 8, CellMetrics::default(), vec![]).with_timing(CellTiming {
                seconds: setup_seconds + 4.0 * 1.5,
                setup,
                setup_seconds,
            }),
        )
        .await
        .unwrap();
    }
    run.close().await.unwrap();
    dir
}

fn plan(args: &[&str]) -> String {
    let mut all = vec!["plan", "matrices/quick.yaml"];
    all.extend(args);
    let out = racy(&all);
    assert!(
        out.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn plan_uses_measured_durations() {
    let dir = measured_run(8).await;
    let d = dir.to_str().unwrap();
    let text = plan(&["--timings", d]);
    assert!(text.contains("timings: 8 of 16 cells measured"), "{text}");
    // 4 repetitions of 1.5 s, and the 9 s start fitted from the one start measured
    assert!(
        text.contains(" 15.0* "),
        "the first cell: start + measured: {text}"
    );
    assert!(text.contains(" 6.0* "), "{text}");
    assert!(
        text.contains("model fitted: start 9.0 s (1 starts)"),
        "{text}"
    );
    // the results.json rendered from the store says the same
    let json = dir.join("results.json");
    let rendered = racy(&["report", d, "--format", "json"]);
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    std::fs::write(&json, &rendered.stdout).unwrap();
    assert_eq!(
        plan(&["--timings", json.to_str().unwrap()]),
        text.replace(d, json.to_str().unwrap())
    );

    // the shards: each shard's estimate, all of them, and the slowest over the mean
    let one = plan(&["--shard", "1/2", "--timings", d]);
    assert!(one.contains("shard 1/2: estimated"), "{one}");
    let all = plan(&["--shards", "2", "--timings", d]);
    assert!(all.contains("max/mean"), "{all}");
    assert!(all.contains("split by count"), "{all}");

    // no such directory: bad input, nothing planned
    let out = racy(&[
        "plan",
        "matrices/quick.yaml",
        "--timings",
        "/nonexistent/run",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--timings /nonexistent/run"), "{err}");
    std::fs::remove_dir_all(dir.parent().unwrap()).ok();
}
