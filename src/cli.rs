//! Commands, their options and exit codes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};

use crate::deploy::{Deployment, RunId};
use crate::engine::{Engine, RUN_LABEL};
use crate::export::{self, Format};
use crate::input::InputError;
use crate::matrix::{self, Cell, Matrix, parse_shard};
use crate::results::{self, RunDir};
use crate::runner::{self, RunOptions};
use crate::stack::{self, StackCatalog};

/// Exit code: an expectation failed.
pub const EXIT_EXPECTATION: u8 = 1;
/// Exit code: bad input (matrix, stack file, arguments).
pub const EXIT_INPUT: u8 = 2;
/// Exit code: the engine or a stack failed.
pub const EXIT_ENGINE: u8 = 3;

const EXAMPLES: &str = "\
Examples:
  racy-matrix plan matrices/quick.yaml          # cells in run order, restarts, estimated time
  racy-matrix run matrices/quick.yaml           # measure; results in results/quick-<time>/
  racy-matrix run matrices/quick.yaml --resume results/quick-20261124-101500   # after Ctrl-C
  racy-matrix run matrices/quick.yaml --shard 2/4 --output out/2
  racy-matrix run matrices/lock-scope.yaml --parallel 2   # two stack instances at once
  racy-matrix up django-mysql --set workers=4   # play by hand; prints the URLs
  racy-matrix down                              # remove what `up` started
  racy-matrix report results/quick-20261124-101500 --format md
  racy-matrix merge out/1 out/2 out/3 out/4 --output out/all

Exit codes: 0 ok, 1 an expectation failed, 2 bad input, 3 engine or stack failure.";

/// Measures race conditions: sweeps a matrix of concurrency settings over real
/// containers and counts lost updates.
#[derive(Parser, Debug)]
#[command(name = "racy-matrix", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// Directory holding the stacks (default: the `stacks/` beside the matrix's folder,
    /// else ./stacks).
    #[arg(long, global = true, value_name = "DIR")]
    stacks: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a matrix: bring the stacks up, sweep every cell, write CSV, Markdown and JSON.
    Run {
        /// The matrix file (YAML).
        matrix: PathBuf,
        /// Output directory (default: results/<matrix name>-<time>/).
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Run only shard K of N of the cells (e.g. 2/4).
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
        /// Complete an interrupted run in DIR: run only the cells it lacks (or that failed).
        #[arg(long, value_name = "DIR", conflicts_with = "output")]
        resume: Option<PathBuf>,
        /// Leave the last stack running after the run (until `racy-matrix clean`; `down`
        /// and later runs leave it alone).
        #[arg(long)]
        keep_up: bool,
        /// Retry a failed cell this many times, each on a freshly created stack.
        #[arg(long, default_value_t = 1, value_name = "N")]
        retries: u32,
        /// Stop at the first cell that still fails after its retries.
        #[arg(long)]
        fail_fast: bool,
        /// Measure on N independent stack instances at once, each taking a contiguous
        /// slice of the cells (needs the cores: see the README on distortion).
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16))]
        parallel: u16,
    },
    /// Print the cells in run order, the restarts they need and an estimated time.
    Plan {
        /// The matrix file (YAML).
        matrix: PathBuf,
        /// Show only shard K of N.
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
    },
    /// Bring one stack up for manual play and print its URLs.
    Up {
        /// Stack name (a directory under stacks/).
        stack: String,
        /// Set a stack variable, e.g. --set workers=4 (repeatable).
        #[arg(long = "set", value_name = "K=V")]
        set: Vec<String>,
    },
    /// Remove the stacks started with `up`.
    Down,
    /// Remove every container, network and volume racy-matrix created, including the
    /// stacks `run --keep-up` left running.
    Clean,
    /// Render a run directory's results to stdout and check its matrix's expectations (exit 1 on a miss).
    Report {
        /// A run directory.
        dir: PathBuf,
        /// csv, md or json.
        #[arg(long, default_value = "md")]
        format: String,
    },
    /// Merge run directories (e.g. shards) into one.
    Merge {
        /// Run directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the merged results go.
        #[arg(long, value_name = "DIR")]
        output: PathBuf,
    },
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn fail(code: u8) -> impl FnOnce(anyhow::Error) -> Failure {
    move |error| Failure { code, error }
}

impl From<InputError> for Failure {
    fn from(e: InputError) -> Self {
        Failure {
            code: EXIT_INPUT,
            error: anyhow!("{e}"),
        }
    }
}

/// Parses the arguments, runs the command and maps failures to exit codes.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn stacks_root(explicit: Option<&Path>, matrix: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(m) = matrix {
        let beside = m
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("stacks"));
        if let Some(b) = beside.filter(|b| b.is_dir()) {
            return b;
        }
    }
    PathBuf::from("stacks")
}

