//! The run loop of DESIGN §7: for each cell, reconfigure what changed, then per
//! repetition reset, observe, burst, quiesce, observe; persist after every cell.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::burst::{self, BurstSpec, HttpRequest};
use crate::deploy::{Deployment, RunId};
use crate::engine::Engine;
use crate::export::CellResult;
use crate::matrix::{Cell, Matrix, parse_delay};
use crate::measure::{self, Outcome, Repetition};
use crate::results::RunDir;
use crate::stack::{Stack, StackCatalog};

/// How a run is asked for.
pub struct RunOptions {
    /// The matrix, loaded and checked.
    pub matrix: Matrix,
    /// The cells to run, in order.
    pub cells: Vec<Cell>,
    /// Stacks by name.
    pub catalog: StackCatalog,
    /// Leave the last stack running.
    pub keep_up: bool,
    /// How many times a failed cell is retried on a fresh stack.
    pub retries: u32,
    /// Stop at the first cell that still fails after its retries.
    pub fail_fast: bool,
    /// Independent stack instances measuring cells side by side (1: one at a time).
    pub parallel: usize,
}

/// The variables a cell gives its stack: its axes plus what the tool provides.
pub fn cell_vars(
    cell: &Cell,
    matrix: &Matrix,
    base_image: &str,
    db_password: &str,
) -> BTreeMap<String, String> {
    let mut vars = cell.axes.clone();
    vars.insert("amount".into(), matrix.amount.to_string());
    vars.insert("BASE_IMAGE".into(), base_image.to_string());
    vars.insert("db_password".into(), db_password.to_string());
    vars
}

/// A random password for one run's databases.
pub fn random_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// The client timeout of a cell: the matrix's `timeout_ms`, else long enough for every
/// request to be served one after another at the longest delay, plus 30 s.
pub fn client_timeout(matrix: &Matrix, cell: &Cell) -> Duration {
    if let Some(ms) = matrix.timeout_ms {
        return Duration::from_millis(ms);
    }
    let hi = cell
        .get("delay_ms")
        .and_then(|d| parse_delay(d).ok())
        .map(|(_, hi)| hi)
        .unwrap_or(10_000);
    Duration::from_millis(hi * u64::from(matrix.requests) + 30_000)
}

/// Runs every cell, writing the run directory after each one. The caller removes what
/// the run created (everything carries the run label), on success, error or interrupt.
pub async fn run(
    engine: &Engine,
    opts: &RunOptions,
    dir: &mut RunDir,
    run_id: &RunId,
) -> Result<()> {
    dir.run_id = run_id.id.clone();
    dir.save_meta().await?;
    run_cells(engine, opts, dir, run_id).await
}

async fn run_cells(
    engine: &Engine,
    opts: &RunOptions,
    dir: &mut RunDir,
    run_id: &RunId,
) -> Result<()> {
    let m = &opts.matrix;
    let bar = progress_bar((opts.cells.len() * m.repetitions as usize) as u64);
    let mut say = |msg: &str| bar.set_message(msg.chars().take(100).collect::<String>());
    let base = crate::image::ensure_base(engine, &mut say).await?;
    let password = random_password();
    let n = opts.parallel.clamp(1, opts.cells.len().max(1));
    if n > 1 {
        // Build every image once, before the instances race to build the same ones.
        let mut seen = std::collections::BTreeSet::new();
        for cell in &opts.cells {
            if seen.insert(cell.stack.clone()) {
                let stack = &opts.catalog.stacks[&cell.stack];
                let vars = cell_vars(cell, m, &base, &password);
                crate::deploy::build_images(engine, stack, &vars, &mut say).await?;
            }
        }
    }
    // Contiguous slices of the run order, so each instance keeps the restart order.
    let dir = tokio::sync::Mutex::new(dir);
    let chunks: Vec<Vec<Cell>> = (1..=n)
        .map(|k| crate::matrix::shard(&opts.cells, k, n))
        .collect();
    let ctx = Chunk {
        engine,
        opts,
        dir: &dir,
        run_id,
        bar: &bar,
        base: &base,
        password: &password,
    };
    futures_util::future::try_join_all(chunks.iter().map(|cells| ctx.run(cells))).await?;
    bar.finish_and_clear();
    Ok(())
}

/// What the cells of one stack instance share with the rest of the run.
struct Chunk<'a> {
    engine: &'a Engine,
    opts: &'a RunOptions,
    dir: &'a tokio::sync::Mutex<&'a mut RunDir>,
    run_id: &'a RunId,
    bar: &'a ProgressBar,
    base: &'a str,
    password: &'a str,
}

