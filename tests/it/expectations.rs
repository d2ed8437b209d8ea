//! A matrix whose expectation does not hold exits 1 and names the cell and the measured
//! value; the files are written all the same.

use crate::common;

#[tokio::test]
async fn a_wrong_expectation_fails_the_run() {
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let out = common::temp_dir("wrong");
    let run = common::racy(&[
        "run",
        "tests/matrices/wrong.yaml",
        "--output",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("expectations: 1 missed"), "{err}");
    assert!(
        err.contains("wrong.yaml") && err.contains("line 13"),
        "{err}"
    );
    assert!(
        err.contains("non_atomic_long_delay") && err.contains("lost_updates 0"),
        "{err}"
    );
    assert!(
        !err.contains("f_expression"),
        "the holding expectation is not reported: {err}"
    );
    assert!(out.join("results.csv").is_file());
    std::fs::remove_dir_all(&out).ok();
}
