//! What a sweep costs in time: the model `plan` and `--shard` share (bringing the stack
//! to a cell's configuration, then the cell's repetitions), the durations earlier runs
//! measured (`--timings`), and the model's constants fitted to those measurements.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::input::matrix::{Cell, Matrix, parse_delay};
use crate::input::setup::{Setup, Shape};
use crate::input::stack::StackCatalog;

/// What runs before `cell` when `prev` ran just before it on the same instance: the kind
/// of setup, and its steps as `plan` shows them ("recreate app, worker", "workers 1->4
/// in app"; none for a start).
pub fn setup(prev: Option<&Cell>, cell: &Cell, catalog: &StackCatalog) -> (Setup, Vec<String>) {
    let Some(p) = prev.filter(|p| p.stack == cell.stack) else {
        return (Setup::Start, vec![]);
    };
    let Some(stack) = catalog.stacks.get(&cell.stack) else {
        return (Setup::Start, vec![]);
    };
    let mut steps = Vec::new();
    let recreated = stack.services_changed(&p.axes, &cell.axes);
    if !recreated.is_empty() {
        steps.push(format!("recreate {}", recreated.join(", ")));
    }
    let live = stack.live_changes(&p.axes, &cell.axes).unwrap_or_default();
    for l in &live {
        steps.push(format!(
            "{} {}->{} in {}",
            l.var, l.from, l.to, l.live.service
        ));
    }
    let kind = if !live.is_empty() && recreated.is_empty() {
        Setup::Live
    } else {
        Setup::restart(stack, &recreated)
    };
    (kind, steps)
}

/// Estimated seconds of one repetition's burst of `requests`: launches spread by
/// `wait_ms`, then the requests served `handlers` at a time at the mean delay. `handlers`
/// is how many requests the cell's stack serves at once (its `x-racy.handlers` with the
/// cell's variables: workers × threads × replicas in the lab's stacks); without it, the
/// `workers` axis.
pub fn burst_estimate_s(requests: u32, cell: &Cell, handlers: Option<u64>) -> f64 {
    let wait = cell.wait_ms() as f64 * (requests.saturating_sub(1)) as f64;
    let (lo, hi) = cell
        .get("delay_ms")
        .and_then(|d| parse_delay(d).ok())
        .unwrap_or((0, 0));
    let mean = (lo + hi) as f64 / 2.0;
    let at_once: f64 = match handlers {
        Some(h) => h as f64,
        None => cell
            .get("workers")
            .and_then(|w| w.parse().ok())
            .unwrap_or(1.0_f64),
    }
    .max(1.0);
    let rounds = (requests as f64 / at_once).ceil();
    (wait + rounds * mean) / 1000.0 + 0.05
}

/// What the estimate of a cell needs from its stack.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Traits {
    /// Requests served at once (see [`handlers_of`]).
    pub handlers: Option<u64>,
    /// What the cell's endpoint does with the window, as the stack declares it.
    pub window: Shape,
}

/// The traits of `cell` in `catalog`: its stack's handlers with the cell's variables, and
/// its endpoint's declared window (parallel when the stack does not say).
pub fn traits_of(cell: &Cell, amount: i64, catalog: &StackCatalog) -> Traits {
    let window = catalog
        .stacks
        .get(&cell.stack)
        .and_then(|s| s.driver.endpoints.get(cell.endpoint()))
        .map(|e| e.window)
        .unwrap_or_default();
    Traits {
        handlers: handlers_of(cell, amount, catalog),
        window,
    }
}

/// How many requests `cell`'s stack serves at once: its `x-racy.handlers` interpolated
/// with the cell's variables (the stack's defaults for the rest); `None` when the stack is
/// not in `catalog` or declares no handlers.
pub fn handlers_of(cell: &Cell, amount: i64, catalog: &StackCatalog) -> Option<u64> {
    let stack = catalog.stacks.get(&cell.stack)?;
    // the image and password do not reach the handlers; any text stands in for them
    let mut vars = cell.axes.clone();
    vars.insert("amount".into(), amount.to_string());
    vars.insert("BASE_IMAGE".into(), "estimate".into());
    vars.insert("db_password".into(), "estimate".into());
    stack.driver_for(&vars).ok()?.handler_count().ok()?
}

/// The time model's constants, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    /// Bringing a stack up with its images present.
    pub start_s: f64,
    /// Recreating services (not the database) and waiting until they are ready again.
    pub restart_s: f64,
    /// The same with the database among them.
    pub restart_database_s: f64,
    /// A live change (Gunicorn workers grown or shrunk in place).
    pub live_s: f64,
    /// Reset, observation and quiescence, per repetition.
    pub repetition_s: f64,
    /// Measured burst seconds per second of [`burst_estimate_s`].
    pub burst_scale: f64,
}