impl Chunk<'_> {
    /// Runs `cells` in order on one stack instance.
    async fn run(&self, cells: &[Cell]) -> Result<()> {
        let (engine, opts, run_id, bar) = (self.engine, self.opts, self.run_id, self.bar);
        let m = &opts.matrix;
        let mut current: Option<Deployment> = None;
        // Stacks that failed to start twice in a row for the same reason: their remaining
        // cells fail at once (and `--resume` runs them once the cause is fixed).
        let mut unstartable: BTreeMap<String, String> = BTreeMap::new();
        for cell in cells {
            let stack: &Stack = opts
                .catalog
                .stacks
                .get(&cell.stack)
                .ok_or_else(|| anyhow!("unknown stack {}", cell.stack))?;
            let vars = cell_vars(cell, m, self.base, self.password);
            if let Some(reason) = unstartable.get(&cell.stack) {
                let err = format!(
                    "not run: stack {} failed to start twice for the same reason: {reason}",
                    cell.stack
                );
                bar.suspend(|| eprintln!("cell {} {}", cell.label(), first_line(&err)));
                self.dir
                    .lock()
                    .await
                    .push(failed_cell(cell, m, err, 0))
                    .await?;
                bar.inc(u64::from(m.repetitions));
                continue;
            }
            let secrets = [
                self.password.to_string(),
                stack
                    .driver(&vars)
                    .map(|x| x.database.password)
                    .unwrap_or_default(),
            ];
            let scrub = |text: String| {
                secrets
                    .iter()
                    .fold(text, |t, secret| crate::probe::scrub(&t, secret))
            };
            let mut start_failures: Vec<String> = Vec::new();
            let mut attempt = 0;
            let result = loop {
                attempt += 1;
                bar.set_message(cell.label());
                let mut counted = 0;
                let outcome = attempt_cell(
                    engine,
                    &mut current,
                    stack,
                    run_id,
                    &vars,
                    m,
                    cell,
                    bar,
                    &mut counted,
                )
                .await;
                match outcome {
                    Ok(reps) => {
                        break CellResult {
                            cell: cell.clone(),
                            repetitions: m.repetitions,
                            requests: m.requests,
                            metrics: Some(measure::compute(
                                &reps,
                                m.amount,
                                cell.wait_ms(),
                                stack
                                    .x
                                    .endpoints
                                    .get(cell.endpoint())
                                    .map(|e| e.check)
                                    .unwrap_or_default(),
                                // checked when the driver block was interpolated
                                current
                                    .as_ref()
                                    .and_then(|d| d.driver.handler_count().ok().flatten()),
                            )),
                            error: None,
                            attempts: attempt,
                            reps,
                        };
                    }
                    Err((stage, e)) => {
                        bar.dec(counted);
                        if stage == Stage::Start {
                            start_failures.push(reason_of(&e));
                        }
                        // Whatever broke, the next attempt (or cell) starts on a fresh stack.
                        let logs = match current.take() {
                            Some(d) => {
                                let logs = d.all_logs(10).await;
                                let _ = d.shutdown().await;
                                logs
                            }
                            None => String::new(),
                        };
                        let err = scrub(format!("{e:#}\n{logs}"));
                        engine
                            .ping(Duration::from_secs(60))
                            .await
                            .with_context(|| format!("cell {} failed: {err}", cell.label()))?;
                        if attempt <= opts.retries {
                            bar.suspend(|| {
                                eprintln!(
                                    "cell {} failed (attempt {attempt}), retrying on a fresh stack: {}",
                                    cell.label(),
                                    first_line(&err)
                                )
                            });
                            continue;
                        }
                        if let [.., a, b] = start_failures.as_slice()
                            && a == b
                            && attempt == start_failures.len() as u32
                        {
                            unstartable.insert(cell.stack.clone(), scrub(a.clone()));
                        }
                        let failed = failed_cell(cell, m, err.clone(), attempt);
                        if opts.fail_fast {
                            self.dir.lock().await.push(failed).await?;
                            bar.abandon();
                            bail!("cell {} failed (--fail-fast): {err}", cell.label());
                        }
                        bar.suspend(|| {
                            eprintln!("cell {} failed: {}", cell.label(), first_line(&err))
                        });
                        break failed;
                    }
                }
            };
            let done = result.metrics.is_some();
            self.dir.lock().await.push(result).await?;
            if !done {
                // a failed cell's repetitions count as done for the progress bar
                bar.inc(u64::from(m.repetitions));
            }
        }
        if let Some(d) = current {
            if opts.keep_up {
                bar.suspend(|| println!("stack {} left up: http://{}/", d.stack.name, d.target));
            } else {
                d.shutdown().await?;
            }
        }
        Ok(())
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The record of a cell that could not be measured.
fn failed_cell(cell: &Cell, m: &Matrix, error: String, attempts: u32) -> CellResult {
    CellResult {
        cell: cell.clone(),
        repetitions: m.repetitions,
        requests: m.requests,
        metrics: None,
        error: Some(error),
        attempts,
        reps: vec![],
    }
}

/// Where an attempt at a cell failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Bringing a fresh stack up.
    Start,
    /// Reconfiguring the running stack, or measuring.
    Measure,
}

