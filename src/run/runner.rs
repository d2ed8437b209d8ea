//! The run loop (docs/architecture.md#a-cell-step-by-step): for each cell, reconfigure
//! what changed, then per repetition reset, observe, burst, quiesce, observe; persist
//! after every cell. It reports what happens as events and never prints.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::burst::http::{self, BurstSpec, HttpRequest};
use crate::deploy::deployment::{Deployment, RunId, StartFault};
use crate::deploy::engine::Engine;
use crate::deploy::progress::Step;
use crate::input::matrix::{Cell, Matrix, parse_delay};
use crate::input::redact::Redactor;
use crate::input::route::Route;
use crate::input::setup::Setup;
use crate::input::stack::{Stack, StackCatalog};
use crate::measure::cell::{CellResult, CellTiming};
use crate::measure::metrics::{self, Check, Outcome, Repetition};
use crate::run::events::{Events, RunEvent};
use crate::store::results::RunDir;

/// How a run is asked for.
pub struct RunOptions {
    /// The matrix, loaded and checked.
    pub matrix: Matrix,
    /// The plan: one slice of cells per stack instance, each in run order (the instances
    /// take the engines in turn).
    pub slices: Vec<Vec<Cell>>,
    /// Stacks by name.
    pub catalog: StackCatalog,
    /// Leave the last stack running.
    pub keep_up: bool,
    /// How many times a failed cell is retried on a fresh stack.
    pub retries: u32,
    /// Stop at the first cell that still fails after its retries.
    pub fail_fast: bool,
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

/// Runs every cell, committing each to the run directory as it ends and reporting to
/// `events`. The caller removes what the run created (everything carries the run label),
/// on success, error or interrupt.
pub async fn run(
    engines: &[Engine],
    opts: &RunOptions,
    dir: &mut RunDir,
    run_id: &RunId,
    events: &dyn Events,
) -> Result<()> {
    dir.run_id = run_id.id.clone();
    dir.save_meta().await?;
    let m = &opts.matrix;
    let first = engines
        .first()
        .ok_or_else(|| anyhow!("no engine to run on"))?;
    let cells = opts.slices.iter().map(Vec::len).sum::<usize>();
    events.send(RunEvent::Planned((cells * m.repetitions as usize) as u64));
    let mut say = |step: Step| events.send(RunEvent::Deploying { stack: None, step });
    let base = crate::deploy::image::ensure_base(first, &mut say).await?;
    let password = random_password();
    if opts.slices.len() > 1 {
        // Build every image once, before the instances race to build the same ones; the
        // other engines get copies of what the first one built.
        let mut seen = std::collections::BTreeSet::new();
        let mut tags = vec![base.clone()];
        for cell in opts.slices.iter().flatten() {
            if seen.insert(cell.stack.clone()) {
                let stack = &opts.catalog.stacks[&cell.stack];
                let vars = cell_vars(cell, m, &base, &password);
                tags.extend(
                    crate::deploy::deployment::build_images(first, stack, &vars, &mut say).await?,
                );
            }
        }
        for other in &engines[1..] {
            for tag in &tags {
                first.copy_image(other, tag, &mut say).await?;
            }
        }
    }
    let dir = tokio::sync::Mutex::new(dir);
    let ctx = Slice {
        opts,
        dir: &dir,
        events,
        base: &base,
        password: &password,
    };
    futures_util::future::try_join_all(opts.slices.iter().enumerate().map(|(k, cells)| {
        let ctx = &ctx;
        // instances take the engines in turn
        let engine = &engines[k % engines.len()];
        async move {
            let mut slot = EngineSlot {
                engine,
                run_id,
                events: ctx.events,
                matrix: &opts.matrix,
                cells,
                current: None,
            };
            ctx.run(&mut slot, cells).await
        }
    }))
    .await?;
    Ok(())
}

/// What a measured cell brought back from its stack instance.
pub struct Measured {
    /// Every repetition.
    pub reps: Vec<Repetition>,
    /// How many requests the instance serves at once (`x-racy.handlers`), if declared.
    pub handlers: Option<u64>,
    /// What brought the instance to the cell's configuration, and its wall seconds.
    pub setup: (Setup, f64),
    /// The route its requests took.
    pub route: Option<crate::input::route::Route>,
    /// The engine it ran on (its URL, or `local`).
    pub engine: Option<String>,
}

/// The run loop's view of one stack instance: what a slice of the cells needs of the
/// engine. [`EngineSlot`] does it with Docker; the loop's own bookkeeping (retries,
/// `--fail-fast`, stacks that cannot start, progress) is tested with a scripted one.
pub trait Slot {
    /// Brings the instance to the cell's variables (starting it, or reconfiguring the one
    /// running) and measures the cell, adding each finished repetition to `counted`.
    fn measure(
        &mut self,
        stack: &Stack,
        cell: &Cell,
        vars: &BTreeMap<String, String>,
        counted: &mut u64,
    ) -> impl Future<Output = Result<Measured, (Stage, anyhow::Error)>>;
    /// Removes the instance after a failure (the next attempt starts a fresh one) and
    /// returns its services' last log lines.
    fn discard(&mut self) -> impl Future<Output = String>;
    /// Waits for the engine to answer after a failure; an error ends the run.
    fn engine_answers(&self) -> impl Future<Output = Result<()>>;
    /// At the end of the slice: leaves the instance up (`keep`, returning where it
    /// answers) or removes it.
    fn finish(&mut self, keep: bool) -> impl Future<Output = Result<Option<String>>>;
}

/// A stack instance on the Docker Engine.
struct EngineSlot<'a> {
    engine: &'a Engine,
    run_id: &'a RunId,
    events: &'a dyn Events,
    matrix: &'a Matrix,
    /// The cells this instance measures: which services it starts (see
    /// `Stack::start_order_for`).
    cells: &'a [Cell],
    current: Option<Deployment>,
}

