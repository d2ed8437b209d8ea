//! racy-matrix: turns race conditions in a web app into measurements. It brings stacks up
//! through the Docker Engine API, sweeps a matrix of concurrency settings, fires
//! synchronized bursts, and counts lost updates per cell.
//!
//! The modules are the stages a run goes through. Lowest first: `input` (matrix and
//! stack files), `burst` (requests and their release), `measure` (metrics, intervals,
//! explain, compare), `deploy` (the engine, images, stacks, their database), `store`
//! (the run directory), `plan` (run order, cost, shards), `run` (the run loop),
//! `report` (every view of a run), `cli` (the commands). A module names only the ones
//! before it (`cargo test --lib layers` checks it); see `docs/architecture.md`.

pub(crate) mod burst;
pub(crate) mod cli;
pub(crate) mod deploy;
pub(crate) mod input;
pub(crate) mod measure;
pub(crate) mod plan;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod store;

/// The racy-matrix command: parses the arguments, runs the command, exits with the code
/// its outcome gives.
pub use cli::main;

/// The log filter of a `RUST_LOG` value, the Docker client's request bodies left out.
pub use cli::logging::log_filter;

/// What the bench harness (`bench/harness.rs`) and the integration tests (`tests/it`)
/// reach inside racy-matrix: a small, named set of entry points. Everything else is
/// private to the crate.
pub mod harness {
    pub use crate::burst::http::{BurstSpec, HttpRequest, Release};
    pub use crate::deploy::deployment::{Deployment, RunId};
    pub use crate::deploy::engine::{Engine, Object, RUN_LABEL};
    pub use crate::deploy::image::{UPSTREAM_BASE, ensure_base, ensure_built};
    pub use crate::deploy::racer::set_binary;
    pub use crate::input::matrix::{Cell, expand as expand_matrix, load as load_matrix};
    pub use crate::input::route::RouteChoice;
    pub use crate::input::setup::Setup;
    pub use crate::input::stack::{Build, Stack, StackCatalog, discover as discover_stacks};
    pub use crate::measure::cell::{CellResult, CellTiming};
    pub use crate::measure::metrics::{
        CellMetrics, Check, Observation, Repetition, anomaly_bursts, cluster_wilson, compute,
        median, percentile,
    };
    pub use crate::plan::cost::Costs;
    pub use crate::plan::shard::{count_estimates, estimates, max_over_mean};
    pub use crate::report::export::{RunReport, write_all as write_result_files};
    pub use crate::run::runner::random_password;
    pub use crate::store::results::RunDir;
}

#[cfg(test)]
mod layers {
    //! The layering of the modules above, checked on the source: a module may name
    //! (`crate::other::…`) only the modules listed before it in [`ORDER`], so there is no
    //! import circle between them. Run it with `cargo test --lib layers`.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The top-level modules, lowest first.
    const ORDER: &[&str] = &[
        "input", "burst", "measure", "deploy", "store", "plan", "run", "report", "cli",
    ];

    /// Every `crate::MODULE::` a module's files name, outside comments: module → the
    /// modules it names → where.
    fn references(src: &Path) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
        let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let rel = path.strip_prefix(src).unwrap();
                let Some(top) = rel.iter().next().filter(|_| rel.components().count() > 1) else {
                    continue; // lib.rs, main.rs
                };
                let top = top.to_string_lossy().to_string();
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    if line.trim_start().starts_with("//") {
                        continue;
                    }
                    for (at, _) in line.match_indices("crate::") {
                        let name: String = line[at + 7..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() && name != top {
                            out.entry(top.clone())
                                .or_default()
                                .entry(name)
                                .or_default()
                                .push(format!("{}:{}", rel.display(), i + 1));
                        }
                    }
                }
            }
        }
        out
    }

    /// The modules in a circle of `graph`, if any: those from which a path leads back to
    /// themselves.
    fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
        let reaches = |from: &str| {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<&str> = graph
                .get(from)
                .into_iter()
                .flatten()
                .map(|s| s.as_str())
                .collect();
            while let Some(m) = todo.pop() {
                if seen.insert(m.to_string()) {
                    todo.extend(graph.get(m).into_iter().flatten().map(|s| s.as_str()));
                }
            }
            seen
        };
        graph
            .keys()
            .filter(|m| reaches(m).contains(*m))
            .cloned()
            .collect()
    }

    #[test]
    fn no_module_names_one_above_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let refs = references(&src);
        let graph: BTreeMap<String, BTreeSet<String>> = refs
            .iter()
            .map(|(m, to)| (m.clone(), to.keys().cloned().collect()))
            .collect();
        let circled = circles(&graph);
        assert!(
            circled.is_empty(),
            "modules in an import circle: {circled:?}\n{refs:#?}"
        );
        let rank = |m: &str| ORDER.iter().position(|o| *o == m);
        let mut wrong = Vec::new();
        for (m, to) in &refs {
            assert!(rank(m).is_some(), "src/{m} is not in ORDER");
            for (other, at) in to {
                if rank(other).is_none_or(|r| Some(r) > rank(m)) {
                    wrong.push(format!("{m} names {other} at {}", at.join(", ")));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "a module names one above it:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn a_circle_is_found() {
        let g = |edges: &[(&str, &str)]| {
            let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (a, b) in edges {
                out.entry(a.to_string()).or_default().insert(b.to_string());
            }
            out
        };
        assert!(circles(&g(&[("cli", "run"), ("run", "input")])).is_empty());
        assert_eq!(
            circles(&g(&[
                ("store", "report"),
                ("report", "measure"),
                ("measure", "store"),
                ("cli", "store")
            ])),
            ["measure", "report", "store"]
        );
    }
}