impl Default for Model {
    /// The constants fitted (as `--timings` fits them) to one run of every shipped
    /// matrix but the nightly, and one shard of the nightly (1/32: 26 cells, 38 min), on a
    /// 2-core machine, images present: 19 starts, 18 restarts (one of them took 31 s,
    /// the others 1–2 s), 96 restarts with the database (seed 000 starts a fresh
    /// database for every trial), 14 live changes, 264 cells; the stacks' declared
    /// windows. Fitted on all the others, each run is estimated within −26 % to +25 %
    /// (the nightly shard +0.9 %), except get-or-create (+58 %: its requests wait out
    /// the window only when their get misses) and seed 000 (−54 %: its restarts with
    /// the database were all in it); with a run of the same matrix given as `--timings`,
    /// within 8 %.
    fn default() -> Model {
        Model {
            start_s: 2.7,
            restart_s: 2.9,
            restart_database_s: 4.5,
            live_s: 0.2,
            repetition_s: 0.0,
            burst_scale: 0.99,
        }
    }
}

impl Model {
    /// Seconds of a setup of this kind.
    pub fn setup_s(&self, kind: Setup) -> f64 {
        match kind {
            Setup::Start => self.start_s,
            Setup::Restart => self.restart_s,
            Setup::RestartDatabase => self.restart_database_s,
            Setup::Live => self.live_s,
            Setup::None => 0.0,
        }
    }
}

/// How long one cell took in an earlier run, as its record says.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The cell.
    pub cell: Cell,
    /// Requests per repetition in that run.
    pub requests: u32,
    /// Repetitions in that run.
    pub repetitions: u32,
    /// Its wall time and setup.
    pub timing: crate::measure::cell::CellTiming,
}

impl Sample {
    /// Seconds per repetition, setup excluded.
    fn per_repetition_s(&self) -> f64 {
        (self.timing.seconds - self.timing.setup_seconds).max(0.0)
            / f64::from(self.repetitions.max(1))
    }
}

/// Measured cell durations by cell key (see [`Cell::key`]), from the run directories or
/// results files `--timings` names.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    /// Samples by cell key; a cell measured in several runs has several, in the order
    /// the runs were given.
    by_key: BTreeMap<String, Vec<Sample>>,
    /// Where they were read from.
    pub sources: Vec<PathBuf>,
    /// Cells read that carried no duration (failed, or recorded by an older version).
    pub untimed: usize,
}

impl Timings {
    /// Timings from samples (in the order given when a cell has several).
    pub fn from_samples(samples: impl IntoIterator<Item = Sample>) -> Timings {
        let mut t = Timings::default();
        for s in samples {
            t.by_key.entry(s.cell.key()).or_default().push(s);
        }
        t
    }

    /// Reads every measured cell of run directories (their `results.db`) or results
    /// files (`results.json`, or a directory holding one), e.g. the merged results of
    /// last night's shards.
    pub async fn load(paths: &[PathBuf]) -> Result<Timings> {
        let mut t = Timings::default();
        for path in paths {
            let cells = crate::store::results::read_summaries(path)
                .await
                .with_context(|| format!("--timings {}", path.display()))?;
            for c in cells {
                match c.timing.filter(|_| c.error.is_none()) {
                    Some(timing) => t.by_key.entry(c.cell.key()).or_default().push(Sample {
                        cell: c.cell,
                        requests: c.requests,
                        repetitions: c.repetitions,
                        timing,
                    }),
                    None => t.untimed += 1,
                }
            }
            t.sources.push(path.clone());
        }
        Ok(t)
    }

    /// Whether no cell has a measured duration.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Every sample, by cell key, then in the order the runs were given.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.by_key.values().flatten()
    }

    /// The mean measured seconds per repetition of the cell with `key`, over the samples
    /// taken with `requests` requests per repetition (a burst of another size is another
    /// experiment).
    fn per_repetition_s(&self, key: &str, requests: u32) -> Option<f64> {
        let v: Vec<f64> = self
            .by_key
            .get(key)?
            .iter()
            .filter(|s| s.requests == requests)
            .map(Sample::per_repetition_s)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// The model's burst estimate of `cell` for an endpoint of this shape.
pub fn shaped_estimate_s(shape: Shape, requests: u32, cell: &Cell, handlers: Option<u64>) -> f64 {
    match shape {
        Shape::Parallel => burst_estimate_s(requests, cell, handlers),
        Shape::Serial => burst_estimate_s(requests, cell, Some(1)),
        Shape::Ignored => {
            let mut none = cell.clone();
            none.axes.insert("delay_ms".into(), "0".into());
            burst_estimate_s(requests, &none, handlers)
        }
    }
}

/// What the fit learnt of one endpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EndpointFit {
    /// How its bursts are served.
    pub shape: Shape,
    /// How much longer (above 1) or shorter its bursts are than the model's burst term
    /// of that shape says. One whose requests skip the window (get_or_create when its
    /// get finds the row) takes a fraction of it.
    pub factor: f64,
}