impl Slot for EngineSlot<'_> {
    async fn measure(
        &mut self,
        stack: &Stack,
        cell: &Cell,
        vars: &BTreeMap<String, String>,
        counted: &mut u64,
    ) -> Result<Measured, (Stage, anyhow::Error)> {
        let (engine, run_id, m, events) = (self.engine, self.run_id, self.matrix, self.events);
        let services = stack.start_order_for(
            self.cells
                .iter()
                .filter(|c| c.stack == stack.name)
                .map(|c| c.endpoint()),
        );
        let (reps, setup) = attempt_cell(
            engine,
            &mut self.current,
            stack,
            &services,
            run_id,
            vars,
            m,
            cell,
            events,
            counted,
        )
        .await?;
        let d = self.current.as_ref();
        // checked when the driver block was interpolated
        let handlers = d.and_then(|d| d.driver.handler_count().ok().flatten());
        let route = d.and_then(|d| d.route);
        if let (Setup::Start, Some(d), Some(route)) = (setup.0, d, route) {
            let to = match route {
                Route::Racer => d.inside,
                _ => d.target,
            };
            events.send(RunEvent::StackUp {
                stack: &stack.name,
                to: &to.to_string(),
                how: route.how(),
            });
        }
        Ok(Measured {
            reps,
            handlers,
            setup,
            route,
            engine: Some(engine.url.clone()),
        })
    }

    async fn discard(&mut self) -> String {
        match self.current.take() {
            Some(d) => {
                let logs = d.all_logs(10).await;
                let _ = d.shutdown().await;
                logs
            }
            None => String::new(),
        }
    }

    async fn engine_answers(&self) -> Result<()> {
        self.engine.ping(Duration::from_secs(60)).await
    }

    async fn finish(&mut self, keep: bool) -> Result<Option<String>> {
        let Some(d) = self.current.take() else {
            return Ok(None);
        };
        if keep {
            return Ok(Some(format!(
                "stack {} left up: http://{}/",
                d.stack.name, d.published
            )));
        }
        d.shutdown().await?;
        Ok(None)
    }
}

/// What the cells of one stack instance share with the rest of the run.
struct Slice<'a> {
    opts: &'a RunOptions,
    dir: &'a tokio::sync::Mutex<&'a mut RunDir>,
    events: &'a dyn Events,
    base: &'a str,
    password: &'a str,
}