/// One line that names why a start failed, the same line for the same cause: a service
/// that died names the service and what happened to it; any other error its first line,
/// with numbers (ports, seconds, ids) blanked out.
fn reason_of(e: &anyhow::Error) -> String {
    match e.downcast_ref::<crate::deploy::ServiceDied>() {
        Some(died) => died.reason(),
        None => first_line(&format!("{e:#}"))
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect(),
    }
}

/// Brings the stack to the cell's configuration (starting it if needed) and measures.
#[allow(clippy::too_many_arguments)]
async fn attempt_cell(
    engine: &Engine,
    current: &mut Option<Deployment>,
    stack: &Stack,
    run_id: &RunId,
    vars: &BTreeMap<String, String>,
    m: &Matrix,
    cell: &Cell,
    bar: &ProgressBar,
    counted: &mut u64,
) -> Result<Vec<Repetition>, (Stage, anyhow::Error)> {
    let mut say = |msg: &str| bar.set_message(format!("{}: {msg}", cell.stack));
    let measure = |e| (Stage::Measure, e);
    let dep = match current.take() {
        Some(mut d) if d.stack.name == cell.stack => {
            let reconfigured = d.reconfigure(vars.clone(), &mut say).await;
            // keep the deployment either way, so a failure can show its logs
            let d = current.insert(d);
            reconfigured.map_err(measure)?;
            d
        }
        other => {
            if let Some(d) = other {
                d.shutdown().await.map_err(measure)?;
            }
            let d = Deployment::start(engine, stack, run_id, vars.clone(), &mut say)
                .await
                .map_err(|e| (Stage::Start, e))?;
            current.insert(d)
        }
    };
    bar.set_message(cell.label());
    run_cell(dep, m, cell, bar, counted).await.map_err(measure)
}

async fn run_cell(
    dep: &Deployment,
    m: &Matrix,
    cell: &Cell,
    bar: &ProgressBar,
    counted: &mut u64,
) -> Result<Vec<Repetition>> {
    let x = &dep.driver;
    let endpoint = x
        .endpoints
        .get(cell.endpoint())
        .ok_or_else(|| anyhow!("stack {} has no endpoint {}", cell.stack, cell.endpoint()))?;
    let fields: Vec<(String, String)> = x
        .request
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let spec = BurstSpec {
        addr: dep.target,
        request: HttpRequest::form(&endpoint.method, "localhost", &endpoint.path, &fields),
        requests: m.requests,
        wait_ms: cell.wait_ms(),
        timeout: client_timeout(m, cell),
        release: Default::default(),
    };
    let db = dep
        .db
        .as_ref()
        .context("the stack has no database connection")?;
    let plain = spec.request.clone();
    let mut reps = Vec::with_capacity(m.repetitions as usize);
    for r in 0..m.repetitions {
        // a container that died since the last burst (or between cells) fails the cell
        if let Some(died) = dep.broken().await {
            return Err(died.into());
        }
        db.reset().await?;
        let before = db.observe(endpoint.check).await?;
        // Every request of the burst carries its token, so that the app can say how many
        // of them it accepted (see `quiesce`).
        let token = format!("{:016x}", rand::random::<u64>());
        let spec = BurstSpec {
            request: plain.with_header(BURST_HEADER, &token),
            ..spec.clone()
        };
        let shot = burst::fire(&spec, r).await;
        if let Some(died) = dep.broken().await {
            return Err(died.into());
        }
        if shot.records.iter().all(|r| r.outcome != Outcome::Response) {
            bail!(
                "repetition {r}: no request got a response ({})",
                shot.records
                    .first()
                    .and_then(|r| r.error.clone())
                    .unwrap_or_default()
            );
        }
        if let Some(path) = &x.target.quiesce {
            let expected = Accepts::of(&shot.records);
            let limit = spec.timeout + Duration::from_secs(30);
            quiesce(dep, path, &token, expected, limit).await?;
        }
        let after = db.observe(endpoint.check).await?;
        reps.push(Repetition {
            before,
            after,
            burst_ms: shot.burst_ms,
            records: shot.records,
        });
        bar.inc(1);
        *counted += 1;
    }
    Ok(reps)
}

