//! Every file of the bad-input corpus is refused with exit code 2 and one error that names
//! the file, line and column, before anything starts; nothing panics.

mod common;

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
    for (root, want) in [
        (
            "tests/bad-stacks/cyclic",
            "tests/bad-stacks/cyclic/loop/compose.yaml:",
        ),
        (
            "tests/bad-stacks/port",
            "tests/bad-stacks/port/bad/compose.yaml:2:",
        ),
    ] {
        let out = common::racy(&["--stacks", root, "plan", "matrices/quick.yaml"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{root}: {err}");
        assert!(err.contains(want), "{root}: wanted {want} in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