/// How a fit came out: the constants, and how many samples each rests on.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// The fitted constants (the defaults where no sample informs one).
    pub model: Model,
    /// By endpoint, its shape and factor, fitted to its measured cells. An endpoint
    /// with no measured cell has none: its declared shape, factor 1.
    pub endpoints: BTreeMap<String, EndpointFit>,
    /// Samples behind `start_s`, `restart_s`, `restart_database_s`, `live_s`.
    pub setups: [usize; 4],
    /// Cells behind `burst_scale` and `repetition_s`.
    pub cells: usize,
}

/// Fits the model's constants to measured cells by least squares.
///
/// What the fit assumes:
/// - a setup of each kind (start, restart, live change) takes a constant time whatever
///   the stack and the services it recreates: the least-squares constant is the mean of
///   the measured setups of that kind (a start that also built images counts as one);
/// - a repetition takes `burst_scale × burst_estimate + repetition_s`: linear in the
///   model's burst estimate, one scale for every stack and endpoint, with errors
///   independent and of equal variance, one point per cell (its mean seconds per
///   repetition), fitted by ordinary least squares;
/// - neither constant is negative: when the unconstrained line would give a negative
///   overhead the line goes through the origin, and a negative scale becomes 0 with
///   the mean as overhead; with fewer than two distinct estimates only the overhead is
///   fitted (the scale stays 1);
/// - an endpoint serves its bursts in one [`Shape`] at every setting. The line is
///   fitted with each cell's estimate in its endpoint's declared shape; then each
///   endpoint takes the shape whose burst term, times a factor of its own, leaves the
///   smallest sum of squared residuals: `y − overhead = r × scale × x_shape`, through
///   the origin, `r = Σ x'y' / Σ x'²`, never negative. Only cells run at different
///   handler counts tell parallel from serial, and only cells at different windows tell
///   either from ignored; shapes that leave equal sums keep the declared one. When an
///   endpoint's shape changed, the line is fitted once more in the new shapes (a
///   serializing endpoint no longer bends the scale of the others), and the factors
///   again against it. A cell of an endpoint never measured at its setting is
///   estimated from those that were, in the endpoint's shape.
pub fn fit(timings: &Timings, traits: &dyn Fn(&Cell) -> Traits) -> Fit {
    let mut model = Model::default();
    let setups = fit_setups(timings, &mut model);
    // each sample as a point, and each endpoint's declared shape
    let mut declared: BTreeMap<&str, Shape> = BTreeMap::new();
    let points: Vec<Point> = timings
        .samples()
        .map(|s| {
            let t = traits(&s.cell);
            declared.insert(s.cell.endpoint(), t.window);
            Point {
                endpoint: s.cell.endpoint(),
                x: Shape::ALL
                    .map(|shape| shaped_estimate_s(shape, s.requests, &s.cell, t.handlers)),
                y: s.per_repetition_s(),
            }
        })
        .collect();
    fit_line(&points, &declared, &mut model);
    let shapes = choose_shapes(&points, &declared, &model);
    if shapes.iter().any(|(name, shape)| declared[name] != *shape) {
        fit_line(&points, &shapes, &mut model);
    }
    let endpoints = shapes
        .iter()
        .filter_map(|(&name, &shape)| {
            let (factor, _) = endpoint_factor(&points, &model, name, shape)?;
            Some((name.to_string(), EndpointFit { shape, factor }))
        })
        .collect();
    Fit {
        model,
        endpoints,
        setups,
        cells: points.len(),
    }
}

/// One measured cell for the fit: its endpoint, the model's burst estimate in each
/// shape, and its seconds per repetition.
struct Point<'a> {
    endpoint: &'a str,
    x: [f64; 3],
    y: f64,
}

/// Sets each setup constant to the mean of the measured setups of its kind (see
/// [`fit`]); returns how many samples each rests on.
fn fit_setups(timings: &Timings, model: &mut Model) -> [usize; 4] {
    let mut setups = [0; 4];
    for (i, kind) in [
        Setup::Start,
        Setup::Restart,
        Setup::RestartDatabase,
        Setup::Live,
    ]
    .into_iter()
    .enumerate()
    {
        let v: Vec<f64> = timings
            .samples()
            .filter(|s| s.timing.setup == kind)
            .map(|s| s.timing.setup_seconds)
            .collect();
        setups[i] = v.len();
        if v.is_empty() {
            continue;
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        match kind {
            Setup::Start => model.start_s = mean,
            Setup::Restart => model.restart_s = mean,
            Setup::RestartDatabase => model.restart_database_s = mean,
            _ => model.live_s = mean,
        }
    }
    setups
}

/// Fits the model's scale and overhead to every point, each in its endpoint's shape.
fn fit_line(points: &[Point], shapes: &BTreeMap<&str, Shape>, model: &mut Model) {
    let xy: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.x[shapes[p.endpoint] as usize], p.y))
        .collect();
    if let Some((scale, overhead)) = line(&xy) {
        model.burst_scale = scale;
        model.repetition_s = overhead;
    }
}

