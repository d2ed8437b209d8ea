//! Bad input is refused before anything starts, with file, line and column; `plan` reads
//! only files.

use crate::common;

#[test]
fn unknown_endpoint_is_located_and_exits_2() {
    let dir = common::temp_dir("bad");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "name: bad\nstacks: [django-mysql]\naxes:\n  workers: [1]\n  endpoint: [atomic_long_delay, no_such_endpoint]\n",
    )
    .unwrap();
    let out = common::racy(&["--stacks", "stacks", "plan", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:5:", file.display())), "{err}");
    assert!(err.contains("no_such_endpoint"), "{err}");
    assert!(
        err.contains("row_locking_atomic_long_delay"),
        "lists valid choices: {err}"
    );
}

#[test]
fn syntax_error_is_located() {
    let dir = common::temp_dir("syntax");
    let file = dir.join("broken.yaml");
    std::fs::write(&file, "name: x\nstacks: [django-mysql\naxes: {}\n").unwrap();
    let out = common::racy(&["--stacks", "stacks", "run", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("broken.yaml:"), "{err}");
}

#[test]
fn plan_orders_cells_and_counts_restarts() {
    let out = common::racy(&["plan", "matrices/quick.yaml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 2 worker counts x 8 endpoints; workers vary slowest, so one change, made live
    assert!(text.contains("16 cells"), "{text}");
    assert!(text.contains("1 stack starts, 1 restarts"), "{text}");
    assert!(text.contains("workers 1->4 in app"), "{text}");
    assert!(!text.contains("recreate"), "{text}");
    // an isolation change recreates the app and the Celery worker; the snapshot switch,
    // which recreates the database and everything after it, changes least often
    let out = common::racy(&["plan", "matrices/isolation.yaml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("recreate app, worker"), "{text}");
    let db_recreations = text
        .lines()
        .filter(|l| l.contains("recreate") && l.contains(" db,"))
        .count();
    assert_eq!(db_recreations, 1, "the database is recreated once: {text}");
}