/// How a cell ended after all its attempts.
struct Attempted {
    /// What is recorded for it.
    result: CellResult,
    /// Every attempt failed to start the stack, the last two for this same reason.
    unstartable: Option<String>,
}

impl Slice<'_> {
    /// Runs `cells` in order on one stack instance.
    async fn run<S: Slot>(&self, slot: &mut S, cells: &[Cell]) -> Result<()> {
        let (opts, events) = (self.opts, self.events);
        let m = &opts.matrix;
        // Stacks that failed to start twice in a row for the same reason: their remaining
        // cells fail at once (and `--resume` runs them once the cause is fixed).
        let mut unstartable: BTreeMap<String, String> = BTreeMap::new();
        for cell in cells {
            let stack: &Stack = opts
                .catalog
                .stacks
                .get(&cell.stack)
                .ok_or_else(|| anyhow!("unknown stack {}", cell.stack))?;
            let result = match unstartable.get(&cell.stack) {
                Some(reason) => {
                    let err = format!(
                        "not run: stack {} failed to start twice for the same reason: {reason}",
                        cell.stack
                    );
                    events.send(RunEvent::CellNotRun {
                        cell: &cell.label(),
                        reason: first_line(&err),
                    });
                    failed_cell(cell, m, err, 0)
                }
                None => {
                    let done = self.attempt(slot, stack, cell).await?;
                    if let Some(reason) = done.unstartable {
                        unstartable.insert(cell.stack.clone(), reason);
                    }
                    done.result
                }
            };
            let measured = result.metrics.is_some();
            let failed_fast = !measured && opts.fail_fast;
            let error = result.error.clone().unwrap_or_default();
            {
                let mut dir = self.dir.lock().await;
                dir.push(result).await?;
                if let Some(stored) = dir.cells.iter().find(|c| c.cell.key() == cell.key()) {
                    events.send(RunEvent::CellStored(stored));
                }
            }
            if failed_fast {
                bail!("cell {} failed (--fail-fast): {error}", cell.label());
            }
            if !measured {
                // a failed cell's repetitions are done too
                events.send(RunEvent::Settled(u64::from(m.repetitions)));
            }
        }
        if let Some(note) = slot.finish(opts.keep_up).await? {
            events.send(RunEvent::LeftUp(&note));
        }
        Ok(())
    }

    /// Measures one cell, retrying a failed attempt on a fresh instance up to
    /// `--retries` times. Only an engine that stops answering is an error.
    async fn attempt<S: Slot>(
        &self,
        slot: &mut S,
        stack: &Stack,
        cell: &Cell,
    ) -> Result<Attempted> {
        let (opts, events) = (self.opts, self.events);
        let m = &opts.matrix;
        let vars = cell_vars(cell, m, self.base, self.password);
        let redactor = Redactor::of_instance(&vars, stack.driver_for(&vars).ok().as_ref());
        let scrub = |text: String| redactor.clean(&text);
        // each failed start: the reason compared (numbers blanked) and the one said
        let mut start_failures: Vec<(StartFault, String)> = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            events.send(RunEvent::Status(&cell.label()));
            let mut counted = 0;
            let began = Instant::now();
            let (stage, e) = match slot.measure(stack, cell, &vars, &mut counted).await {
                Ok(measured) => {
                    let seconds = began.elapsed().as_secs_f64();
                    let result = measured_cell(stack, cell, m, measured, attempt, seconds);
                    return Ok(Attempted {
                        result,
                        unstartable: None,
                    });
                }
                Err(failure) => failure,
            };
            events.send(RunEvent::Unsettled(counted));
            if stage == Stage::Start {
                start_failures.push((
                    StartFault::of(&e),
                    first_line(&format!("{e:#}")).to_string(),
                ));
            }
            // Whatever broke, the next attempt (or cell) starts on a fresh stack.
            let logs = slot.discard().await;
            let err = scrub(format!("{e:#}\n{logs}"));
            slot.engine_answers()
                .await
                .with_context(|| format!("cell {} failed: {err}", cell.label()))?;
            if attempt <= opts.retries {
                events.send(RunEvent::Retrying {
                    cell: &cell.label(),
                    attempt,
                    error: first_line(&err),
                });
                continue;
            }
            let unstartable = match start_failures.as_slice() {
                [.., (a, _), (b, said)] if a == b && attempt == start_failures.len() as u32 => {
                    Some(scrub(said.clone()))
                }
                _ => None,
            };
            if !opts.fail_fast {
                events.send(RunEvent::CellFailed {
                    cell: &cell.label(),
                    error: first_line(&err),
                });
            }
            return Ok(Attempted {
                result: failed_cell(cell, m, err, attempt),
                unstartable,
            });
        }
    }
}