/// The factor through the origin of one endpoint in one shape against the line in
/// `model`, with its sum of squared residuals; `None` when its burst term is 0.
fn endpoint_factor(
    points: &[Point],
    model: &Model,
    name: &str,
    shape: Shape,
) -> Option<(f64, f64)> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.endpoint == name)
        .map(|p| {
            (
                model.burst_scale * p.x[shape as usize],
                p.y - model.repetition_s,
            )
        })
        .collect();
    let sxx: f64 = pts.iter().map(|(x, _)| x * x).sum();
    if sxx <= 1e-12 {
        return None;
    }
    let r = (pts.iter().map(|(x, y)| x * y).sum::<f64>() / sxx).max(0.0);
    let rss = pts.iter().map(|(x, y)| (y - r * x).powi(2)).sum();
    Some((r, rss))
}

/// Each endpoint's shape: the one whose factor leaves the smallest sum of squared
/// residuals, the declared one unless another fits clearly better (equal sums, from
/// cells at one handler count and one window or from rounding, keep it).
fn choose_shapes<'a>(
    points: &[Point],
    declared: &BTreeMap<&'a str, Shape>,
    model: &Model,
) -> BTreeMap<&'a str, Shape> {
    let rss = |name: &str, shape| endpoint_factor(points, model, name, shape).map(|f| f.1);
    declared
        .iter()
        .map(|(&name, &own)| {
            let mut best = (own, rss(name, own));
            for shape in Shape::ALL {
                let Some(r) = rss(name, shape) else { continue };
                match best.1 {
                    Some(b) if r >= b - 1e-9 * (1.0 + b) => {}
                    _ => best = (shape, Some(r)),
                }
            }
            (name, best.0)
        })
        .collect()
}

impl Fit {
    /// Estimated seconds of one repetition of `cell` with `requests` requests: the
    /// model's, its burst term in the shape of the cell's endpoint (the fitted one, else
    /// the declared one) and scaled by its factor.
    pub fn repetition_estimate_s(&self, requests: u32, cell: &Cell, traits: Traits) -> f64 {
        let e = self
            .endpoints
            .get(cell.endpoint())
            .copied()
            .unwrap_or(EndpointFit {
                shape: traits.window,
                factor: 1.0,
            });
        e.factor
            * self.model.burst_scale
            * shaped_estimate_s(e.shape, requests, cell, traits.handlers)
            + self.model.repetition_s
    }
}

/// The least-squares line `y = a·x + b` through `points` with `a, b ≥ 0` (see [`fit`]);
/// `None` without points.
fn line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    if points.is_empty() {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 1e-12 * n {
        // one estimate for every point: the scale cannot be told from the overhead
        return Some((1.0, (my - mx).max(0.0)));
    }
    let a = sxy / sxx;
    let b = my - a * mx;
    if a < 0.0 {
        return Some((0.0, my.max(0.0)));
    }
    if b < 0.0 {
        let through_origin = points.iter().map(|p| p.0 * p.1).sum::<f64>()
            / points.iter().map(|p| p.0 * p.0).sum::<f64>();
        return Some((through_origin.max(0.0), 0.0));
    }
    Some((a, b))
}

/// The time of cells in a given order on one stack instance: measured durations where
/// the timings have the cell, the (fitted) model elsewhere.
pub struct Costs<'a> {
    /// The matrix (its requests and repetitions).
    pub matrix: &'a Matrix,
    /// Its stacks (what a change of variables recreates).
    pub catalog: &'a StackCatalog,
    /// The model, fitted to the timings when there were any.
    pub fit: Fit,
    /// Measured seconds per repetition, by cell key.
    measured: BTreeMap<String, f64>,
    /// The variables whose change needs a setup (a restart or a live change), by stack:
    /// cells that differ in none of them follow each other for free.
    setup_vars: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Traits by stack and variables (see [`Costs::traits`]).
    traits: std::sync::Mutex<BTreeMap<String, Traits>>,
}

