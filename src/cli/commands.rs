//! The command line: arguments (clap), one function per command, and the one place
//! that turns how a command ended into an exit code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};

use crate::cli::finished::{self, Finished, Matrixed};
use crate::cli::outcome::{Failure, Kind, Verdict, exit_code};
use crate::deploy::deployment::{Deployment, RunId};
use crate::deploy::engine::{Engine, RUN_LABEL};
use crate::deploy::progress::Step;
use crate::input::matrix::{self, Cell, Matrix, Shard};
use crate::input::redact::Redactor;
use crate::input::route::RouteChoice;
use crate::input::source::InputError;
use crate::input::stack::{self, Stack, StackCatalog};
use crate::measure::compare::FailOn;
use crate::plan::cost::{Costs, Timings};
use crate::report::export::{self, Format, RunReport};
use crate::report::live::Live;
use crate::run::runner::{self, RunOptions};
use crate::store::results::{self, RunDir};

const EXAMPLES: &str = "\
Examples:
  racy-matrix plan matrices/quick.yaml          # cells in run order, restarts, estimated time
  racy-matrix run matrices/quick.yaml           # measure; results in results/quick-<time>/
  racy-matrix run matrices/quick.yaml --resume results/quick-20261124-101500   # after Ctrl-C
  racy-matrix run matrices/quick.yaml --shard 2/4 --output out/2   # shards balanced by estimated time
  racy-matrix plan matrices/nightly.yaml --shards 16 --timings results/last-night   # shard estimates from measured times
  racy-matrix run matrices/nightly.yaml --shard 3/16 --timings results/last-night --output out/3
  racy-matrix run matrices/lock-scope.yaml --parallel 2   # two stack instances at once
  racy-matrix run matrices/quick.yaml --engine unix:///var/run/docker.sock --engine ssh://me@box   # one instance on each
  racy-matrix up django-mysql --set workers=4   # play by hand; prints the URLs
  racy-matrix down                              # remove what `up` started
  racy-matrix report results/quick-20261124-101500 --format md
  racy-matrix merge out/1 out/2 out/3 out/4 --output out/all
  racy-matrix explain results/quick-20261124-101500 --cell 12   # who overwrote whom, per burst
  racy-matrix claims results/on-commit-* results/atomic-requests-*   # each seed claim: held or not, rate [95% CI]
  racy-matrix compare results/last-night results/tonight   # exit 1 when a cell got significantly worse
  racy-matrix init ../myapp/docker-compose.yml  # a starting stacks/myapp/racy.yaml; fill in its TODOs
  racy-matrix check myapp                       # bring it up once: reset, observe, one request per endpoint

Exit codes: 0 ok, 1 an expectation failed (compare: a change --fail-on counts), 2 bad input, 3 engine or stack failure (or a
cell that could not be measured), 4 a local file or output could not be written.";

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
    /// Run a matrix: bring the stacks up, sweep every cell, write CSV, Markdown, JSON and HTML.
    Run(RunArgs),
    /// Print the cells in run order, the restarts they need and an estimated time, or the
    /// estimates of a matrix's shards.
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(PlanArgs),
    /// Bring one stack up for manual play and print its URLs.
    Up {
        /// Stack name (a directory under stacks/).
        stack: String,
        /// Set a stack variable, e.g. --set workers=4 (repeatable).
        #[arg(long = "set", value_name = "K=V", value_parser = parse_assignment)]
        set: Vec<(String, String)>,
    },
    /// Try a stack once: bring it up, run its reset and observe SQL, send one request to
    /// each endpoint, say what works and what does not, and remove it.
    Check {
        /// Stack name (a directory under stacks/).
        stack: String,
        /// Set a stack variable, e.g. --set workers=4 (repeatable).
        #[arg(long = "set", value_name = "K=V", value_parser = parse_assignment)]
        set: Vec<(String, String)>,
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
        /// The format to render.
        #[arg(long, value_enum, default_value_t = Format::Markdown)]
        format: Format,
        /// html: the heatmaps' axis across (default: the axis with the most values).
        #[arg(long, value_name = "AXIS")]
        x: Option<String>,
        /// html: the heatmaps' axis down (default: the axis with the next most values).
        #[arg(long, value_name = "AXIS")]
        y: Option<String>,
    },
    /// Explain every anomaly of a run from the answers: which request's write erased which
    /// increment (a counter), which creator made a duplicate (unique), which act relied
    /// on a check another had already made false (an invariant).
    Explain {
        /// A run directory.
        dir: PathBuf,
        /// Only cell N (numbered from 1 in run order, as `report` lists them).
        #[arg(long, value_name = "N")]
        cell: Option<usize>,
    },
    /// Print the claims the runs' matrices state (`claim:` in `expect`) as a Markdown
    /// table: each with its verdict over the cells it selects and the pooled anomaly rate
    /// with its interval.
    Claims {
        /// Run directories, in the order their claims are listed.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
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
    /// Test every cell two runs (or merged runs) both measured for a significant change of
    /// its anomaly rate, bursts as the sampling unit; exit 1 on a change --fail-on counts.
    Compare {
        /// The earlier run directory.
        base: PathBuf,
        /// The later run directory.
        new: PathBuf,
        /// Which significant changes make the command exit 1.
        #[arg(long, value_enum, default_value_t = FailOn::Worse)]
        fail_on: FailOn,
        /// The significance level of each cell's test.
        #[arg(long, default_value_t = crate::measure::compare::ALPHA, value_parser = crate::measure::compare::parse_alpha)]
        alpha: f64,
        /// Match cells without this axis (repeatable), to compare runs that differ in
        /// it, e.g. a run at workers=1 against one at workers=4.
        #[arg(long = "ignore-axis", value_name = "AXIS")]
        ignore_axis: Vec<String>,
    },
    /// Write a starting racy.yaml for your own app's compose file (which is not edited):
    /// the target, database and worker count guessed, the rest marked TODO.
    Init(InitArgs),
    /// Inside a racer container (route `racer`): fire the burst ORDER (JSON, as the
    /// host process writes it) and print its records as JSON.
    #[command(hide = true)]
    Racer {
        /// The burst, as JSON.
        #[arg(required_unless_present_any = ["pipe", "serve"])]
        order: Option<String>,
        /// Instead: relay standard input to ADDR and its answers to standard output (the
        /// host's tunnel to a stack on a remote engine).
        #[arg(long, value_name = "ADDR", conflicts_with = "order")]
        pipe: Option<String>,
        /// Instead: fire the burst of each order line on standard input, printing each
        /// one's records as a line.
        #[arg(long, conflicts_with_all = ["order", "pipe"])]
        serve: bool,
    },
}

