//! Every file of the bad-input corpus is refused with exit code 2 and one error that names
//! the file, line and column, before anything starts; nothing panics.

use crate::common;

use std::path::Path;

/// The `# expect LINE:COL` header of a corpus file.
fn expected(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect "))
        .unwrap_or_else(|| panic!("{} lacks its # expect header", path.display()))
        .trim()
        .to_string()
}

#[test]
fn every_bad_matrix_is_located() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 12, "the corpus is there");
    let mut failures = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
        let out = common::racy(&["plan", rel.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        let want = format!("error: {}:{}:", rel.display(), expected(f));
        if out.status.code() != Some(2) || !err.starts_with(&want) || err.contains("panicked") {
            failures.push(format!(
                "{}: exit {:?}, wanted '{want}', got:\n{err}",
                rel.display(),
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_stack_files_are_located() {
    // (stacks directory, matrix, where the error must point, what it must say)
    let quick = "matrices/quick.yaml";
    let variables = "tests/bad-stacks/variables";
    for (root, matrix, want, says) in [
        (
            "tests/bad-stacks/cyclic",
            quick,
            "tests/bad-stacks/cyclic/loop/compose.yaml:",
            "cycle",
        ),
        (
            "tests/bad-stacks/port",
            quick,
            "tests/bad-stacks/port/bad/compose.yaml:2:",
            "",
        ),
        (
            "tests/bad-stacks/sql-variable",
            quick,
            "tests/bad-stacks/sql-variable/lab/compose.yaml:8:44:",
            "x-racy.reset statement 2 uses '${account}'",
        ),
        (
            "tests/bad-stacks/sqlite-dot-command",
            quick,
            "tests/bad-stacks/sqlite-dot-command/lab/compose.yaml:8:7:",
            "sqlite3 command '.shell'",
        ),
        (
            "tests/bad-stacks/mem-limit",
            quick,
            "tests/bad-stacks/mem-limit/lab/compose.yaml:12:16:",
            "services.app.mem_limit 'lots' is not a memory size",
        ),
        (
            "tests/bad-stacks/replicas",
            quick,
            "tests/bad-stacks/replicas/lab/compose.yaml:13:17:",
            "services.app.deploy.replicas '-3' is not a replica count",
        ),
        (
            "tests/bad-stacks/request-line",
            quick,
            "tests/bad-stacks/request-line/lab/compose.yaml:6:5:",
            "endpoint 'transfer': its path",
        ),
        (
            "tests/bad-stacks/refused-key",
            quick,
            "tests/bad-stacks/refused-key/app/compose.yaml:11:5:",
            "services.web.network_mode is not supported: every service of a stack instance shares one private network",
        ),
        (
            "tests/bad-stacks/racy-compose",
            quick,
            "tests/bad-stacks/racy-compose/app/racy.yaml:1:10:",
            "compose file tests/bad-stacks/nowhere/docker-compose.yml does not exist (the path is relative to racy.yaml)",
        ),
        (
            "tests/bad-stacks/env-file",
            quick,
            "tests/bad-stacks/env-file/project/docker-compose.yml:4:16:",
            "service 'db': env_file tests/bad-stacks/env-file/project/db.env does not exist",
        ),
        (
            variables,
            "tests/bad-stacks/variables/scale.yaml",
            "tests/bad-stacks/variables/lab/compose.yaml:13:24:",
            "is '-3' in the cell with scale=-3, which is not a replica count",
        ),
        (
            variables,
            "tests/bad-stacks/variables/memory.yaml",
            "tests/bad-stacks/variables/lab/compose.yaml:14:16:",
            "is 'lots' in the cell with memory=lots, which is not a memory size",
        ),
    ] {
        let out = common::racy(&["--stacks", root, "plan", matrix]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{root}: {err}");
        assert!(
            err.starts_with(&format!("error: {want}")),
            "{root}: wanted {want} in {err}"
        );
        assert!(err.contains(says), "{root}: wanted '{says}' in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn run_refuses_a_cell_the_stack_cannot_start_before_anything_starts() {
    let out_dir = common::temp_dir("bad-cell").join("out");
    let out = common::racy(&[
        "--stacks",
        "tests/bad-stacks/variables",
        "run",
        "tests/bad-stacks/variables/scale.yaml",
        "--output",
        out_dir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: tests/bad-stacks/variables/lab/compose.yaml:13:24:"),
        "{err}"
    );
    assert!(!out_dir.exists(), "no run directory is made");
    assert!(
        !err.contains("Docker Engine API"),
        "the engine is not reached: {err}"
    );
}

#[test]
fn an_engine_that_does_not_answer_leaves_no_run_directory() {
    let out_dir = common::temp_dir("dead-engine").join("out");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_racy-matrix"))
            .args(["run", "matrices/quick.yaml", "--output"])
            .arg(&out_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("DOCKER_HOST", "tcp://127.0.0.1:9")
            .output()
            .unwrap()
    };
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("tcp://127.0.0.1:9 does not answer"), "{err}");
    assert!(
        !out_dir.exists(),
        "nothing a rerun would take for a run to resume"
    );
    // the same command again says the same, not "already holds a run"
    let again = run();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("does not answer") && !err.contains("--resume"),
        "{err}"
    );
}