/// The record of a measured cell, with its metrics.
fn measured_cell(
    stack: &Stack,
    cell: &Cell,
    m: &Matrix,
    measured: Measured,
    attempts: u32,
    seconds: f64,
) -> CellResult {
    let check = stack
        .driver
        .endpoints
        .get(cell.endpoint())
        .map(|e| e.check.clone())
        .unwrap_or_default();
    let metrics = metrics::compute(
        &measured.reps,
        m.amount,
        cell.wait_ms(),
        &check,
        measured.handlers,
    );
    CellResult::measured(
        cell.clone(),
        m.repetitions,
        m.requests,
        metrics,
        measured.reps,
    )
    .with_attempts(attempts)
    .with_timing(CellTiming {
        seconds,
        setup: measured.setup.0,
        setup_seconds: measured.setup.1,
    })
    .with_place(measured.route, measured.engine)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The record of a cell that could not be measured.
fn failed_cell(cell: &Cell, m: &Matrix, error: String, attempts: u32) -> CellResult {
    CellResult::failed(cell.clone(), m.repetitions, m.requests, error).with_attempts(attempts)
}

/// Where an attempt at a cell failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Bringing a fresh stack up.
    Start,
    /// Reconfiguring the running stack, or measuring.
    Measure,
}

/// Brings the stack to the cell's configuration (starting it if needed) and measures;
/// returns the repetitions and what the setup was, with its wall seconds.
#[allow(clippy::too_many_arguments)]
async fn attempt_cell(
    engine: &Engine,
    current: &mut Option<Deployment>,
    stack: &Stack,
    services: &[String],
    run_id: &RunId,
    vars: &BTreeMap<String, String>,
    m: &Matrix,
    cell: &Cell,
    events: &dyn Events,
    counted: &mut u64,
) -> Result<(Vec<Repetition>, (Setup, f64)), (Stage, anyhow::Error)> {
    let mut say = |step: Step| {
        events.send(RunEvent::Deploying {
            stack: Some(&cell.stack),
            step,
        })
    };
    let measure = |e| (Stage::Measure, e);
    let began = Instant::now();
    let (dep, kind) = match current.take() {
        Some(mut d) if d.stack.name == cell.stack => {
            let recreated = stack.services_changed(d.vars(), vars);
            let kind = if !recreated.is_empty() {
                Setup::restart(stack, &recreated)
            } else if stack
                .live_changes(d.vars(), vars)
                .is_ok_and(|l| !l.is_empty())
            {
                Setup::Live
            } else {
                Setup::None
            };
            let reconfigured = d.reconfigure(vars.clone(), &mut say).await;
            // keep the deployment either way, so a failure can show its logs
            let d = current.insert(d);
            reconfigured.map_err(measure)?;
            (d, kind)
        }
        other => {
            if let Some(d) = other {
                d.shutdown().await.map_err(measure)?;
            }
            let d = Deployment::start_only(engine, stack, run_id, vars.clone(), services, &mut say)
                .await
                .map_err(|e| (Stage::Start, e))?;
            (current.insert(d), Setup::Start)
        }
    };
    let setup = (kind, began.elapsed().as_secs_f64());
    events.send(RunEvent::Status(&cell.label()));
    let reps = run_cell(dep, m, cell, events, counted)
        .await
        .map_err(measure)?;
    Ok((reps, setup))
}