const PLAN_EXAMPLES: &str = "\
Examples:
  racy-matrix plan matrices/nightly.yaml --shards 16   # the 16 shards' estimates and max/mean
  racy-matrix plan matrices/nightly.yaml --shard 3/16  # shard 3's cells and its estimate
  racy-matrix plan matrices/nightly.yaml --shards 16 --timings results/last-night
                         # measured durations for the cells last night ran, a fitted model for the rest";

/// The options of `plan`.
#[derive(Args, Debug)]
struct PlanArgs {
    /// The matrix file (YAML).
    matrix: PathBuf,
    /// Show only shard K of N (shards are balanced by estimated time) and its estimate.
    #[arg(long, value_name = "K/N", conflicts_with = "shards")]
    shard: Option<Shard>,
    /// Print the estimates of all N shards and the slowest over the mean.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    shards: Option<u64>,
    /// Estimate from earlier runs: run directories or results.json files (e.g. the merged
    /// shards of last night). Their cells' measured durations replace the model's for the
    /// same cells, and the model's constants are fitted to them for the rest.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    timings: Vec<PathBuf>,
    /// With --shards: each shard's wall time when it runs with `run --parallel N` (its
    /// cells split among N stack instances as `run` splits them).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "shards",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    parallel: u16,
}

/// The options of `init`; the stack goes into the `--stacks` directory (default ./stacks).
#[derive(Args, Debug)]
struct InitArgs {
    /// The project's compose file (docker-compose.yml, compose.yaml).
    compose_file: PathBuf,
    /// The stack's name, a directory under stacks/ (default: the compose file's directory name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Overwrite an existing racy.yaml.
    #[arg(long)]
    force: bool,
}

/// The options of `run`.
#[derive(Args, Debug)]
struct RunArgs {
    /// The matrix file (YAML).
    matrix: PathBuf,
    /// Output directory (default: results/<matrix name>-<time>/).
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Run only shard K of N of the cells (e.g. 2/4), shards balanced by estimated time
    /// (`plan --shards N` shows them).
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Balance the shards (and the `--parallel` instances' slices) with the durations
    /// earlier runs measured: run directories or results.json files (as `plan --timings`;
    /// every shard job, and a `--resume`, must be given the same ones).
    #[arg(long, value_name = "DIR", num_args = 1..)]
    timings: Vec<PathBuf>,
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
    /// How requests reach the stacks: `direct` to the containers' addresses on their
    /// network, `published` through the ports the engine publishes on 127.0.0.1 (and its
    /// proxy), `racer` fired from a container beside each stack, `auto` direct when this
    /// host reaches them and the racer on a remote engine (default; overrides the
    /// matrix's `route:`).
    #[arg(long, value_name = "ROUTE", value_parser = parse_route)]
    route: Option<RouteChoice>,
    /// Run on the Docker Engine at URL (`unix://`, `tcp://`, `ssh://`; with TLS when
    /// DOCKER_TLS_VERIFY is set); repeat it to spread the `--parallel` instances over
    /// several engines (at least one instance each). Default: DOCKER_HOST, else the local
    /// socket. A remote engine's stacks are measured through a racer (see --route).
    #[arg(long = "engine", value_name = "URL")]
    engines: Vec<String>,
}

/// `--route`.
fn parse_route(s: &str) -> Result<RouteChoice, String> {
    RouteChoice::parse(s).map_err(|e| e.to_string())
}

/// `K=V` of `up --set`.
fn parse_assignment(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected K=V, got '{s}'"))
}

/// Parses the arguments, runs the command, and exits with the code its outcome gives.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = dispatch(cli).await;
    if let Err(e) = &outcome {
        eprintln!("error: {e}");
    }
    ExitCode::from(exit_code(&outcome))
}

