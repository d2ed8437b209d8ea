//! `racy-matrix compare`, end to end without an engine: run directories with known
//! counts are written through the real store (RunDir), and the binary compares them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::{racy, temp_dir};
use racy_matrix::harness::Cell;
use racy_matrix::harness::CellResult;
use racy_matrix::harness::RunDir;
use racy_matrix::harness::{Check, Observation, Repetition, compute};

/// What each request adds in these runs; not the default, so that `compare` must read it
/// from the run directory's matrix.yaml to recount the counters' losses.
const AMOUNT: i64 = 50;
/// Requests per burst.
const REQUESTS: u64 = 8;

/// One cell: the stack's `endpoint` with `workers`, whose bursts had `anomalies[i]` of 8.
struct Spec {
    endpoint: &'static str,
    workers: u32,
    anomalies: &'static [i64],
}

fn cell(endpoint: &str, workers: u32) -> Cell {
    Cell {
        stack: "django-mysql".into(),
        axes: BTreeMap::from([
            ("endpoint".to_string(), endpoint.to_string()),
            ("workers".to_string(), workers.to_string()),
        ]),
    }
}

/// The state before and after a burst of 8 requests that made `k` anomalies: lost
/// updates for a counter, duplicate rows for a unique check.
fn burst(check: Check, k: i64) -> Repetition {
    let n = REQUESTS as i64;
    let (before, after) = match check {
        Check::Counter => (
            Observation {
                balance: 1000,
                ledger_rows: 3,
                ledger_total: 3 * AMOUNT,
                extra: BTreeMap::new(),
            },
            Observation {
                balance: 1000 + (n - k) * AMOUNT,
                ledger_rows: 3 + n,
                ledger_total: (3 + n) * AMOUNT,
                extra: BTreeMap::new(),
            },
        ),
        _ => {
            let rows = |total: i64, distinct: i64| Observation {
                extra: BTreeMap::from([
                    ("total".to_string(), total),
                    ("distinct_values".to_string(), distinct),
                ]),
                ..Observation::default()
            };
            (rows(0, 0), rows(n, n - k))
        }
    };
    Repetition {
        before,
        after,
        burst_ms: 12.0,
        records: vec![],
    }
}

/// A measured cell, its metrics computed by the real `metrics::compute`.
fn measured(s: &Spec) -> CellResult {
    let check = if s.endpoint == "get_or_create" {
        Check::Unique
    } else {
        Check::Counter
    };
    let reps: Vec<Repetition> = s
        .anomalies
        .iter()
        .map(|&k| burst(check.clone(), k))
        .collect();
    CellResult::measured(
        cell(s.endpoint, s.workers),
        reps.len() as u32,
        REQUESTS as u32,
        compute(&reps, AMOUNT, 0, &check, None),
        reps,
    )
}

fn failed(endpoint: &str, workers: u32) -> CellResult {
    CellResult::failed(
        cell(endpoint, workers),
        4,
        REQUESTS as u32,
        "service app exited with code 1",
    )
    .with_attempts(2)
}

/// A run directory holding `cells`, written through the store as a run writes it, with
/// its matrix.yaml.
async fn store(dir: &Path, cells: Vec<CellResult>) {
    let mut run = RunDir::create(dir, "nightly").await.unwrap();
    let matrix = format!("name: nightly\nstacks: [django-mysql]\namount: {AMOUNT}\n");
    run.save_matrix(&matrix).await.unwrap();
    std::fs::write(dir.join("matrix.yaml"), matrix).unwrap();
    for c in cells {
        run.push(c).await.unwrap();
    }
    run.close().await.unwrap();
}

const NAD: &str = "non_atomic_no_delay";

/// BASE, NEW (one cell worse, one better, one unchanged, one whose bursts lost together
/// and is no significant change, one failed, one on each side only), and IMPROVED (only
/// the better change).
async fn stores() -> (PathBuf, PathBuf, PathBuf) {
    let root = temp_dir("compare");
    let spec = |endpoint, workers, anomalies| Spec {
        endpoint,
        workers,
        anomalies,
    };
    let common = |w1: &'static [i64], w2: &'static [i64], w4: &'static [i64]| {
        vec![
            measured(&spec(NAD, 1, w1)),
            measured(&spec(NAD, 2, w2)),
            measured(&spec(NAD, 4, w4)),
        ]
    };
    let (base, new, improved) = (root.join("base"), root.join("new"), root.join("improved"));
    let mut b = common(&[0, 0, 0, 0], &[6, 6, 6, 6], &[3, 3, 3, 3]);
    b.extend([
        measured(&spec("get_or_create", 1, &[8, 8, 0, 0])),
        measured(&spec(NAD, 3, &[1, 0, 2, 1])),
        measured(&spec(NAD, 8, &[5, 4, 6, 5])),
    ]);
    let mut n = common(&[6, 6, 6, 6], &[0, 0, 0, 0], &[4, 3, 3, 3]);
    n.extend([
        measured(&spec("get_or_create", 1, &[0, 0, 0, 0])),
        failed(NAD, 3),
        measured(&spec(NAD, 16, &[7, 6, 8, 7])),
    ]);
    store(&base, b).await;
    store(&new, n).await;
    store(
        &improved,
        common(&[0, 0, 0, 0], &[0, 0, 0, 0], &[3, 3, 3, 3]),
    )
    .await;
    (base, new, improved)
}