/// The request header that carries a burst's token.
pub const BURST_HEADER: &str = "X-Racy-Burst";
/// How long the app's counts must stay the same, with nothing in flight, before a burst
/// whose every request the client cannot vouch for is taken as finished. A request waiting
/// in a listen backlog is taken within milliseconds once every handler is idle, so a
/// quarter second of stillness means nothing more is coming.
const STILL_FOR: Duration = Duration::from_millis(250);

/// How many requests of a burst the app must have accepted, and how many more it may
/// have: a timeout, a connection error or a gateway error from the proxy itself (502-504
/// with no answer of the app's) may or may not have reached it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accepts {
    /// Requests the app answered.
    pub sure: i64,
    /// Requests that may have reached it.
    pub maybe: i64,
}

impl Accepts {
    /// Counts a burst's records.
    pub fn of(records: &[measure::RequestRecord]) -> Accepts {
        let mut a = Accepts::default();
        for r in records {
            let from_proxy = matches!(r.status, Some(502..=504))
                && !r.body.as_ref().is_some_and(|b| b.is_object());
            match r.outcome {
                Outcome::Response if !from_proxy => a.sure += 1,
                _ => a.maybe += 1,
            }
        }
        a
    }

    /// Whether a reading of the app's counts (requests in flight, requests of the burst
    /// accepted) shows the burst finished on the server: nothing in flight and every
    /// request accounted for (`Some(true)`), nothing in flight but some requests possibly
    /// never arrived (`Some(false)`: finished once that stays so for [`STILL_FOR`]), or
    /// not yet (`None`).
    pub fn finished(self, inflight: i64, accepted: Option<i64>) -> Option<bool> {
        if inflight != 0 {
            return None;
        }
        match accepted {
            Some(a) if a >= self.sure + self.maybe => Some(true),
            Some(a) if a < self.sure => None,
            _ => Some(false),
        }
    }
}

/// Waits until the server has finished every request of the burst: the app reports none
/// in flight on any replica and has accepted every request the client sent, including
/// requests the client gave up on while they waited in a queue. One reading of zero is
/// not enough (an idle replica answers 0 while another still has queued work), so where
/// the count cannot be complete the readings must stay still for [`STILL_FOR`]. The
/// stack's containers are watched meanwhile: one that dies fails the cell at once.
async fn quiesce(
    dep: &Deployment,
    path: &str,
    token: &str,
    expected: Accepts,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    let sep = if path.contains('?') { '&' } else { '?' };
    let req = HttpRequest::get("localhost", &format!("{path}{sep}burst={token}"));
    let mut last: Option<(i64, Option<i64>)> = None;
    let mut still_since = Instant::now();
    let mut watched = Instant::now();
    loop {
        let r = burst::send(dep.target, &req, Duration::from_secs(5)).await;
        let reading = r.as_ref().ok().and_then(|r| {
            let v = serde_json::from_slice::<serde_json::Value>(&r.body).ok()?;
            Some((
                v.get("inflight")?.as_i64()?,
                v.get("accepted").and_then(|a| a.as_i64()),
            ))
        });
        if let Some((inflight, accepted)) = reading {
            if last != reading {
                last = reading;
                still_since = Instant::now();
            }
            match expected.finished(inflight, accepted) {
                Some(true) => return Ok(()),
                Some(false) if still_since.elapsed() >= STILL_FOR => return Ok(()),
                _ => {}
            }
        }
        if watched.elapsed() >= crate::deploy::WATCH_EVERY {
            if let Some(died) = dep.broken().await {
                return Err(died.into());
            }
            watched = Instant::now();
        }
        if Instant::now() >= deadline {
            bail!(
                "requests still in flight after {:.0} s ({path} said {:?}; {} of the burst's requests answered, {} more possibly sent)",
                limit.as_secs_f64(),
                r.map(|r| String::from_utf8_lossy(&r.body).into_owned())
                    .unwrap_or_else(|e| e.to_string()),
                expected.sure,
                expected.maybe
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The progress bar of a run: hidden when stderr is not a terminal.
pub fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} reps  ETA {eta_precise}\n  {msg}",
        )
        .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