async fn dispatch(cli: Cli) -> Result<Verdict, Failure> {
    let stacks = cli.stacks.as_deref();
    match cli.command {
        Command::Run(args) => run(args, stacks).await,
        Command::Plan(args) => plan(args, stacks).await,
        Command::Up { stack, set } => up(&stack, set, stacks).await,
        Command::Check { stack, set } => check(&stack, set, stacks).await,
        Command::Down => remove_runs(true).await,
        Command::Clean => remove_runs(false).await,
        Command::Report { dir, format, x, y } => report(&dir, format, [x, y], stacks).await,
        Command::Merge { dirs, output } => merge(&dirs, &output).await,
        Command::Explain { dir, cell } => explain(&dir, cell).await,
        Command::Claims { dirs } => claims(&dirs, stacks).await,
        Command::Compare {
            base,
            new,
            fail_on,
            alpha,
            ignore_axis,
        } => crate::cli::compare::command(&base, &new, fail_on, alpha, &ignore_axis).await,
        Command::Init(a) => crate::cli::init::command(
            &a.compose_file,
            a.name.as_deref(),
            &stacks_root(stacks, None),
            a.force,
        ),
        Command::Racer { order, pipe, serve } => match (order, pipe) {
            _ if serve => crate::deploy::racer::serve_lines().await,
            (_, Some(addr)) => crate::deploy::tunnel::pipe(&addr).await,
            (Some(order), None) => crate::deploy::racer::serve(&order).await,
            (None, None) => Err(anyhow!("racer: an ORDER, --pipe ADDR or --serve")),
        }
        .map(|()| Verdict::Ok)
        .map_err(Failure::Engine),
    }
}

pub(crate) fn stacks_root(explicit: Option<&Path>, matrix: Option<&Path>) -> PathBuf {
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

pub(crate) fn catalog(root: &Path) -> Result<StackCatalog, Failure> {
    Ok(StackCatalog {
        stacks: stack::discover(root).input()?,
    })
}

/// Loads a matrix and all its cells, in run order.
fn load_cells(
    path: &Path,
    stacks: Option<&Path>,
) -> Result<(Matrix, Vec<Cell>, StackCatalog), Failure> {
    let catalog = catalog(&stacks_root(stacks, Some(path)))?;
    let m = matrix::load(path, &catalog)?;
    let cells = matrix::expand(&m, &catalog);
    bounds_are_columns(path, &m, &cells)?;
    for name in &m.stacks {
        say_notes(&catalog.stacks[name]);
    }
    Ok((m, cells, catalog))
}

/// Refuses, before anything runs, an expectation that bounds a column no result has (a
/// misspelt metric would otherwise be found only after the whole run).
fn bounds_are_columns(path: &Path, m: &Matrix, cells: &[Cell]) -> Result<(), Failure> {
    let mut columns = crate::measure::cell::metric_columns();
    columns.extend(["repetitions", "requests", "status", "error", "stack"].map(String::from));
    columns.extend(cells.iter().flat_map(|c| c.axes.keys().cloned()));
    columns.sort();
    columns.dedup();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for e in &m.expect {
        if let Some(k) = e.bounds.keys().find(|k| !columns.contains(k)) {
            // where the key is written: the first line from the expectation's on that names it
            let at = text
                .lines()
                .enumerate()
                .skip(e.line.saturating_sub(1))
                .find_map(|(i, l)| l.find(&format!("{k}:")).map(|c| (i + 1, c + 1)))
                .unwrap_or((e.line, 1));
            let err = InputError::new(
                path,
                at,
                format!("expect bounds '{k}', which is no result column"),
            )
            .with_choices(columns);
            return Err(err.into());
        }
    }
    Ok(())
}

/// Reads the measured durations `--timings` names (none without it).
async fn load_timings(paths: &[PathBuf]) -> Result<Timings, Failure> {
    let t = Timings::load(paths).await.input()?;
    if !paths.is_empty() && t.is_empty() {
        eprintln!(
            "note: {} hold no cell durations (runs recorded by an older racy-matrix, or only failed cells); \
             the model's constants are the defaults",
            crate::plan::cost::sources_label(paths)
        );
    }
    Ok(t)
}

/// What racy-matrix ignores in a stack's files, once, on stderr.
fn say_notes(stack: &Stack) {
    for note in &stack.notes {
        eprintln!("note: {note}");
    }
}

/// The stack named `name`, or an error listing those there are.
fn one_stack<'a>(catalog: &'a StackCatalog, name: &str) -> Result<&'a Stack, Failure> {
    let st = catalog.stacks.get(name).ok_or_else(|| {
        let valid: Vec<&str> = catalog.stacks.keys().map(String::as_str).collect();
        Failure::Input(anyhow!(
            "unknown stack '{name}'; valid: {}",
            valid.join(", ")
        ))
    })?;
    say_notes(st);
    Ok(st)
}