async fn run_cell(
    dep: &Deployment,
    m: &Matrix,
    cell: &Cell,
    events: &dyn Events,
    counted: &mut u64,
) -> Result<Vec<Repetition>> {
    let driver = &dep.driver;
    let endpoint = driver
        .endpoints
        .get(cell.endpoint())
        .ok_or_else(|| anyhow!("stack {} has no endpoint {}", cell.stack, cell.endpoint()))?;
    let form = |fields: &[(String, String)]| {
        HttpRequest::form(&endpoint.method, "localhost", &endpoint.path, fields)
    };
    let spec = BurstSpec {
        addr: dep.target,
        request: form(&driver.fields_of(0, 0)?),
        each: vec![],
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
        let before = db.observe(&endpoint.check).await?;
        holds_after_reset(&endpoint.check, &before)?;
        // Every request of the burst carries its token, so that the app can say how many
        // of them it accepted (see `quiesce`).
        let token = format!("{:016x}", rand::random::<u64>());
        // per-request values: each request of this burst its own fields
        let each = if driver.varies() {
            (0..m.requests)
                .map(|i| Ok(form(&driver.fields_of(i, r)?).with_header(BURST_HEADER, &token)))
                .collect::<Result<Vec<_>>>()?
        } else {
            vec![]
        };
        let spec = BurstSpec {
            request: plain.with_header(BURST_HEADER, &token),
            each,
            ..spec.clone()
        };
        let shot = dep.fire(&spec, r).await?;
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
        if let Some(path) = &driver.target.quiesce {
            let expected = Accepts::of(&shot.records);
            let limit = spec.timeout + Duration::from_secs(30);
            quiesce(dep, path, &token, expected, limit).await?;
        }
        let after = db.observe(&endpoint.check).await?;
        reps.push(Repetition {
            before,
            after,
            burst_ms: shot.burst_ms,
            records: shot.records,
        });
        events.send(RunEvent::Settled(1));
        *counted += 1;
    }
    Ok(reps)
}