/// Runs `compare` and returns its exit code and stdout.
fn compare(base: &Path, new: &Path, fail_on: &str) -> (i32, String) {
    let out = racy(&[
        "compare",
        base.to_str().unwrap(),
        new.to_str().unwrap(),
        "--fail-on",
        fail_on,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    println!(
        "compare {} {} --fail-on {fail_on}:\n{stdout}",
        base.display(),
        new.display()
    );
    (out.status.code().unwrap(), stdout)
}

#[tokio::test]
async fn compare_reports_the_changes_and_exits_as_fail_on_says() {
    let (base, new, improved) = stores().await;

    let (code, out) = compare(&base, &new, "worse");
    assert_eq!(code, 1, "a cell got worse: {out}");
    assert!(
        out.contains(
            "compare: 5 cells matched (4 tested), 1 worse, 1 better (α = 0.05 over all cells, Holm)"
        ),
        "{out}"
    );
    assert!(out.contains("2 cell(s) changed significantly"), "{out}");
    let row = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no row of {needle}: {out}"))
            .to_string()
    };
    let worse = row("workers=1 ");
    assert!(
        worse.contains("worse") && worse.contains("counter"),
        "{worse}"
    );
    assert!(worse.contains("0.000 [0.000, 0.107] 0/32"), "{worse}");
    assert!(worse.contains("0.750 [0.579, 0.867] 24/32"), "{worse}");
    assert!(worse.contains("+0.750 [+0.513, +0.987]"), "{worse}");
    assert!(worse.contains("5.8e-10"), "{worse}");
    assert!(row("workers=2 ").contains("better"));
    // unchanged, and bursts that lost together: tested, not significant, not in the table
    assert!(!out.contains("workers=4 "), "{out}");
    assert!(!out.contains("get_or_create"), "{out}");
    assert!(
        out.contains("only in BASE: 1 cell(s)\n  django-mysql non_atomic_no_delay workers=8\n"),
        "{out}"
    );
    assert!(
        out.contains("only in NEW: 1 cell(s)\n  django-mysql non_atomic_no_delay workers=16\n")
    );
    assert!(out.contains(
        "not compared, the cell failed: 1 cell(s)\n  django-mysql non_atomic_no_delay workers=3 (in NEW)\n"
    ));

    let (code, same) = compare(&base, &new, "any");
    assert_eq!((code, &same), (1, &out));
    let (code, same) = compare(&base, &new, "none");
    assert_eq!((code, &same), (0, &out), "none only reports");

    // only a better cell: fails `any`, not `worse`
    let (code, out) = compare(&base, &improved, "worse");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 cells matched, 0 worse, 1 better"), "{out}");
    assert!(out.contains("only in BASE: 3 cell(s)"), "{out}");
    assert_eq!(compare(&base, &improved, "any").0, 1);

    let (code, out) = compare(&base, &base, "any");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "compare: 6 cells matched, 0 changed significantly (α = 0.05 over all cells, Holm)"
        ),
        "{out}"
    );

    // not a run directory: bad input
    let nothing = base.with_file_name("nothing");
    let (code, _) = compare(&base, &nothing, "worse");
    assert_eq!(code, 2);
    std::fs::remove_dir_all(base.parent().unwrap()).unwrap();
}

/// Two runs that differ in one setting (workers 1 against workers 4) compare cell by cell
/// with `--ignore-axis workers`; a run in which leaving the axis out makes two cells one
/// is refused.
#[tokio::test]
async fn runs_that_differ_in_one_axis_compare_without_it() {
    let root = temp_dir("compare-axis");
    let spec = |workers, anomalies| Spec {
        endpoint: NAD,
        workers,
        anomalies,
    };
    let (one, four, both) = (root.join("w1"), root.join("w4"), root.join("both"));
    store(&one, vec![measured(&spec(1, &[0, 0, 0, 0]))]).await;
    store(&four, vec![measured(&spec(4, &[6, 6, 6, 6]))]).await;
    store(
        &both,
        vec![
            measured(&spec(1, &[0, 0, 0, 0])),
            measured(&spec(4, &[6, 6, 6, 6])),
        ],
    )
    .await;
    let run = |a: &Path, b: &Path| {
        let out = racy(&[
            "compare",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--ignore-axis",
            "workers",
        ]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap(), text)
    };
    let (code, out) = run(&one, &four);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("compare: 1 cells matched, 1 worse, 0 better"),
        "{out}"
    );
    // without the option the two cells are different cells: nothing to compare is bad
    // input, not a pass
    let out = racy(&["compare", one.to_str().unwrap(), four.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no cell of") && err.contains("matches a cell of"),
        "{err}"
    );
    // an axis neither run has is named, with the ones they have
    let out = racy(&[
        "compare",
        one.to_str().unwrap(),
        four.to_str().unwrap(),
        "--ignore-axis",
        "wrokers",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--ignore-axis wrokers") && err.contains("endpoint, workers"),
        "{err}"
    );
    let (code, out) = run(&one, &both);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("differ only in workers"), "{out}");
    std::fs::remove_dir_all(&root).unwrap();
}