impl<'a> Costs<'a> {
    /// The model's constants as guessed, no measurement.
    pub fn model(matrix: &'a Matrix, catalog: &'a StackCatalog) -> Costs<'a> {
        Costs::new(matrix, catalog, &Timings::default())
    }

    /// Measured durations for the cells the timings have, the model fitted to them for
    /// the rest.
    pub fn new(matrix: &'a Matrix, catalog: &'a StackCatalog, timings: &Timings) -> Costs<'a> {
        let measured = timings
            .by_key
            .keys()
            .filter_map(|k| Some((k.clone(), timings.per_repetition_s(k, matrix.requests)?)))
            .collect();
        let setup_vars = catalog
            .stacks
            .iter()
            .map(|(name, s)| {
                let mut vars = s.restart_variables();
                vars.extend(s.driver.live.keys().cloned());
                (name.clone(), vars)
            })
            .collect();
        Costs {
            matrix,
            catalog,
            fit: fit(timings, &|c| traits_of(c, matrix.amount, catalog)),
            measured,
            setup_vars,
            traits: Default::default(),
        }
    }

    /// The cell's traits (see [`traits_of`]), worked out once per stack and variables.
    fn traits(&self, cell: &Cell) -> Traits {
        let key = format!("{}\u{0}{:?}", cell.stack, cell.axes);
        let mut known = self.traits.lock().expect("traits");
        *known
            .entry(key)
            .or_insert_with(|| traits_of(cell, self.matrix.amount, self.catalog))
    }

    /// Whether the cell's time comes from a measurement.
    pub fn is_measured(&self, cell: &Cell) -> bool {
        self.measured.contains_key(&cell.key())
    }

    /// Seconds of the cell's repetitions (setup excluded).
    pub fn work_s(&self, cell: &Cell) -> f64 {
        let per = match self.measured.get(&cell.key()) {
            Some(&s) => s,
            None => self
                .fit
                .repetition_estimate_s(self.matrix.requests, cell, self.traits(cell)),
        };
        f64::from(self.matrix.repetitions) * per
    }

    /// Seconds of the setup before `cell` when `prev` ran just before it.
    pub fn setup_s(&self, prev: Option<&Cell>, cell: &Cell) -> f64 {
        if let (Some(p), Some(vars)) = (prev, self.setup_vars.get(&cell.stack))
            && p.stack == cell.stack
            && !vars.iter().any(|v| p.get(v) != cell.get(v))
        {
            return 0.0;
        }
        self.fit.model.setup_s(setup(prev, cell, self.catalog).0)
    }

    /// Seconds of `cells` run in this order on one stack instance.
    pub fn total_s(&self, cells: &[Cell]) -> f64 {
        let mut prev = None;
        let mut total = 0.0;
        for c in cells {
            total += self.setup_s(prev, c) + self.work_s(c);
            prev = Some(c);
        }
        total
    }
}