/// Refuses a reset that leaves the endpoint's invariant broken: its violations are
/// counted as they stand after the burst, so they must start from 0.
fn holds_after_reset(check: &Check, before: &metrics::Observation) -> Result<()> {
    if let Check::Invariant(name) = check {
        let broken = before.extra.get(metrics::VIOLATIONS).copied().unwrap_or(0);
        if broken != 0 {
            bail!(
                "invariant {name} counts {broken} violation(s) right after the reset, \
                 before any request: the reset must leave the invariant holding (check \
                 x-racy.reset and x-racy.invariants.{name}.violations)"
            );
        }
    }
    Ok(())
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
    pub fn of(records: &[metrics::RequestRecord]) -> Accepts {
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
        let r = http::send(dep.target, &req, Duration::from_secs(5)).await;
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
        if watched.elapsed() >= crate::deploy::deployment::WATCH_EVERY {
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::path::Path;

    use super::*;
    use crate::measure::metrics::Observation;

    /// An events sink that keeps what the loop said: the repetitions settled, and one
    /// line per other event.
    #[derive(Default)]
    struct Recorder {
        progress: std::sync::Mutex<(u64, Vec<String>)>,
    }

    impl Events for Recorder {
        fn send(&self, event: RunEvent<'_>) {
            let mut p = self.progress.lock().unwrap();
            match event {
                RunEvent::Settled(n) => p.0 += n,
                RunEvent::Unsettled(n) => p.0 -= n,
                RunEvent::Retrying { cell, attempt, .. } => {
                    p.1.push(format!("retrying {cell} after attempt {attempt}"))
                }
                RunEvent::CellFailed { cell, error } => p.1.push(format!("failed {cell}: {error}")),
                RunEvent::CellNotRun { cell, .. } => p.1.push(format!("not run {cell}")),
                RunEvent::CellStored(c) => p.1.push(format!("stored {}", c.cell.label())),
                RunEvent::Planned(_)
                | RunEvent::Status(_)
                | RunEvent::Deploying { .. }
                | RunEvent::StackUp { .. }
                | RunEvent::LeftUp(_) => {}
            }
        }
    }

    /// A stack instance that answers from a script: each `measure` takes the next outcome
    /// (success when the script is empty), and every call is written down.
    struct Scripted {
        outcomes: VecDeque<Result<(), (Stage, Fail)>>,
        repetitions: u32,
        events: std::sync::Arc<Recorder>,
        measured: Vec<String>,
        discarded: usize,
        finished: Option<bool>,
    }

    /// How a scripted attempt fails.
    #[derive(Clone)]
    enum Fail {
        /// With this message.
        Said(&'static str),
        /// A service of the stack died: (service, what happened).
        Died(&'static str, &'static str),
        /// A service was not ready: (service, probe kind, what happened).
        NotReady(&'static str, &'static str, &'static str),
    }

    impl Fail {
        fn error(self) -> anyhow::Error {
            match self {
                Fail::Said(m) => anyhow!(m),
                Fail::Died(service, what) => crate::deploy::deployment::ServiceDied {
                    stack: "django-mysql".into(),
                    service: service.into(),
                    replica: None,
                    what: what.into(),
                    logs: String::new(),
                }
                .into(),
                Fail::NotReady(service, probe, what) => crate::deploy::deployment::NotReady {
                    service: service.into(),
                    probe,
                    error: what.into(),
                    logs: String::new(),
                }
                .into(),
            }
        }
    }

    impl Slot for Scripted {
        async fn measure(
            &mut self,
            _stack: &Stack,
            cell: &Cell,
            _vars: &BTreeMap<String, String>,
            counted: &mut u64,
        ) -> Result<Measured, (Stage, anyhow::Error)> {
            self.measured.push(cell.label());
            match self.outcomes.pop_front().unwrap_or(Ok(())) {
                Ok(()) => {
                    // as the engine's slot does: every repetition is settled as it ends
                    *counted = u64::from(self.repetitions);
                    self.events.send(RunEvent::Settled(*counted));
                    let rep = Repetition {
                        before: Observation::default(),
                        after: Observation {
                            balance: 200,
                            ledger_rows: 2,
                            ..Default::default()
                        },
                        burst_ms: 1.0,
                        records: vec![],
                    };
                    Ok(Measured {
                        reps: vec![rep; self.repetitions as usize],
                        handlers: None,
                        setup: (Setup::None, 0.0),
                        route: None,
                        engine: None,
                    })
                }
                Err((stage, fail)) => {
                    // it failed after one repetition had been counted
                    *counted = 1;
                    self.events.send(RunEvent::Settled(1));
                    Err((stage, fail.error()))
                }
            }
        }

        async fn discard(&mut self) -> String {
            self.discarded += 1;
            "--- last log lines of app ---\nTraceback".into()
        }

        async fn engine_answers(&self) -> Result<()> {
            Ok(())
        }

        async fn finish(&mut self, keep: bool) -> Result<Option<String>> {
            self.finished = Some(keep);
            Ok(None)
        }
    }

    const PASSWORD: &str = "s3cret-Password-42";

    /// The 4 cells of tests/matrices/slow.yaml (3 repetitions each) run through `slot`.
    async fn run_scripted(
        name: &str,
        slot: &mut Scripted,
        retries: u32,
        fail_fast: bool,
    ) -> (Result<()>, Vec<CellResult>, u64, Vec<String>) {
        let stacks = crate::input::stack::discover(Path::new("stacks")).unwrap();
        let catalog = StackCatalog { stacks };
        let matrix =
            crate::input::matrix::load(Path::new("tests/matrices/slow.yaml"), &catalog).unwrap();
        let cells = crate::input::matrix::expand(&matrix, &catalog);
        slot.repetitions = matrix.repetitions;
        let opts = RunOptions {
            matrix,
            slices: vec![cells],
            catalog,
            keep_up: false,
            retries,
            fail_fast,
        };
        let path = std::env::temp_dir().join(format!("racy-runner-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let mut dir = RunDir::create(&path, "slow").await.unwrap();
        let events = slot.events.clone();
        let result = {
            let lock = tokio::sync::Mutex::new(&mut dir);
            let slice = Slice {
                opts: &opts,
                dir: &lock,
                events: &*events,
                base: "base",
                password: PASSWORD,
            };
            slice.run(slot, &opts.slices[0]).await
        };
        let cells = dir.cells.clone();
        dir.close().await.unwrap();
        std::fs::remove_dir_all(&path).unwrap();
        let (progress, said) = std::mem::take(&mut *events.progress.lock().unwrap());
        (result, cells, progress, said)
    }

    fn scripted(outcomes: Vec<Result<(), (Stage, Fail)>>) -> Scripted {
        Scripted {
            outcomes: outcomes.into_iter().collect(),
            repetitions: 0,
            events: Default::default(),
            measured: vec![],
            discarded: 0,
            finished: None,
        }
    }

    #[tokio::test]
    async fn a_failed_attempt_is_retried_on_a_fresh_instance() {
        let mut slot = scripted(vec![Err((
            Stage::Measure,
            Fail::Said("no request got a response"),
        ))]);
        let (result, cells, progress, said) = run_scripted("retry", &mut slot, 1, false).await;
        result.unwrap();
        assert_eq!(slot.measured.len(), 5, "4 cells, the first twice");
        assert_eq!(slot.discarded, 1, "the broken instance was removed");
        assert_eq!(cells.len(), 4);
        assert!(
            cells
                .iter()
                .all(|c| c.metrics.is_some() && c.error.is_none())
        );
        assert_eq!(cells[0].attempts, 2);
        assert!(cells[1..].iter().all(|c| c.attempts == 1));
        assert_eq!(
            progress, 12,
            "the failed attempt's repetition is not counted twice"
        );
        assert_eq!(slot.finished, Some(false), "removed at the end");
        let first = cells[0].cell.label();
        assert_eq!(said[0], format!("retrying {first} after attempt 1"));
        assert_eq!(
            said.iter().filter(|l| l.starts_with("stored ")).count(),
            4,
            "every cell reported as stored: {said:?}"
        );
    }

    #[tokio::test]
    async fn a_cell_that_still_fails_is_recorded_and_the_run_goes_on() {
        let boom = Fail::Said("database refused s3cret-Password-42");
        let mut slot = scripted(vec![
            Err((Stage::Measure, boom.clone())),
            Err((Stage::Measure, boom)),
        ]);
        let (result, cells, progress, said) = run_scripted("failed", &mut slot, 1, false).await;
        result.unwrap();
        assert_eq!(cells.len(), 4);
        let error = cells[0].error.as_deref().unwrap();
        assert!(error.contains("database refused ****"), "{error}");
        assert!(!error.contains(PASSWORD), "scrubbed: {error}");
        assert!(
            error.contains("Traceback"),
            "with the services' logs: {error}"
        );
        assert_eq!(cells[0].attempts, 2);
        assert!(cells[1..].iter().all(|c| c.metrics.is_some()));
        assert_eq!(progress, 12, "a failed cell's repetitions count as done");
        let failed = said.iter().find(|l| l.starts_with("failed ")).unwrap();
        assert!(failed.contains("database refused ****"), "{failed}");
        assert!(!said.iter().any(|l| l.contains(PASSWORD)), "{said:?}");
    }

    #[tokio::test]
    async fn a_stack_that_fails_to_start_twice_alike_fails_its_other_cells_at_once() {
        let died = Fail::Died("app", "exited with code 7");
        let mut slot = scripted(vec![
            Err((Stage::Start, died.clone())),
            Err((Stage::Start, died.clone())),
        ]);
        let (result, cells, progress, said) =
            run_scripted("unstartable", &mut slot, 1, false).await;
        result.unwrap();
        assert_eq!(slot.measured.len(), 2, "no start tried after the second");
        assert_eq!(cells.len(), 4);
        for c in &cells[1..] {
            let e = c.error.as_deref().unwrap();
            assert!(
                e.starts_with("not run: stack django-mysql failed to start twice")
                    && e.contains("exited with code 7"),
                "{e}"
            );
            assert_eq!(c.attempts, 0);
        }
        assert_eq!(progress, 12);
        assert_eq!(
            said.iter().filter(|l| l.starts_with("not run ")).count(),
            3,
            "{said:?}"
        );

        // the same service not ready on the same kind of probe is one reason, whatever
        // the numbers in its words; it is said as it was said last
        let mut slot = scripted(vec![
            Err((
                Stage::Start,
                Fail::NotReady("app", "tcp", "not ready after 3.1 s: port 127.0.0.1:49153"),
            )),
            Err((
                Stage::Start,
                Fail::NotReady(
                    "app",
                    "tcp",
                    "not ready after 180.0 s: port 127.0.0.1:49201",
                ),
            )),
        ]);
        let (_, cells, _, _) = run_scripted("numbers", &mut slot, 1, false).await;
        let e = cells[1].error.as_deref().unwrap();
        assert!(
            e.ends_with("not ready after 180.0 s: port 127.0.0.1:49201"),
            "{e}"
        );

        // two different start failures are not a pattern: the next cells are tried
        let mut slot = scripted(vec![
            Err((Stage::Start, Fail::Died("app", "exited with code 7"))),
            Err((Stage::Start, Fail::Died("app", "exited with code 1"))),
        ]);
        let (_, cells, _, _) = run_scripted("unlike", &mut slot, 1, false).await;
        assert!(cells[0].error.is_some());
        assert!(cells[1..].iter().all(|c| c.metrics.is_some()));

        // nor is a start failure followed by a measurement failure
        let mut slot = scripted(vec![
            Err((Stage::Start, died.clone())),
            Err((Stage::Measure, died)),
        ]);
        let (_, cells, _, _) = run_scripted("mixed", &mut slot, 1, false).await;
        assert!(cells[1..].iter().all(|c| c.metrics.is_some()));
    }

    #[tokio::test]
    async fn a_start_failure_of_another_service_or_untyped_is_another_reason() {
        // another service, or the same words untyped, are not one reason
        for (name, second) in [
            (
                "other-service",
                Fail::NotReady("db", "tcp", "not ready after 3.1 s: port 127.0.0.1:49153"),
            ),
            (
                "untyped",
                Fail::Said("not ready after 3.1 s: port 127.0.0.1:49153"),
            ),
        ] {
            let mut slot = scripted(vec![
                Err((
                    Stage::Start,
                    Fail::NotReady("app", "tcp", "not ready after 3.1 s: port 127.0.0.1:49153"),
                )),
                Err((Stage::Start, second)),
            ]);
            let (_, cells, _, _) = run_scripted(name, &mut slot, 1, false).await;
            assert!(cells[1..].iter().all(|c| c.metrics.is_some()), "{name}");
        }
    }

    #[tokio::test]
    async fn fail_fast_stops_at_the_first_cell_that_still_fails() {
        let mut slot = scripted(vec![
            Ok(()),
            Err((Stage::Measure, Fail::Said("boom"))),
            Err((Stage::Measure, Fail::Said("boom"))),
        ]);
        let (result, cells, _, _) = run_scripted("fail-fast", &mut slot, 1, true).await;
        let e = result.unwrap_err().to_string();
        assert!(e.contains("--fail-fast") && e.contains("boom"), "{e}");
        assert_eq!(
            cells.len(),
            2,
            "the measured cell and the failed one are kept"
        );
        assert!(cells[0].metrics.is_some() && cells[1].error.is_some());
        assert_eq!(slot.measured.len(), 3, "nothing after the failure");
    }

    #[test]
    fn start_faults_compare_kinds_and_services() {
        let not_ready = |service: &str, probe: &'static str, what: &str| {
            StartFault::of(
                &crate::deploy::deployment::NotReady {
                    service: service.into(),
                    probe,
                    error: what.into(),
                    logs: "port 49153".into(),
                }
                .into(),
            )
        };
        let a = not_ready(
            "app",
            "http",
            "not ready after 3.1 s: GET /health at 127.0.0.1:49153",
        );
        let b = not_ready(
            "app",
            "http",
            "not ready after 180.0 s: GET /health at 127.0.0.1:49201",
        );
        assert_eq!(a, b);
        assert_ne!(a, not_ready("db", "http", "not ready after 3.1 s"));
        assert_ne!(a, not_ready("app", "tcp", "not ready after 3.1 s"));
        assert_ne!(
            a,
            StartFault::of(&anyhow!("not ready after 3.1 s: GET /health"))
        );
    }
}