fn catalog(root: &Path) -> Result<StackCatalog, Failure> {
    Ok(StackCatalog {
        stacks: stack::discover(root).map_err(fail(EXIT_INPUT))?,
    })
}

/// Loads a matrix and its cells (sharded when asked); bad input exits 2.
fn load_cells(
    path: &Path,
    shard: Option<&str>,
    stacks: Option<&Path>,
) -> Result<(Matrix, Vec<Cell>, StackCatalog), Failure> {
    let catalog = catalog(&stacks_root(stacks, Some(path)))?;
    let m = matrix::load(path, &catalog)?;
    let mut cells = matrix::expand(&m, &catalog);
    if let Some(s) = shard {
        let (k, n) = parse_shard(s)
            .map_err(|e| anyhow!("--shard {s}: {e}"))
            .map_err(fail(EXIT_INPUT))?;
        cells = matrix::shard(&cells, k, n);
    }
    Ok((m, cells, catalog))
}

/// Connects to the engine and removes what killed runs left behind, saying so.
async fn connect() -> Result<Engine, Failure> {
    let engine = Engine::connect().await.map_err(fail(EXIT_ENGINE))?;
    match engine.reap_orphans().await {
        Ok(runs) if !runs.is_empty() => eprintln!(
            "racy-matrix: removed the containers and networks of {} run(s) whose process is gone: {}",
            runs.len(),
            runs.join(", ")
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: could not look for leftovers of killed runs: {e:#}"),
    }
    Ok(engine)
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    let stacks = cli.stacks.as_deref();
    match cli.command {
        Command::Plan { matrix, shard } => {
            let (m, cells, catalog) = load_cells(&matrix, shard.as_deref(), stacks)?;
            print!("{}", crate::plan::render(&m, &cells, &catalog));
            Ok(0)
        }
        Command::Run {
            matrix,
            output,
            shard,
            resume,
            keep_up,
            retries,
            fail_fast,
            parallel,
        } => {
            let (m, mut cells, catalog) = load_cells(&matrix, shard.as_deref(), stacks)?;
            let mut dir = match &resume {
                Some(from) => {
                    let dir = RunDir::load(from).await.map_err(fail(EXIT_INPUT))?;
                    let stored = from.join(results::MATRIX_FILE);
                    let before = matrix::load(&stored, &catalog)?;
                    check_resumable(&before, &m, dir.shard.as_deref(), shard.as_deref()).map_err(
                        |e| fail(EXIT_INPUT)(anyhow!("cannot resume {}: {e}", from.display())),
                    )?;
                    let done = dir.done();
                    let total = cells.len();
                    cells.retain(|c| !done.contains(&c.key()));
                    eprintln!(
                        "racy-matrix: resuming {}: {} of {total} cells done, {} to run",
                        from.display(),
                        total - cells.len(),
                        cells.len()
                    );
                    dir
                }
                None => {
                    let output = output.clone().unwrap_or_else(|| {
                        let now = chrono::Local::now().format("%Y%m%d-%H%M%S");
                        PathBuf::from("results").join(format!("{}-{now}", m.name))
                    });
                    let mut dir = RunDir::create(&output, &m.name)
                        .await
                        .map_err(fail(EXIT_INPUT))?;
                    dir.shard = shard.clone();
                    dir
                }
            };
            let output = dir.path.clone();
            let engine = connect().await?;
            let text = std::fs::read_to_string(&matrix)
                .context("reading the matrix")
                .map_err(fail(EXIT_INPUT))?;
            dir.save_matrix(&text).await.map_err(fail(EXIT_ENGINE))?;
            // Written from the text already read, through a temporary file: resuming with
            // the run directory's own copy of the matrix must not empty it.
            results::write_atomically(&output.join(results::MATRIX_FILE), text.as_bytes())
                .context("copying the matrix into the output directory")
                .map_err(fail(EXIT_INPUT))?;
            eprintln!(
                "racy-matrix: Docker Engine API {}; {} cells x {} repetitions of {} requests; results in {}",
                engine.api_version,
                cells.len(),
                m.repetitions,
                m.requests,
                output.display()
            );
            let opts = RunOptions {
                matrix: m,
                cells,
                catalog,
                keep_up,
                retries,
                fail_fast,
                parallel: usize::from(parallel),
            };
            let run_id = RunId::new("").keeping(keep_up);
            let outcome = tokio::select! {
                r = runner::run(&engine, &opts, &mut dir, &run_id) => Some(r),
                _ = interrupted() => None,
            };
            let outcome = outcome.unwrap_or_else(|| {
                Err(anyhow!(
                    "interrupted; the {} cells measured so far are in {}\n  resume with: racy-matrix run {} --resume {}",
                    dir.cells.len(),
                    output.display(),
                    matrix.display(),
                    output.display()
                ))
            });
            // Whatever happened, nothing of this run stays behind (unless --keep-up). A
            // second Ctrl-C gives the removal 3 more seconds, then leaves; the next
            // racy-matrix command removes what is left, as for any run whose process is gone.
            if !(keep_up && outcome.is_ok()) {
                let filter = format!("{RUN_LABEL}={}", run_id.id);
                let cleanup = engine.remove_labelled(&filter);
                tokio::pin!(cleanup);
                let removed = tokio::select! {
                    r = &mut cleanup => Some(r),
                    _ = interrupted() => None,
                };
                match removed {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        eprintln!("warning: cleanup of run {} failed: {e:#}", run_id.id)
                    }
                    None => {
                        let done = tokio::time::timeout(Duration::from_secs(3), &mut cleanup).await;
                        if !matches!(done, Ok(Ok(_))) {
                            eprintln!(
                                "interrupted again: leaving; the next racy-matrix command (e.g. `racy-matrix clean`) removes what is left of run {}",
                                run_id.id
                            );
                        }
                        let _ = dir.close().await;
                        return Err(fail(EXIT_ENGINE)(anyhow!("interrupted twice")));
                    }
                }
            }
            if let Err(e) = dir.close().await {
                eprintln!("warning: closing the results store: {e:#}");
            }
            if !dir.cells.is_empty() {
                println!("{}", export::terminal_table(&dir.report()));
            }
            outcome.map_err(fail(EXIT_ENGINE))?;
            println!("results: {}", output.display());
            let verdict = check_expectations(&matrix, &opts.matrix, &dir.cells, shard.is_none());
            let failed = dir.cells.iter().filter(|c| c.error.is_some()).count();
            if failed > 0 {
                // Measured cells are kept; the failed ones run again with --resume.
                eprintln!(
                    "{failed} cell(s) could not be measured (the reasons are in the results); once fixed, run them with: racy-matrix run {} --resume {}",
                    matrix.display(),
                    output.display()
                );
                return Ok(EXIT_ENGINE);
            }
            Ok(verdict)
        }
        Command::Up { stack, set } => {
            let catalog = catalog(&stacks_root(stacks, None))?;
            let st = catalog.stacks.get(&stack).ok_or_else(|| {
                fail(EXIT_INPUT)(anyhow!(
                    "unknown stack '{stack}'; valid: {}",
                    catalog
                        .stacks
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let mut vars = BTreeMap::new();
            for kv in &set {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| fail(EXIT_INPUT)(anyhow!("--set {kv}: expected K=V")))?;
                vars.insert(k.to_string(), v.to_string());
            }
            let engine = connect().await?;
            let mut say = |m: &str| eprintln!("  {m}");
            let base = crate::image::ensure_base(&engine, &mut say)
                .await
                .map_err(fail(EXIT_ENGINE))?;
            vars.entry("BASE_IMAGE".into()).or_insert(base);
            vars.entry("amount".into()).or_insert("100".into());
            vars.entry("db_password".into())
                .or_insert_with(runner::random_password);
            let run = RunId::new("up-");
            let password = vars.get("db_password").cloned().unwrap_or_default();
            let started = tokio::select! {
                d = Deployment::start(&engine, st, &run, vars, &mut say) => d,
                _ = interrupted() => Err(anyhow!("interrupted while stack {stack} was starting; nothing of it is left")),
            };
            let dep = match started {
                Ok(d) => d,
                Err(e) => {
                    // A start that failed or was interrupted leaves nothing behind (what
                    // the engine is still creating is awaited, then removed).
                    let _ = engine
                        .remove_labelled(&format!("{RUN_LABEL}={}", run.id))
                        .await;
                    let e = anyhow!("{}", crate::probe::scrub(&format!("{e:#}"), &password));
                    return Err(fail(EXIT_ENGINE)(e));
                }
            };
            println!("stack {stack} is up (run {})", run.id);
            println!("  app:      http://{}/", dep.target);
            for (name, ep) in &dep.driver.endpoints {
                println!(
                    "    {:<32} {} http://{}{}",
                    name, ep.method, dep.target, ep.path
                );
            }
            println!(
                "  database: {} (password not shown; choose one with --set db_password=...)",
                crate::probe::redact(&dep.db_url)
            );
            println!("  containers: {:?}", dep.container_names());
            println!("remove it with: racy-matrix down");
            Ok(0)
        }
        Command::Down | Command::Clean => {
            let engine = connect().await?;
            let mut total = (0, 0);
            let runs = engine
                .labelled_containers(RUN_LABEL)
                .await
                .map_err(fail(EXIT_ENGINE))?;
            let nets = engine
                .labelled_networks(RUN_LABEL)
                .await
                .map_err(fail(EXIT_ENGINE))?;
            let vols = engine
                .labelled_volumes(RUN_LABEL)
                .await
                .map_err(fail(EXIT_ENGINE))?;
            let only_up = matches!(cli.command, Command::Down);
            let mut ids: Vec<String> = runs
                .iter()
                .chain(nets.iter())
                .chain(vols.iter())
                .filter_map(|(_, l)| l.get(RUN_LABEL).cloned())
                .filter(|id| !only_up || id.starts_with("up-"))
                .collect();
            ids.sort();
            ids.dedup();
            for id in &ids {
                let (c, n) = engine
                    .remove_labelled(&format!("{RUN_LABEL}={id}"))
                    .await
                    .map_err(fail(EXIT_ENGINE))?;
                total.0 += c;
                total.1 += n;
            }
            println!(
                "removed {} containers and {} networks of {} runs",
                total.0,
                total.1,
                ids.len()
            );
            Ok(0)
        }
        Command::Report { dir, format } => {
            let f: Format = format
                .parse()
                .map_err(|e: String| fail(EXIT_INPUT)(anyhow!("--format {format}: {e}")))?;
            let run = RunDir::load(&dir).await.map_err(fail(EXIT_INPUT))?;
            let _ = run.close().await;
            let bytes = export::exporter(f)
                .render(&run.report())
                .map_err(fail(EXIT_ENGINE))?;
            use std::io::Write;
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| fail(EXIT_ENGINE)(e.into()))?;
            // The run's own copy of its matrix says what must hold.
            let matrix_file = dir.join(results::MATRIX_FILE);
            if !matrix_file.is_file() {
                return Ok(0);
            }
            let catalog = catalog(&stacks_root(stacks, Some(&matrix_file)))?;
            let m = matrix::load(&matrix_file, &catalog)?;
            Ok(check_expectations(
                &matrix_file,
                &m,
                &run.cells,
                run.shard.is_none(),
            ))
        }
        Command::Merge { dirs, output } => {
            let mut loaded = Vec::new();
            for d in &dirs {
                loaded.push(RunDir::load(d).await.map_err(fail(EXIT_INPUT))?);
            }
            let merged = results::merge(&loaded, &output)
                .await
                .map_err(fail(EXIT_INPUT))?;
            for d in loaded.iter().chain([&merged]) {
                let _ = d.close().await;
            }
            println!(
                "merged {} cells from {} directories into {}",
                merged.cells.len(),
                dirs.len(),
                output.display()
            );
            Ok(0)
        }
    }
}

/// Whether a run directory made with matrix `before` can be completed with `now`: the
/// settings every cell is measured with must be the same, or the cells would not compare.
fn check_resumable(
    before: &Matrix,
    now: &Matrix,
    shard_before: Option<&str>,
    shard_now: Option<&str>,
) -> Result<()> {
    let mut diffs = Vec::new();
    let mut cmp = |what: &str, a: String, b: String| {
        if a != b {
            diffs.push(format!("{what} was {a}, is now {b}"));
        }
    };
    cmp("name", before.name.clone(), now.name.clone());
    cmp(
        "requests",
        before.requests.to_string(),
        now.requests.to_string(),
    );
    cmp("amount", before.amount.to_string(), now.amount.to_string());
    cmp(
        "repetitions",
        before.repetitions.to_string(),
        now.repetitions.to_string(),
    );
    cmp(
        "timeout_ms",
        format!("{:?}", before.timeout_ms),
        format!("{:?}", now.timeout_ms),
    );
    cmp(
        "shard",
        shard_before.unwrap_or("none").to_string(),
        shard_now.unwrap_or("none").to_string(),
    );
    if diffs.is_empty() {
        Ok(())
    } else {
        bail!(
            "the matrix changed in a way that would mix incompatible cells: {}",
            diffs.join("; ")
        )
    }
}

/// Checks a matrix's expectations against measured cells, prints the verdict, and
/// returns the exit code (0, or 1 on any miss).
fn check_expectations(file: &Path, m: &Matrix, cells: &[export::CellResult], complete: bool) -> u8 {
    if m.expect.is_empty() {
        return 0;
    }
    let (checked, misses) = crate::expect::check(&m.expect, cells, complete);
    if misses.is_empty() {
        eprintln!(
            "expectations: all {} held over {checked} checked cells",
            m.expect.len()
        );
        return 0;
    }
    eprintln!("expectations: {} missed", misses.len());
    for miss in &misses {
        eprintln!("  {}: {miss}", file.display());
    }
    EXIT_EXPECTATION
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