/// The label of a path list for messages: `a, b and 3 more`.
pub fn sources_label(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths
        .iter()
        .take(2)
        .map(|p| p.display().to_string())
        .collect();
    match paths.len() {
        0 => String::new(),
        1 | 2 => names.join(", "),
        n => format!("{} and {} more", names.join(", "), n - 2),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::measure::cell::CellTiming;

    fn cell(workers: u32, delay: &str) -> Cell {
        Cell {
            stack: "s".into(),
            axes: BTreeMap::from([
                ("workers".to_string(), workers.to_string()),
                ("delay_ms".to_string(), delay.to_string()),
            ]),
        }
    }

    /// A stack that declares no handlers and no window.
    const PLAIN: Traits = Traits {
        handlers: None,
        window: Shape::Parallel,
    };

    fn sample(c: Cell, reps: u32, seconds: f64, setup: Setup, setup_seconds: f64) -> Sample {
        Sample {
            cell: c,
            requests: 1,
            repetitions: reps,
            timing: CellTiming {
                seconds,
                setup,
                setup_seconds,
            },
        }
    }

    #[test]
    fn burst_estimates() {
        // 8 requests, one worker, 300 ms each, one after another
        assert!((burst_estimate_s(8, &cell(1, "300"), None) - 2.45).abs() < 1e-9);
        // four workers: two rounds; a 100-200 range counts its mean
        assert!((burst_estimate_s(8, &cell(4, "100-200"), None) - 0.35).abs() < 1e-9);
        // the stack says it serves 12 at once (4 workers x 3 replicas): one round of 300
        // ms, where the workers axis alone would say two
        assert!((burst_estimate_s(8, &cell(4, "300"), Some(12)) - 0.35).abs() < 1e-9);
        assert!((burst_estimate_s(8, &cell(4, "300"), None) - 0.65).abs() < 1e-9);
    }

    #[test]
    fn handlers_come_from_the_stack_with_the_cells_variables() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks");
        let catalog = StackCatalog {
            stacks: crate::input::stack::discover(&root).unwrap(),
        };
        let at = |axes: &[(&str, &str)]| Cell {
            stack: "django-mysql".into(),
            axes: axes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        // handlers: "${workers:-3}*${threads:-1}*${replicas:-1}"
        let h = |axes: &[(&str, &str)]| handlers_of(&at(axes), 100, &catalog);
        assert_eq!(h(&[("workers", "2"), ("replicas", "3")]), Some(6));
        assert_eq!(h(&[("workers", "4"), ("threads", "8")]), Some(32));
        assert_eq!(h(&[]), Some(3));
        let unknown = Cell {
            stack: "no-such-stack".into(),
            axes: BTreeMap::new(),
        };
        assert_eq!(handlers_of(&unknown, 100, &catalog), None);
        // the endpoint's window as the lab declares it, parallel where it says nothing
        let window = |e: &str| traits_of(&at(&[("endpoint", e)]), 100, &catalog).window;
        assert_eq!(window("row_locking_atomic_long_delay"), Shape::Serial);
        assert_eq!(window("atomic_no_delay"), Shape::Ignored);
        assert_eq!(window("atomic_long_delay"), Shape::Parallel);
        assert_eq!(traits_of(&unknown, 100, &catalog).window, Shape::Parallel);
        // a setup that recreates the database is a kind of its own: the lab's isolation
        // recreates the app (and worker), MariaDB's snapshot_isolation the database too
        let rc = at(&[
            ("isolation", "read_committed"),
            ("snapshot_isolation", "ON"),
        ]);
        let rr = at(&[
            ("isolation", "repeatable_read"),
            ("snapshot_isolation", "ON"),
        ]);
        let off = at(&[
            ("isolation", "repeatable_read"),
            ("snapshot_isolation", "OFF"),
        ]);
        assert_eq!(setup(Some(&rc), &rr, &catalog).0, Setup::Restart);
        assert_eq!(setup(Some(&rr), &off, &catalog).0, Setup::RestartDatabase);
        assert_eq!(setup(Some(&rr), &rr, &catalog).0, Setup::None);
        assert_eq!(setup(None, &rr, &catalog).0, Setup::Start);
    }

    /// A case worked by hand. One request per repetition, one worker, so the model's
    /// burst estimate of each cell is its delay + 0.05 s: x = 0.05, 1.05, 2.05 for delays
    /// 0, 1000, 2000 ms. The cells took, per repetition (setup taken out, 2
    /// repetitions each): y = 1, 2, 4 s.
    ///   mean x = 1.05, mean y = 7/3
    ///   Sxx = 1 + 0 + 1 = 2, Sxy = (-1)(1 - 7/3) + 0 + (1)(4 - 7/3) = 4/3 + 5/3 = 3
    ///   scale = Sxy / Sxx = 1.5, overhead = 7/3 - 1.5 × 1.05 = 0.7583…
    /// Setups: starts of 10 and 14 s → 12; one restart of 2.5 s; no live change (the
    /// default stays).
    #[test]
    fn the_fit_matches_a_case_worked_by_hand() {
        let t = Timings::from_samples([
            sample(cell(1, "0"), 2, 10.0 + 2.0 * 1.0, Setup::Start, 10.0),
            sample(cell(1, "1000"), 2, 14.0 + 2.0 * 2.0, Setup::Start, 14.0),
            sample(cell(1, "2000"), 2, 2.5 + 2.0 * 4.0, Setup::Restart, 2.5),
        ]);
        let f = fit(&t, &|_| PLAIN);
        assert_eq!(f.setups, [2, 1, 0, 0]);
        assert_eq!(f.cells, 3);
        assert!((f.model.start_s - 12.0).abs() < 1e-9, "{f:?}");
        assert!((f.model.restart_s - 2.5).abs() < 1e-9, "{f:?}");
        assert_eq!(f.model.live_s, Model::default().live_s);
        assert!((f.model.burst_scale - 1.5).abs() < 1e-9, "{f:?}");
        assert!(
            (f.model.repetition_s - (7.0 / 3.0 - 1.5 * 1.05)).abs() < 1e-9,
            "{f:?}"
        );
        // one endpoint for all (these cells name none): the one scale fits it, factor 1
        assert!((f.endpoints[""].factor - 1.0).abs() < 1e-9, "{f:?}");
        // no measurement: the defaults
        assert_eq!(fit(&Timings::default(), &|_| PLAIN).model, Model::default());
        assert!(fit(&Timings::default(), &|_| PLAIN).endpoints.is_empty());
    }

    /// A second case worked by hand: two endpoints on the same line of the model, one of
    /// which serializes its burst. One request, one worker, 2 repetitions, no setup.
    ///   endpoint a: delays 0 and 1000 ms, x = 0.05 and 1.05, took y = 0.5 and 1.5 s
    ///   endpoint b: delay 1000 ms, x = 1.05, took y = 3.5 s (three times a's burst)
    /// The line through all three: mean x = 0.7167, mean y = 1.8333,
    ///   Sxx = 0.4444 + 0.1111 + 0.1111 = 0.6667,
    ///   Sxy = (−0.6667)(−1.3333) + (0.3333)(−0.3333) + (0.3333)(1.6667) = 1.3333,
    ///   scale = 2, overhead = 1.8333 − 2 × 0.7167 = 0.4.
    /// Then x' = 2x and y' = y − 0.4: a: (0.1, 0.1), (2.1, 1.1); b: (2.1, 3.1).
    ///   r_a = (0.01 + 2.31) / (0.01 + 4.41) = 0.5249, r_b = 3.1 / 2.1 = 1.4762.
    /// A cell of b never measured (delay 2000 ms, x = 2.05) is estimated
    /// 1.4762 × 2 × 2.05 + 0.4 = 6.4524 s per repetition, where the one scale said 4.5.
    #[test]
    fn each_endpoint_gets_its_factor() {
        let on = |endpoint: &str, delay: &str| {
            let mut c = cell(1, delay);
            c.axes.insert("endpoint".into(), endpoint.into());
            c
        };
        let t = Timings::from_samples([
            sample(on("a", "0"), 2, 1.0, Setup::None, 0.0),
            sample(on("a", "1000"), 2, 3.0, Setup::None, 0.0),
            sample(on("b", "1000"), 2, 7.0, Setup::None, 0.0),
        ]);
        let f = fit(&t, &|_| PLAIN);
        assert!((f.model.burst_scale - 2.0).abs() < 1e-9, "{f:?}");
        assert!((f.model.repetition_s - 0.4).abs() < 1e-9, "{f:?}");
        assert!(
            (f.endpoints["a"].factor - 2.32 / 4.42).abs() < 1e-9,
            "{f:?}"
        );
        assert!((f.endpoints["b"].factor - 3.1 / 2.1).abs() < 1e-9, "{f:?}");
        let unmeasured = on("b", "2000");
        let want = 3.1 / 2.1 * 2.0 * 2.05 + 0.4;
        assert!((f.repetition_estimate_s(1, &unmeasured, PLAIN) - want).abs() < 1e-9);
        // an endpoint no run measured keeps the one scale
        let other = on("c", "2000");
        assert!((f.repetition_estimate_s(1, &other, PLAIN) - (2.0 * 2.05 + 0.4)).abs() < 1e-9);
    }

    /// A third case worked by hand: an endpoint that serializes its burst, told apart
    /// by cells at two handler counts. Two requests per repetition, 1000 ms each, run
    /// with 1 and 2 handlers (the workers axis), 2 repetitions, no setup. The true
    /// model: scale 1, overhead 0.5 s; `a` serves both requests at once, `b` one after
    /// the other. Estimates (parallel, serial): 1 handler (2.05, 2.05), 2 handlers
    /// (1.05, 2.05); they took a: 2.55 and 1.55 s, b: 2.55 and 2.55 s.
    ///   The line on the parallel estimates: mean x = 1.55, mean y = 2.3, Sxx = 1,
    ///   Sxy = 0.5: scale 0.5, overhead 2.3 − 0.775 = 1.525. Against it, y' = y − 1.525:
    ///   b parallel: x' = 1.025, 0.525, r = 1.58875 / 1.32625, rss 0.198;
    ///   b serial: x' = 1.025, 1.025, y' = 1.025, 1.025: r = 1, rss 0 → serial (ignored,
    ///   x' = 0.025 twice, fits as well with r = 41, but serial comes first);
    ///   a parallel rss 0.198, serial (x' = 1.025, 1.025, y' = 1.025, 0.025) 0.5 →
    ///   parallel.
    ///   The line again on a's parallel and b's serial estimates: x = 2.05, 1.05, 2.05,
    ///   2.05 against y = 2.55, 1.55, 2.55, 2.55: scale 1, overhead 0.5; both factors 1.
    /// A cell of b never measured (4 handlers, 2000 ms) takes 2 × 2 + 0.05 + 0.5 = 4.55 s
    /// per repetition, where the parallel shape would say 2.55.
    #[test]
    fn an_endpoint_that_serializes_is_told_apart() {
        let on = |endpoint: &str, workers: u32, delay: &str| {
            let mut c = cell(workers, delay);
            c.axes.insert("endpoint".into(), endpoint.into());
            c
        };
        let two = |c: Cell, seconds: f64| Sample {
            requests: 2,
            ..sample(c, 2, seconds, Setup::None, 0.0)
        };
        let t = Timings::from_samples([
            two(on("a", 1, "1000"), 2.0 * 2.55),
            two(on("a", 2, "1000"), 2.0 * 1.55),
            two(on("b", 1, "1000"), 2.0 * 2.55),
            two(on("b", 2, "1000"), 2.0 * 2.55),
        ]);
        let workers = |c: &Cell| Traits {
            handlers: c.get("workers").and_then(|w| w.parse().ok()),
            window: Shape::Parallel,
        };
        let f = fit(&t, &workers);
        assert_eq!(f.endpoints["a"].shape, Shape::Parallel, "{f:?}");
        assert_eq!(f.endpoints["b"].shape, Shape::Serial, "{f:?}");
        assert!((f.model.burst_scale - 1.0).abs() < 1e-9, "{f:?}");
        assert!((f.model.repetition_s - 0.5).abs() < 1e-9, "{f:?}");
        assert!((f.endpoints["a"].factor - 1.0).abs() < 1e-9, "{f:?}");
        assert!((f.endpoints["b"].factor - 1.0).abs() < 1e-9, "{f:?}");
        let unmeasured = on("b", 4, "2000");
        let est = f.repetition_estimate_s(2, &unmeasured, workers(&unmeasured));
        assert!((est - 4.55).abs() < 1e-9, "{est}");
        // an endpoint no run measured: its declared shape, or parallel
        let c = on("c", 4, "2000");
        let declared = |window| Traits {
            handlers: Some(4),
            window,
        };
        let est = |w| f.repetition_estimate_s(2, &c, declared(w));
        assert!((est(Shape::Parallel) - 2.55).abs() < 1e-9);
        assert!((est(Shape::Serial) - 4.55).abs() < 1e-9);
        assert!((est(Shape::Ignored) - 0.55).abs() < 1e-9);
        // cells at one handler count cannot tell the shapes apart: parallel stays
        let t = Timings::from_samples([
            two(on("b", 2, "1000"), 2.0 * 2.55),
            two(on("b", 2, "2000"), 2.0 * 4.55),
        ]);
        let f = fit(&t, &workers);
        assert_eq!(f.endpoints["b"].shape, Shape::Parallel, "{f:?}");
    }

    #[test]
    fn the_line_keeps_its_constants_non_negative() {
        // an exact line
        let (a, b) = line(&[(1.0, 2.5), (2.0, 4.5), (3.0, 6.5)]).unwrap();
        assert!((a - 2.0).abs() < 1e-12 && (b - 0.5).abs() < 1e-12);
        // a negative intercept (the free line is y = 2x - 2): through the origin instead,
        // a = Σxy / Σxx = (0 + 12) / (1 + 9)
        let (a, b) = line(&[(1.0, 0.0), (3.0, 4.0)]).unwrap();
        assert_eq!(b, 0.0);
        assert!((a - 1.2).abs() < 1e-12);
        // falling: no scale, the mean as overhead
        assert_eq!(line(&[(1.0, 3.0), (2.0, 1.0)]), Some((0.0, 2.0)));
        // one estimate only: scale 1, the rest is overhead
        assert_eq!(line(&[(1.0, 3.0), (1.0, 4.0)]), Some((1.0, 2.5)));
        assert_eq!(line(&[]), None);
    }

    #[test]
    fn measured_cells_replace_the_model_and_several_runs_average() {
        let stacks = crate::input::stack::discover(Path::new("stacks")).unwrap();
        let catalog = StackCatalog { stacks };
        let m = crate::input::matrix::load(Path::new("matrices/quick.yaml"), &catalog).unwrap();
        let cells = crate::input::matrix::expand(&m, &catalog);
        let c = &cells[3];
        let timed = |seconds: f64, requests: u32| Sample {
            cell: c.clone(),
            requests,
            repetitions: 2,
            timing: CellTiming {
                seconds,
                setup: Setup::None,
                setup_seconds: 0.0,
            },
        };
        let t = Timings::from_samples([
            timed(3.0, m.requests),
            timed(5.0, m.requests),
            timed(99.0, 1),
        ]);
        let costs = Costs::new(&m, &catalog, &t);
        assert!(costs.is_measured(c) && !costs.is_measured(&cells[4]));
        // (3/2 + 5/2) / 2 = 2 s per repetition; the burst of another size is left out
        let want = 2.0 * f64::from(m.repetitions);
        assert!((costs.work_s(c) - want).abs() < 1e-9, "{}", costs.work_s(c));
        // the model's setups: one start, then one live change (workers 1 -> 4)
        let model = Costs::model(&m, &catalog);
        let setups: f64 = cells.iter().map(|c| model.work_s(c)).sum::<f64>();
        let d = Model::default();
        assert!((model.total_s(&cells) - setups - d.start_s - d.live_s).abs() < 1e-9);
    }
}