/// Connects to the engine and removes what killed runs left behind, saying so.
async fn connect() -> Result<Engine, Failure> {
    connect_to(None).await
}

/// Connects to the engines `--engine` names (none: the default one), each as `connect`.
async fn connect_all(urls: &[String]) -> Result<Vec<Engine>, Failure> {
    if urls.is_empty() {
        return Ok(vec![connect().await?]);
    }
    let mut engines = Vec::new();
    for url in urls {
        if engines.iter().any(|e: &Engine| &e.url == url) {
            return Err(Failure::Input(anyhow!("--engine {url} is given twice")));
        }
        engines.push(connect_to(Some(url)).await?);
    }
    Ok(engines)
}

/// `connect`, to the engine at `url` (`None`: DOCKER_HOST, else the local socket).
async fn connect_to(url: Option<&str>) -> Result<Engine, Failure> {
    let engine = Engine::connect_to(url).await.engine()?;
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

/// `plan`: the cells in run order, their restarts and an estimate, or the estimates of
/// the shards; no engine calls.
async fn plan(args: PlanArgs, stacks: Option<&Path>) -> Result<Verdict, Failure> {
    let (m, cells, catalog) = load_cells(&args.matrix, stacks)?;
    let timings = load_timings(&args.timings).await?;
    let costs = Costs::new(&m, &catalog, &timings);
    let text = match (args.shard, args.shards) {
        (Some(s), _) => crate::plan::render::render_shard(&m, &cells, s, &costs),
        (None, Some(n)) => crate::plan::render::render_shards(
            &m,
            &cells,
            n as usize,
            usize::from(args.parallel),
            &costs,
        ),
        (None, None) => crate::plan::render::render(&m, &cells, &costs),
    };
    print!(
        "{text}{}",
        crate::plan::render::render_timings(&cells, &timings, &costs)
    );
    Ok(Verdict::Ok)
}

/// The cells of shard `s`, balanced by estimated time, said on stderr with its estimate.
fn one_shard(
    m: &Matrix,
    cells: &[Cell],
    catalog: &StackCatalog,
    timings: &Timings,
    s: Shard,
) -> Vec<Cell> {
    let costs = Costs::new(m, catalog, timings);
    let mine = crate::plan::shard::shard(cells, s.k, s.n, &costs);
    eprintln!(
        "racy-matrix: shard {s}: {} cells, estimated {} (shards balanced by {})",
        mine.len(),
        crate::plan::render::human(costs.total_s(&mine)),
        if timings.is_empty() {
            "the model's estimates".to_string()
        } else {
            format!(
                "the durations measured in {}",
                crate::plan::cost::sources_label(&timings.sources)
            )
        }
    );
    mine
}

/// `run`: measures every cell (those a resumed directory lacks), then prints the table
/// and checks the expectations.
async fn run(args: RunArgs, stacks: Option<&Path>) -> Result<Verdict, Failure> {
    let (m, mut cells, catalog) = load_cells(&args.matrix, stacks)?;
    let timings = load_timings(&args.timings).await?;
    if let Some(s) = args.shard {
        cells = one_shard(&m, &cells, &catalog, &timings, s);
    }
    // The engines answer before the run directory is made, so that an engine that does
    // not leaves no directory that a rerun would take for a run to resume.
    let mut engines = connect_all(&args.engines).await?;
    let (mut dir, cells) = open_run_dir(&args, &m, cells, &catalog).await?;
    dir.expect = m.expect.clone();
    let output = dir.path.clone();
    let route = args.route.or(m.route).unwrap_or_default();
    for engine in &mut engines {
        engine.route = route;
    }
    keep_matrix(&dir, &args.matrix).await?;
    eprintln!(
        "racy-matrix: Docker Engine API {}; {} cells x {} repetitions of {} requests; route {}; results in {}",
        engines[0].api_version,
        cells.len(),
        m.repetitions,
        m.requests,
        route.how(),
        output.display()
    );
    say_engines(&engines, usize::from(args.parallel), cells.len());
    let opts = planned(&args, m, cells, catalog, &timings, engines.len());
    let run_id = RunId::new("").keeping(args.keep_up);
    dir.run_id = run_id.id.clone();
    let live = Live::new(&dir);
    let outcome = tokio::select! {
        r = runner::run(&engines, &opts, &mut dir, &run_id, &live) => r,
        _ = interrupted() => Err(anyhow!(
            "interrupted; the {} cells measured so far are in {}\n  resume with: racy-matrix run {} --resume {}",
            dir.cells.len(),
            output.display(),
            args.matrix.display(),
            output.display()
        )),
    };
    // Whatever happened, nothing of this run stays behind (unless --keep-up).
    let removed = if args.keep_up && outcome.is_ok() {
        Ok(())
    } else {
        remove_run_everywhere(&engines, &run_id).await
    };
    live.finish();
    // The result files, rendered once more from every stored cell, however the run ended.
    let rendered = export::write_all(&dir.path, &RunReport::of(&dir));
    if let Err(e) = dir.close().await {
        eprintln!("warning: closing the results store: {e:#}");
    }
    removed?;
    rendered.local()?;
    if !dir.cells.is_empty() {
        println!("{}", export::terminal_table(&RunReport::of(&dir)));
    }
    outcome.engine()?;
    println!("results: {}", output.display());
    let verdict = check_expectations(&args.matrix, &opts.matrix, &dir.cells, args.shard.is_none());
    let failed = dir.cells.iter().filter(|c| c.error.is_some()).count();
    if failed > 0 {
        // Measured cells are kept; the failed ones run again with --resume.
        eprintln!(
            "{failed} cell(s) could not be measured (the reasons are in the results); once fixed, run them with: racy-matrix run {} --resume {}",
            args.matrix.display(),
            output.display()
        );
        return Ok(Verdict::CellsFailed);
    }
    Ok(verdict)
}

/// The plan of a run: the cells in slices, one per stack instance (`--parallel`, at least
/// one per engine), balanced by estimated time.
fn planned(
    args: &RunArgs,
    matrix: Matrix,
    cells: Vec<Cell>,
    catalog: StackCatalog,
    timings: &Timings,
    engines: usize,
) -> RunOptions {
    let n = crate::plan::shard::instances(usize::from(args.parallel), engines, cells.len());
    let slices = crate::plan::shard::slices(&cells, n, &Costs::new(&matrix, &catalog, timings));
    RunOptions {
        matrix,
        slices,
        catalog,
        keep_up: args.keep_up,
        retries: args.retries,
        fail_fast: args.fail_fast,
    }
}

/// Says, for a run over several engines, how its instances are placed on them.
fn say_engines(engines: &[Engine], parallel: usize, cells: usize) {
    if engines.len() < 2 {
        return;
    }
    let n = crate::plan::shard::instances(parallel, engines.len(), cells);
    let each: Vec<String> = engines
        .iter()
        .map(|e| {
            let remote = if e.local { "" } else { ", remote" };
            format!("{} (API {}{remote})", e.url, e.api_version)
        })
        .collect();
    eprintln!(
        "racy-matrix: {n} stack instances over {} engines, in turn: {}",
        engines.len(),
        each.join(", ")
    );
}

/// Removes everything of one run from every engine it ran on (see `remove_run`).
async fn remove_run_everywhere(engines: &[Engine], run_id: &RunId) -> Result<(), Failure> {
    let mut removed = Ok(());
    for engine in engines {
        if let Err(e) = remove_run(engine, run_id).await {
            removed = Err(e);
        }
    }
    removed
}

/// The run directory of a `run`: the one `--resume` names (checked against the matrix,
/// with the cells it already holds taken out), or a new one.
async fn open_run_dir(
    args: &RunArgs,
    m: &Matrix,
    mut cells: Vec<Cell>,
    catalog: &StackCatalog,
) -> Result<(RunDir, Vec<Cell>), Failure> {
    if let Some(from) = &args.resume {
        let dir = RunDir::load(from).await.input()?;
        let before = matrix::load(&from.join(results::MATRIX_FILE), catalog)?;
        let shard_before = dir.shard.as_deref();
        let shard_now = args.shard.map(|s| s.to_string());
        check_resumable(&before, m, shard_before, shard_now.as_deref())
            .map_err(|e| anyhow!("cannot resume {}: {e}", from.display()))
            .input()?;
        let done = dir.done();
        let total = cells.len();
        cells.retain(|c| !done.contains(&c.key()));
        eprintln!(
            "racy-matrix: resuming {}: {} of {total} cells done, {} to run",
            from.display(),
            total - cells.len(),
            cells.len()
        );
        return Ok((dir, cells));
    }
    let output = args.output.clone().unwrap_or_else(|| {
        let now = chrono::Local::now().format("%Y%m%d-%H%M%S");
        PathBuf::from("results").join(format!("{}-{now}", m.name))
    });
    let mut dir = RunDir::create(&output, &m.name).await.input()?;
    dir.shard = args.shard.map(|s| s.to_string());
    Ok((dir, cells))
}

/// Keeps the matrix file's text in the store and beside it, as `matrix.yaml`.
async fn keep_matrix(dir: &RunDir, matrix: &Path) -> Result<(), Failure> {
    let text = std::fs::read_to_string(matrix)
        .with_context(|| format!("reading {}", matrix.display()))
        .input()?;
    dir.save_matrix(&text).await.local()?;
    // Written from the text already read, through a temporary file: resuming with the
    // run directory's own copy of the matrix must not empty it.
    results::write_atomically(&dir.path.join(results::MATRIX_FILE), text.as_bytes())
        .context("copying the matrix into the output directory")
        .local()
}

/// Removes everything of one run. A second Ctrl-C gives the removal 3 more seconds, then
/// leaves; the next racy-matrix command removes what is left, as for any run whose
/// process is gone.
async fn remove_run(engine: &Engine, run_id: &RunId) -> Result<(), Failure> {
    let filter = format!("{RUN_LABEL}={}", run_id.id);
    let cleanup = engine.remove_labelled(&filter);
    tokio::pin!(cleanup);
    let removed = tokio::select! {
        r = &mut cleanup => Some(r),
        _ = interrupted() => None,
    };
    match removed {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => {
            eprintln!("warning: cleanup of run {} failed: {e:#}", run_id.id);
            Ok(())
        }
        None => {
            let done = tokio::time::timeout(Duration::from_secs(3), &mut cleanup).await;
            if !matches!(done, Ok(Ok(_))) {
                eprintln!(
                    "interrupted again: leaving; the next racy-matrix command (e.g. `racy-matrix clean`) removes what is left of run {}",
                    run_id.id
                );
            }
            Err(Failure::Engine(anyhow!("interrupted twice")))
        }
    }
}

/// A stack started by `up` or `check`, and what removing it or scrubbing its errors needs.
struct Started {
    engine: Engine,
    dep: Deployment,
    run: RunId,
    redactor: Redactor,
}

impl Started {
    /// `text` without the database passwords.
    fn scrub(&self, text: &str) -> String {
        self.redactor.clean(text)
    }
}

/// Starts one stack (its variables from `--set`, the rest their defaults); a start that
/// fails or is interrupted leaves nothing behind.
async fn start_one(
    name: &str,
    set: Vec<(String, String)>,
    stacks: Option<&Path>,
    prefix: &str,
) -> Result<Started, Failure> {
    let catalog = catalog(&stacks_root(stacks, None))?;
    let st = one_stack(&catalog, name)?;
    let mut vars: BTreeMap<String, String> = set.into_iter().collect();
    let engine = connect().await?;
    let mut say = |step: Step| eprintln!("  {step}");
    let base = crate::deploy::image::ensure_base(&engine, &mut say)
        .await
        .engine()?;
    vars.entry("BASE_IMAGE".into()).or_insert(base);
    vars.entry("amount".into()).or_insert("100".into());
    vars.entry("db_password".into())
        .or_insert_with(runner::random_password);
    // the stack may take its password from its own environment instead
    let driver = st.driver_for(&vars).input()?;
    let redactor = Redactor::of_instance(&vars, Some(&driver));
    let run = RunId::new(prefix);
    let started = tokio::select! {
        d = Deployment::start(&engine, st, &run, vars, &mut say) => d,
        _ = interrupted() => Err(anyhow!("interrupted while stack {name} was starting; nothing of it is left")),
    };
    match started {
        Ok(dep) => Ok(Started {
            engine,
            dep,
            run,
            redactor,
        }),
        Err(e) => {
            // What the engine is still creating is awaited, then removed.
            let _ = engine
                .remove_labelled(&format!("{RUN_LABEL}={}", run.id))
                .await;
            let e = anyhow!("{}", redactor.clean(&format!("{e:#}")));
            Err(Failure::Engine(e))
        }
    }
}

/// `up`: starts one stack and prints where it answers.
async fn up(
    name: &str,
    set: Vec<(String, String)>,
    stacks: Option<&Path>,
) -> Result<Verdict, Failure> {
    let Started { dep, run, .. } = start_one(name, set, stacks, "up-").await?;
    println!("stack {name} is up (run {})", run.id);
    println!("  app:      http://{}/", dep.published);
    for (endpoint, ep) in &dep.driver.endpoints {
        println!(
            "    {:<32} {} http://{}{}",
            endpoint, ep.method, dep.published, ep.path
        );
    }
    println!(
        "  database: {} (password not shown; choose one with --set db_password=...)",
        crate::input::redact::url(&dep.published_db_url)
    );
    println!("  containers: {:?}", dep.container_names());
    println!("remove it with: racy-matrix down");
    Ok(Verdict::Ok)
}

/// `check`: starts one stack, tries reset, observe and one request per endpoint, says
/// what works and what does not, and removes the stack (also on Ctrl-C).
async fn check(
    name: &str,
    set: Vec<(String, String)>,
    stacks: Option<&Path>,
) -> Result<Verdict, Failure> {
    let started = start_one(name, set, stacks, "check-").await?;
    println!("ok    start: stack {name} is up, every service ready");
    let say = |line: &str| println!("{}", started.scrub(line));
    let outcome = tokio::select! {
        o = crate::run::check::check(&started.dep, &say) => Some(o),
        _ = interrupted() => None,
    };
    let Started {
        engine, dep, run, ..
    } = started;
    if let Err(e) = dep.shutdown().await {
        eprintln!(
            "warning: removing stack {name} failed ({e:#}); `racy-matrix clean` removes what is left"
        );
        let _ = engine
            .remove_labelled(&format!("{RUN_LABEL}={}", run.id))
            .await;
    }
    match outcome {
        None => Err(Failure::Engine(anyhow!(
            "interrupted; the stack is removed"
        ))),
        Some(failed) if failed.is_empty() => {
            println!(
                "all checks passed: next, `racy-matrix plan MATRIX` with a matrix naming stack {name}"
            );
            Ok(Verdict::Ok)
        }
        Some(failed) => Err(Failure::Engine(anyhow!(
            "{} of the checks failed ({}): fix the stack's files and run `racy-matrix check {name}` again",
            failed.len(),
            failed.join(", ")
        ))),
    }
}

/// `down` (`only_up`: the stacks of `up`) and `clean` (everything labelled): removes the
/// containers, networks and volumes of those runs.
async fn remove_runs(only_up: bool) -> Result<Verdict, Failure> {
    let engine = connect().await?;
    let labelled = engine.labelled_all(RUN_LABEL).await.engine()?;
    let mut ids: Vec<String> = labelled
        .iter()
        .filter_map(|(_, l)| l.get(RUN_LABEL).cloned())
        .filter(|id| !only_up || id.starts_with("up-"))
        .collect();
    ids.sort();
    ids.dedup();
    let (mut containers, mut networks) = (0, 0);
    for id in &ids {
        let (c, n) = engine
            .remove_labelled(&format!("{RUN_LABEL}={id}"))
            .await
            .engine()?;
        containers += c;
        networks += n;
    }
    println!(
        "removed {containers} containers and {networks} networks of {} runs",
        ids.len()
    );
    Ok(Verdict::Ok)
}

/// `report`: renders a run directory to stdout and checks its matrix's expectations;
/// `axes` are the html heatmaps' `--x` and `--y`.
async fn report(
    dir: &Path,
    format: Format,
    axes: [Option<String>; 2],
    stacks: Option<&Path>,
) -> Result<Verdict, Failure> {
    let Finished {
        run,
        matrix: m,
        matrix_file,
    } = finished::open(dir, stacks, Matrixed::IfPresent).await?;
    let [x, y] = axes;
    let exporter: Box<dyn export::Exporter> = match format {
        Format::Html => Box::new(
            crate::report::html::Html::with_axes(&run.cells, x, y)
                .map_err(|e| Failure::Input(anyhow!(e)))?,
        ),
        _ if x.is_some() || y.is_some() => {
            return Err(Failure::Input(anyhow!(
                "--x and --y choose the axes of --format html's heatmaps"
            )));
        }
        _ => export::exporter(format),
    };
    // The run's own copy of its matrix says what must hold.
    let bytes = exporter.render(&RunReport::of(&run)).local()?;
    use std::io::Write;
    std::io::stdout().write_all(&bytes).local()?;
    let Some(m) = m else {
        return Ok(Verdict::Ok);
    };
    Ok(check_expectations(
        &matrix_file,
        &m,
        &run.cells,
        run.shard.is_none(),
    ))
}

/// `explain`: the story of every lost update of a run (or of one cell).
async fn explain(dir: &Path, only: Option<usize>) -> Result<Verdict, Failure> {
    let run = finished::open(dir, None, Matrixed::No).await?.run;
    let cells = &run.cells;
    if let Some(n) = only.filter(|n| *n == 0 || *n > cells.len()) {
        return Err(Failure::Input(anyhow!(
            "cell {n} is not in {} (it has cells 1 to {})",
            dir.display(),
            cells.len()
        )));
    }
    let mut out = String::new();
    for (i, c) in cells.iter().enumerate() {
        if only.is_none_or(|n| n == i + 1) {
            out.push_str(&crate::measure::explain::render_cell(i + 1, c));
        }
    }
    use std::io::Write;
    std::io::stdout().write_all(out.as_bytes()).local()?;
    Ok(Verdict::Ok)
}

/// `claims`: the claims of each run's own matrix, measured on its cells, as one table.
async fn claims(dirs: &[PathBuf], stacks: Option<&Path>) -> Result<Verdict, Failure> {
    let mut all = Vec::new();
    for dir in dirs {
        let Finished { run, matrix, .. } = finished::open(dir, stacks, Matrixed::Required).await?;
        let m = matrix.expect("a required matrix is read");
        all.extend(crate::measure::claims::claims(
            &m.expect, &run.cells, m.amount,
        ));
    }
    if all.is_empty() {
        return Err(Failure::Input(anyhow!(
            "no expectation of these runs' matrices states a claim (`claim:` in `expect`)"
        )));
    }
    use std::io::Write;
    std::io::stdout()
        .write_all(crate::measure::claims::markdown(&all).as_bytes())
        .local()?;
    Ok(Verdict::Ok)
}

/// `merge`: run directories (e.g. shards) into a new one.
async fn merge(dirs: &[PathBuf], output: &Path) -> Result<Verdict, Failure> {
    let mut loaded = Vec::new();
    for d in dirs {
        loaded.push(finished::open(d, None, Matrixed::No).await?.run);
    }
    let merged = results::merge(&loaded, output).await.input()?;
    let _ = merged.close().await;
    export::write_all(&merged.path, &RunReport::of(&merged)).local()?;
    println!(
        "merged {} cells from {} directories into {}",
        merged.cells.len(),
        dirs.len(),
        output.display()
    );
    Ok(Verdict::Ok)
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

/// Checks a matrix's expectations against measured cells and prints the verdict.
fn check_expectations(
    file: &Path,
    m: &Matrix,
    cells: &[crate::measure::cell::CellResult],
    complete: bool,
) -> Verdict {
    if m.expect.is_empty() {
        return Verdict::Ok;
    }
    let (checked, misses) = crate::measure::expect::check(&m.expect, cells, complete);
    let reported = m.expect.iter().filter(|e| !e.required).count();
    let also = if reported > 0 {
        format!(" ({reported} more only reported: `racy-matrix claims` shows them)")
    } else {
        String::new()
    };
    if misses.is_empty() {
        eprintln!(
            "expectations: all {} held over {checked} checked cells{also}",
            m.expect.len() - reported
        );
        return Verdict::Ok;
    }
    eprintln!("expectations: {} missed", misses.len());
    for miss in &misses {
        eprintln!("  {}: {miss}", file.display());
    }
    Verdict::ExpectationMissed
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_kind_of_outcome() {
        let code = |o: Result<Verdict, Failure>| exit_code(&o);
        assert_eq!(code(Ok(Verdict::Ok)), 0);
        assert_eq!(code(Ok(Verdict::ExpectationMissed)), 1);
        assert_eq!(code(Ok(Verdict::Changed)), 1);
        assert_eq!(code(Err(Failure::Input(anyhow!("bad matrix")))), 2);
        assert_eq!(code(Ok(Verdict::CellsFailed)), 3);
        assert_eq!(code(Err(Failure::Engine(anyhow!("no daemon")))), 3);
        assert_eq!(code(Err(Failure::Local(anyhow!("disk full")))), 4);
        // a local failure is not reported as the engine's
        let stdout_gone: Result<(), std::io::Error> = Err(std::io::ErrorKind::BrokenPipe.into());
        assert_eq!(code(stdout_gone.local().map(|_| Verdict::Ok)), 4);
    }

    #[test]
    fn arguments_are_typed_by_clap() {
        let cli = Cli::try_parse_from(["racy-matrix", "report", "d", "--format", "markdown"])
            .expect("markdown is an alias of md");
        assert!(matches!(
            cli.command,
            Command::Report {
                format: Format::Markdown,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["racy-matrix", "plan", "m", "--shard", "3/2"]).is_err());
        let cli = Cli::try_parse_from(["racy-matrix", "plan", "m", "--shard", "2/3"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Plan(PlanArgs {
                shard: Some(Shard { k: 2, n: 3 }),
                ..
            })
        ));
        let cli = Cli::try_parse_from([
            "racy-matrix",
            "plan",
            "m",
            "--shards",
            "16",
            "--timings",
            "a",
            "b",
        ])
        .unwrap();
        assert!(matches!(
            &cli.command,
            Command::Plan(PlanArgs { shards: Some(16), timings, .. }) if timings.len() == 2
        ));
        let both = [
            "racy-matrix",
            "plan",
            "m",
            "--shard",
            "1/2",
            "--shards",
            "2",
        ];
        assert!(Cli::try_parse_from(both).is_err());
        assert!(Cli::try_parse_from(["racy-matrix", "plan", "m", "--shards", "0"]).is_err());
        // run takes timings to balance its shard and its --parallel slices
        assert!(Cli::try_parse_from(["racy-matrix", "run", "m", "--timings", "d"]).is_ok());
        // plan's --parallel sizes the shards' wall times: it needs --shards
        assert!(Cli::try_parse_from(["racy-matrix", "plan", "m", "--parallel", "2"]).is_err());
        let sized = [
            "racy-matrix",
            "plan",
            "m",
            "--shards",
            "16",
            "--parallel",
            "2",
        ];
        assert!(matches!(
            &Cli::try_parse_from(sized).unwrap().command,
            Command::Plan(PlanArgs {
                shards: Some(16),
                parallel: 2,
                ..
            })
        ));
        let sharded = [
            "racy-matrix",
            "run",
            "m",
            "--shard",
            "1/2",
            "--timings",
            "d",
        ];
        assert!(Cli::try_parse_from(sharded).is_ok());
        assert!(Cli::try_parse_from(["racy-matrix", "up", "s", "--set", "novalue"]).is_err());
    }
}
