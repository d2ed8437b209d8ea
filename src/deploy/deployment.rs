//! A running instance of one stack: its network, one container per service, the
//! published addresses, and reconfiguration that recreates only what changed.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::burst::http::{BurstResult, BurstSpec};
use crate::deploy::database::{self, Db, Queries, Sqlite};
use crate::deploy::engine::{
    Engine, HOST_LABEL, KEEP_LABEL, PID_LABEL, RUN_LABEL, SERVICE_LABEL, STACK_LABEL, STARTED_LABEL,
};
use crate::deploy::image;
use crate::deploy::progress::{Progress, Step};
use crate::deploy::ready::{Probe, wait_ready};
use crate::input::route::{Route, RouteChoice};
use crate::input::stack::{Build, Condition, DatabaseKind, Driver, Placement, Stack};

/// A number unique within this process, so that no name is reused even when a stack is
/// recreated while pieces of the old one could not be removed yet.
pub fn next_serial() -> u64 {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// How long one service may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a live change may take.
const LIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a starting stack's containers are checked for one that died.
pub const WATCH_EVERY: Duration = Duration::from_millis(250);

/// A container of the stack died, was killed or restarted: the stack cannot be measured
/// as it is. Carries the service's last log lines.
#[derive(Debug, thiserror::Error)]
#[error("stack {stack}: {}\n{}", self.reason(), log_block(service, *replica, logs))]
pub struct ServiceDied {
    /// The stack.
    pub stack: String,
    /// The service.
    pub service: String,
    /// Which of its containers (1-based), when it has several.
    pub replica: Option<usize>,
    /// What happened to it.
    pub what: String,
    /// Its last log lines.
    pub logs: String,
}

/// A service that did not become ready by its deadline, or whose readiness probe was
/// refused: which service, the kind of probe, what happened, and its last log lines.
#[derive(Debug, thiserror::Error)]
#[error("{error}\n{}", log_block(service, None, logs))]
pub struct NotReady {
    /// The service.
    pub service: String,
    /// The kind of probe that failed (`ready::Probe::kind`).
    pub probe: &'static str,
    /// What happened, in words.
    pub error: String,
    /// Its last log lines.
    pub logs: String,
}

/// Why a stack could not start, as far as telling one failure from another needs: a
/// service that died (which one, and what happened to it), a service that was not ready
/// (which one, and the kind of probe), or another error (an image that did not build,
/// the engine), by its first line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartFault {
    /// A service died: its name, replica and what happened (an exit code, the OOM killer).
    Died(String),
    /// A service was not ready: its name and the kind of probe.
    NotReady(String, &'static str),
    /// Anything else, by the first line of its message.
    Other(String),
}

impl StartFault {
    /// The fault of a start error.
    pub fn of(e: &anyhow::Error) -> StartFault {
        if let Some(died) = e.downcast_ref::<ServiceDied>() {
            return StartFault::Died(died.reason());
        }
        if let Some(unready) = e.downcast_ref::<NotReady>() {
            return StartFault::NotReady(unready.service.clone(), unready.probe);
        }
        let text = format!("{e:#}");
        StartFault::Other(text.lines().next().unwrap_or_default().to_string())
    }
}

impl ServiceDied {
    /// What happened, in one line: the same line for the same failure, so that a retry
    /// that fails the same way can be recognised.
    pub fn reason(&self) -> String {
        let replica = self
            .replica
            .map(|r| format!(" (replica {r})"))
            .unwrap_or_default();
        format!("service '{}'{replica} {}", self.service, self.what)
    }
}

/// What is wrong with a container in this state, if anything. `one_shot`: a job that may
/// end with status 0 (no health check, neither the target nor the database).
pub fn fault(st: &crate::deploy::engine::ContainerState, one_shot: bool) -> Option<String> {
    if st.oom_killed {
        return Some(
            "was killed for running out of memory (raise its mem_limit, or run fewer workers)"
                .into(),
        );
    }
    if st.restart_count > 0 {
        return Some(format!(
            "restarted {} time(s): its process exited and the engine started it again",
            st.restart_count
        ));
    }
    if st.running {
        return None;
    }
    match st.exit_code {
        Some(0) if one_shot => None,
        Some(c) => Some(format!("exited with code {c}")),
        None => Some("stopped".into()),
    }
}

/// Identity shared by everything one racy-matrix process creates.
#[derive(Clone, Debug)]
pub struct RunId {
    /// The value of the run label.
    pub id: String,
    /// Its stacks are meant to outlive the process (`run --keep-up`): never reaped as
    /// orphans, removed by `clean`.
    pub kept: bool,
}

impl RunId {
    /// A new id from the time, the pid and 32 random bits: two processes that share one
    /// engine (CI containers on one Docker socket, whose pids repeat) never share an id,
    /// so one's cleanup never removes the other's stack.
    pub fn new(prefix: &str) -> RunId {
        let now = chrono::Local::now().format("%Y%m%d-%H%M%S");
        let salt: u32 = rand::random();
        RunId {
            id: format!("{prefix}{now}-{}-{salt:08x}", std::process::id()),
            kept: false,
        }
    }

    /// The same run, its stacks marked to outlive the process when `kept`.
    pub fn keeping(self, kept: bool) -> RunId {
        RunId { kept, ..self }
    }

    /// The labels every object of this run carries.
    pub fn labels(&self) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (RUN_LABEL.to_string(), self.id.clone()),
            (PID_LABEL.to_string(), std::process::id().to_string()),
            (HOST_LABEL.to_string(), crate::deploy::engine::host_name()),
        ]);
        if self.kept {
            labels.insert(KEEP_LABEL.to_string(), "true".to_string());
        }
        if let Some(started) = crate::deploy::engine::process_started(std::process::id()) {
            labels.insert(STARTED_LABEL.to_string(), started);
        }
        labels
    }
}

struct Running {
    id: String,
    name: String,
}

/// One stack brought up for a run.
pub struct Deployment {
    /// The stack, its network and volumes, and its current variables.
    instance: std::sync::Arc<Instance>,
    /// The containers of each service (one per replica).
    containers: BTreeMap<String, Vec<Running>>,
    /// The services this instance runs, in start order (all but those of profiles its
    /// cells do not need).
    services: Vec<String>,
    /// Where the host reaches the target: its address on the stack's network, or its
    /// published port (see `route`).
    pub target: SocketAddr,
    /// The target's address on the stack's network (where a racer sends).
    pub inside: SocketAddr,
    /// The database's URL, by the same route.
    pub db_url: String,
    /// The route the target and the database are reached by (`None` before the target
    /// started).
    pub route: Option<Route>,
    /// The target's published port on 127.0.0.1 (what a user opens).
    pub published: SocketAddr,
    /// The database's URL on its published port.
    pub published_db_url: String,
    /// The container that fires the bursts on route `racer`.
    racer: Option<crate::deploy::racer::Racer>,
    /// Pool to the database.
    pub db: Option<Db>,
}

impl std::ops::Deref for Deployment {
    type Target = Instance;
    fn deref(&self) -> &Instance {
        &self.instance
    }
}

impl Deployment {
    /// Creates the network and starts every service in dependency order, waiting for each
    /// to be ready as its dependents require.
    pub async fn start(
        engine: &Engine,
        stack: &Stack,
        run: &RunId,
        vars: BTreeMap<String, String>,
        progress: &mut Progress<'_>,
    ) -> Result<Deployment> {
        Self::start_only(engine, stack, run, vars, &stack.start_order(), progress).await
    }

    /// Like `start`, for some services only (with every service they depend on listed
    /// before them), e.g. the database alone.
    pub async fn start_only(
        engine: &Engine,
        stack: &Stack,
        run: &RunId,
        vars: BTreeMap<String, String>,
        services: &[String],
        progress: &mut Progress<'_>,
    ) -> Result<Deployment> {
        let driver = stack.driver_for(&vars)?;
        let network = format!("racy-{}-{}-{}", run.id, stack.name, next_serial());
        engine.create_network(&network, run.labels()).await?;
        let mut d = Deployment {
            instance: std::sync::Arc::new(Instance {
                engine: engine.clone(),
                stack: stack.clone(),
                run: run.clone(),
                network: network.clone(),
                volumes: BTreeMap::new(),
                vars,
                driver,
                tunnels: None,
            }),
            containers: BTreeMap::new(),
            services: services.to_vec(),
            target: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_url: String::new(),
            route: None,
            inside: SocketAddr::from(([127, 0, 0, 1], 0)),
            published: SocketAddr::from(([127, 0, 0, 1], 0)),
            published_db_url: String::new(),
            racer: None,
            db: None,
        };
        let order = services.to_vec();
        let started = async {
            for vol in &stack.volumes {
                let name = format!("{network}-{vol}");
                engine.create_volume(&name, run.labels()).await?;
                // no launch holds the instance yet: this changes it in place
                std::sync::Arc::make_mut(&mut d.instance)
                    .volumes
                    .insert(vol.clone(), name);
            }
            // The racer comes first: on a remote engine every probe goes through it.
            if crate::input::route::racer_needed(engine.route, engine.local) {
                d.start_racer(progress).await?;
            }
            d.start_services(&order, progress).await?;
            Ok(())
        };
        if let Err(e) = started.await {
            // Leave nothing half-started behind (the error already carries the logs).
            let _ = d.shutdown().await;
            return Err(e);
        }
        Ok(d)
    }

    /// Changes the variables; recreates only the services whose configuration they reach,
    /// and returns those services.
    pub async fn reconfigure(
        &mut self,
        vars: BTreeMap<String, String>,
        progress: &mut Progress<'_>,
    ) -> Result<Vec<String>> {
        let mut changed = self.stack.services_changed(&self.vars, &vars);
        changed.retain(|s| self.services.contains(s));
        let live = self.stack.live_changes(&self.vars, &vars)?;
        let driver = self.stack.driver_for(&vars)?;
        // between cells no launch holds the instance: this changes it in place
        let instance = std::sync::Arc::make_mut(&mut self.instance);
        instance.vars = vars;
        instance.driver = driver;
        for change in &live {
            progress(Step::Live {
                var: &change.var,
                from: change.from,
                to: change.to,
                service: &change.live.service,
            });
            self.apply_live(change).await.with_context(|| {
                format!(
                    "stack {}: service '{}'",
                    self.stack.name, change.live.service
                )
            })?;
        }
        if changed.is_empty() {
            return Ok(changed);
        }
        for svc in changed.iter().rev() {
            for c in self.containers.remove(svc).unwrap_or_default() {
                self.engine.remove_container(&c.id).await?;
            }
        }
        self.start_services(&changed, progress).await?;
        // A recreated service behind the target (the app behind nginx) is ready only when
        // the target answers its health path through it again.
        if !changed.contains(&self.driver.target.service) {
            let probe = Probe::target(self.target, self.driver.target.health.as_deref());
            let deadline = Instant::now() + READY_TIMEOUT;
            let probes = [probe];
            let waited = tokio::select! {
                r = wait_ready(&self.engine, &probes, None, deadline) => r.map(|_| ()),
                died = self.watch() => return Err(died.into()),
            };
            if let Err(e) = waited {
                let mut logs = String::new();
                for svc in &changed {
                    let lines = self.logs(svc, 20).await;
                    logs.push_str(&format!("{}\n", log_block(svc, None, &lines)));
                }
                return Err(anyhow!("stack {}: {e:#}\n{logs}", self.stack.name));
            }
        }
        Ok(changed)
    }

    /// Runs the live variable's `apply` command with the new value in every container of
    /// its service, then waits until each one's `count` prints that value.
    async fn apply_live(&self, change: &crate::input::stack::LiveChange) -> Result<()> {
        let ids: Vec<String> = self
            .containers
            .get(&change.live.service)
            .into_iter()
            .flatten()
            .map(|c| c.id.clone())
            .collect();
        let mut cmd = change.live.apply.clone();
        cmd.push(change.to.to_string());
        for id in &ids {
            let out = self.engine.exec(id, &cmd, LIVE_TIMEOUT).await?;
            if out.exit_code != Some(0) {
                bail!(
                    "`{}` exited with {:?}: {}",
                    cmd.join(" "),
                    out.exit_code,
                    format!("{}{}", out.stdout, out.stderr).trim()
                );
            }
        }
        let probes: Vec<Probe> = ids
            .iter()
            .map(|id| Probe::Count {
                id: id.clone(),
                cmd: change.live.count.clone(),
                want: i64::from(change.to),
            })
            .collect();
        wait_ready(&self.engine, &probes, None, Instant::now() + LIVE_TIMEOUT)
            .await
            .with_context(|| format!("{} did not reach {}", change.var, change.to))?;
        Ok(())
    }

    /// Starts `services` (a dependency-closed list in start order): their images first,
    /// one at a time, then each service as soon as the services it depends on are ready,
    /// so independent services start side by side. On an error the services already in
    /// flight finish starting (so that every container is known and removed) and the first
    /// error is returned.
    async fn start_services(
        &mut self,
        services: &[String],
        progress: &mut Progress<'_>,
    ) -> Result<()> {
        let images = self.images(services, progress).await?;
        let mut ready: std::collections::BTreeSet<String> =
            self.containers.keys().cloned().collect();
        // services whose containers run (condition `service_started` is met), ready or not
        let mut started = ready.clone();
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut waiting: Vec<String> = services.to_vec();
        let mut running = futures_util::stream::FuturesUnordered::new();
        let mut first_err: Option<anyhow::Error> = None;
        // Set once the start has failed: launches still waiting for readiness stop waiting.
        let (cancel, cancelled) = tokio::sync::watch::channel(false);
        // Containers of services already launched are watched: one that dies fails the
        // start at once, even while another service waits for it (nginx for its app).
        let mut watch = tokio::time::interval(WATCH_EVERY);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if first_err.is_none() {
                let (now, later): (Vec<String>, Vec<String>) = waiting
                    .into_iter()
                    .partition(|svc| self.may_start(svc, &ready, &started));
                waiting = later;
                for svc in now {
                    progress(Step::Starting(&svc));
                    let launcher = self.launcher(cancelled.clone());
                    let image = images[&svc].clone();
                    let tx = started_tx.clone();
                    running.push(async move {
                        let launched = launcher.launch(&svc, image, tx).await;
                        (svc, launched)
                    });
                }
            }
            // a service whose containers run, or one whose launch ended
            let (svc, launched) = tokio::select! {
                biased;
                Some(svc) = started_rx.recv() => {
                    progress(Step::Running(&svc));
                    started.insert(svc);
                    continue;
                }
                done = futures_util::StreamExt::next(&mut running) => match done {
                    Some(done) => done,
                    None => break,
                },
                _ = watch.tick(), if first_err.is_none() => {
                    if let Some(died) = self.broken().await {
                        first_err = Some(died.into());
                        let _ = cancel.send(true);
                    }
                    continue;
                }
            };
            match self.adopt(&svc, launched).await {
                Ok(()) => {
                    progress(Step::Ready(&svc));
                    ready.insert(svc);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                    let _ = cancel.send(true);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if !waiting.is_empty() {
            bail!("services {waiting:?} wait for services that never became ready");
        }
        Ok(())
    }

    /// The image of each service, built (or found) one after another.
    async fn images(
        &self,
        services: &[String],
        progress: &mut Progress<'_>,
    ) -> Result<BTreeMap<String, String>> {
        let mut images = BTreeMap::new();
        for svc in services {
            let image = image_for(&self.engine, &self.stack, &self.vars, svc, progress)
                .await
                .with_context(|| format!("stack {}: service '{svc}'", self.stack.name))?;
            images.insert(svc.clone(), image);
        }
        Ok(images)
    }

    /// Whether `svc` may start: every service it depends on is ready, or only has to run
    /// (`condition: service_started`) and runs.
    fn may_start(
        &self,
        svc: &str,
        ready: &std::collections::BTreeSet<String>,
        started: &std::collections::BTreeSet<String>,
    ) -> bool {
        self.stack.depends_on(svc).iter().all(|(dep, cond)| {
            ready.contains(dep) || (*cond == Condition::Started && started.contains(dep))
        })
    }

    /// Takes over what a finished launch created and learned (its containers, the target's
    /// and the database's addresses, the database connection), whether it succeeded or
    /// not, and returns how it ended.
    async fn adopt(&mut self, svc: &str, launched: Launched) -> Result<()> {
        self.containers
            .entry(svc.to_string())
            .or_default()
            .extend(launched.containers);
        if let Some(at) = launched.target {
            self.target = at.host;
            self.inside = at.inside;
            self.published = at.published;
            self.route = Some(at.route);
        }
        if let Some((u, published)) = launched.db_url {
            self.db_url = u;
            self.published_db_url = published;
        }
        if let Some(old) = launched.db.and_then(|db| self.db.replace(db)) {
            old.close().await;
        }
        launched.result.map_err(|e| {
            if e.is::<ServiceDied>() {
                e
            } else {
                e.context(format!("stack {}: service '{svc}'", self.stack.name))
            }
        })
    }

    /// A launch of one of this instance's services (several run at once).
    fn launcher(&self, cancelled: tokio::sync::watch::Receiver<bool>) -> Launcher {
        Launcher {
            cancelled,
            instance: self.instance.clone(),
        }
    }

    /// Whether the service is a job that may end (status 0) while the stack runs on.
    fn one_shot(&self, svc: &str) -> bool {
        svc != self.driver.target.service
            && svc != self.driver.database.service
            && self
                .stack
                .service(svc, &self.vars)
                .map(|d| d.healthcheck.is_none())
                .unwrap_or(false)
    }

    /// The first container of the stack that died, was OOM-killed or restarted, with its
    /// last log lines; `None` while every service runs (or, for a job, ended well).
    pub async fn broken(&self) -> Option<ServiceDied> {
        let all: Vec<(&String, usize, usize, &Running)> = self
            .containers
            .iter()
            .flat_map(|(svc, list)| {
                list.iter()
                    .enumerate()
                    .map(move |(i, c)| (svc, i, list.len(), c))
            })
            .collect();
        let states =
            futures_util::future::join_all(all.iter().map(|(_, _, _, c)| self.engine.state(&c.id)))
                .await;
        for ((svc, i, n, c), st) in all.into_iter().zip(states) {
            // An engine that does not answer is the runner's concern, not a service fault.
            let Ok(st) = st else { continue };
            if let Some(what) = fault(&st, self.one_shot(svc)) {
                let logs = self.engine.logs_tail(&c.id, 20).await;
                return Some(ServiceDied {
                    stack: self.stack.name.clone(),
                    service: svc.clone(),
                    replica: (n > 1).then_some(i + 1),
                    what,
                    logs: self.redactor().clean(logs.trim_end()),
                });
            }
        }
        None
    }

    /// Resolves once a container of the stack dies (checked every [`WATCH_EVERY`]).
    pub async fn watch(&self) -> ServiceDied {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if let Some(d) = self.broken().await {
                return d;
            }
        }
    }

    /// The last log lines of a service.
    pub async fn logs(&self, svc: &str, n: usize) -> String {
        let mut out = String::new();
        for c in self.containers.get(svc).into_iter().flatten() {
            out.push_str(&self.engine.logs_tail(&c.id, n).await);
        }
        out
    }

    /// The last `n` log lines of every service, each under a heading.
    pub async fn all_logs(&self, n: usize) -> String {
        let mut out = String::new();
        for (svc, list) in &self.containers {
            for (i, c) in list.iter().enumerate() {
                let logs = self.engine.logs_tail(&c.id, n).await;
                let replica = (list.len() > 1).then_some(i + 1);
                out.push_str(&format!("{}\n", log_block(svc, replica, &logs)));
            }
        }
        out
    }

    /// Container names by service.
    pub fn container_names(&self) -> BTreeMap<String, String> {
        self.containers
            .iter()
            .map(|(k, v)| {
                let names: Vec<&str> = v.iter().map(|c| c.name.as_str()).collect();
                (k.clone(), names.join(", "))
            })
            .collect()
    }

    /// Starts the racer on the stack's network (route `racer`).
    async fn start_racer(&mut self, progress: &mut Progress<'_>) -> Result<()> {
        let base = match self.vars.get("BASE_IMAGE") {
            Some(b) => b.clone(),
            None => image::ensure_base(&self.engine, progress).await?,
        };
        let binary = crate::deploy::racer::binary()?;
        let tag =
            crate::deploy::racer::ensure_image(&self.engine, &base, &binary, progress).await?;
        let name = format!(
            "racy-{}-{}-racer-{}",
            self.run.id,
            self.stack.name,
            next_serial()
        );
        let mut labels = self.run.labels();
        labels.insert(STACK_LABEL.into(), self.stack.name.clone());
        progress(Step::StartingRacer(&name));
        let racer =
            crate::deploy::racer::Racer::start(&self.engine, &tag, &name, &self.network, labels)
                .await?;
        if !self.engine.local {
            // this host reaches nothing of the stack but through the racer
            let tunnels = crate::deploy::tunnel::Tunnels::new(
                &self.engine,
                &racer.id,
                crate::deploy::racer::INSIDE,
            );
            std::sync::Arc::make_mut(&mut self.instance).tunnels =
                Some(std::sync::Arc::new(tunnels));
        }
        self.racer = Some(racer);
        Ok(())
    }

    /// Fires one burst at the target by the instance's route: from this process, or from
    /// the racer beside the target.
    pub async fn fire(&self, spec: &BurstSpec, repetition: u32) -> Result<BurstResult> {
        match &self.racer {
            Some(r) => {
                let inside = BurstSpec {
                    addr: self.inside,
                    ..spec.clone()
                };
                r.fire(&inside, repetition).await
            }
            None => Ok(crate::burst::http::fire(spec, repetition).await),
        }
    }

    /// Removes every container and the network.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(db) = self.db.take() {
            db.close().await;
        }
        if let Some(r) = self.racer.take() {
            r.remove().await?;
        }
        let removals = self
            .containers
            .values()
            .flatten()
            .map(|c| self.engine.remove_container(&c.id));
        for r in futures_util::future::join_all(removals).await {
            r?;
        }
        for name in self.volumes.values() {
            self.engine.remove_volume(name).await?;
        }
        self.engine.remove_network(&self.network).await
    }
}

/// A stack instance's definition and configuration: what its deployment and every
/// launch of its services read, one copy per configuration, shared by the launches
/// running side by side.
#[derive(Clone)]
pub struct Instance {
    engine: Engine,
    /// The stack definition.
    pub stack: Stack,
    run: RunId,
    network: String,
    /// Engine volume name by the stack's volume name.
    volumes: BTreeMap<String, String>,
    vars: BTreeMap<String, String>,
    /// The driver block for the current variables.
    pub driver: Driver,
    /// How this host reaches the stack on an engine that is not local: through the racer.
    tunnels: Option<std::sync::Arc<crate::deploy::tunnel::Tunnels>>,
}

impl Instance {
    /// The variables the instance runs with.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// What hides this instance's secrets.
    pub fn redactor(&self) -> crate::input::redact::Redactor {
        crate::input::redact::Redactor::of_instance(&self.vars, Some(&self.driver))
    }
}

/// One service launch: the instance it belongs to, and whether the start failed elsewhere.
struct Launcher {
    /// Turns true when the start failed elsewhere: stop waiting for readiness.
    cancelled: tokio::sync::watch::Receiver<bool>,
    instance: std::sync::Arc<Instance>,
}

impl std::ops::Deref for Launcher {
    type Target = Instance;
    fn deref(&self) -> &Instance {
        &self.instance
    }
}

/// The heading and last log lines of one service (of one replica, when it has several),
/// as every error and failed cell shows them.
pub fn log_block(svc: &str, replica: Option<usize>, logs: &str) -> String {
    let replica = replica
        .map(|r| format!(" (replica {r})"))
        .unwrap_or_default();
    format!(
        "--- last log lines of {svc}{replica} ---\n{}",
        logs.trim_end()
    )
}

/// What a launch created and learned, also when it failed (so nothing is lost track of).
/// Where a container's port is reached.
#[derive(Clone, Copy)]
struct Reached {
    /// From this host, by the route (direct or published).
    host: SocketAddr,
    /// On the stack's network.
    inside: SocketAddr,
    /// Published on 127.0.0.1.
    published: SocketAddr,
    /// How bursts reach it.
    route: Route,
}

struct Launched {
    containers: Vec<Running>,
    /// Where the target is reached.
    target: Option<Reached>,
    /// The database's URL by the route, and on its published port.
    db_url: Option<(String, String)>,
    db: Option<Db>,
    result: Result<()>,
}

impl Launcher {
    /// Creates the service's containers (one per replica), says so on `started`, and
    /// waits until each is ready.
    async fn launch(
        &self,
        svc: &str,
        image: String,
        started: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Launched {
        let mut out = Launched {
            containers: Vec::new(),
            target: None,
            db_url: None,
            db: None,
            result: Ok(()),
        };
        out.result = self.launch_into(svc, image, &mut out, started).await;
        out
    }

    async fn launch_into(
        &self,
        svc: &str,
        image: String,
        out: &mut Launched,
        on_started: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<()> {
        let started = self.create_containers(svc, image, out).await?;
        // dependents that only need the containers running may start now
        let _ = on_started.send(svc.to_string());
        // The replicas start together; each must be ready.
        for (i, id) in started.iter().enumerate() {
            let replica = (started.len() > 1).then_some(i + 1);
            self.await_ready(svc, id, replica, out).await?;
        }
        if self.driver.database.service == svc {
            out.db = Some(self.connect_database(&started[0], out).await?);
        }
        Ok(())
    }

    /// Creates and starts the service's containers, one per replica, and returns their ids
    /// (each is also recorded in `out` at once, so that nothing created is lost track of).
    async fn create_containers(
        &self,
        svc: &str,
        image: String,
        out: &mut Launched,
    ) -> Result<Vec<String>> {
        let def = self.stack.service(svc, &self.vars)?;
        let driver = &self.driver;
        let replicas = def.replicas()?;
        let is_target = driver.target.service == svc;
        let is_db = driver.database.service == svc;
        if replicas > 1 && (is_target || is_db) {
            bail!(
                "deploy.replicas is {replicas}, but the burst target and the database run as one container"
            );
        }
        let mut publish = Vec::new();
        if is_target {
            publish.push(driver.target.port);
        }
        if is_db && driver.database.engine != DatabaseKind::Sqlite {
            publish.push(driver.database.port);
        }
        let mut labels = self.run.labels();
        labels.insert(STACK_LABEL.into(), self.stack.name.clone());
        labels.insert(SERVICE_LABEL.into(), svc.to_string());
        let placement = Placement {
            image,
            labels,
            network: self.network.clone(),
            alias: svc.to_string(),
            publish,
            volumes: &self.volumes,
        };
        let mut started = Vec::new();
        for _ in 0..replicas {
            let name = format!(
                "racy-{}-{}-{svc}-{}",
                self.run.id,
                self.stack.name,
                next_serial()
            );
            let spec = def.container_spec(&name, &placement)?;
            let id = self.engine.run_container(&spec).await?;
            out.containers.push(Running {
                id: id.clone(),
                name,
            });
            started.push(id);
        }
        Ok(started)
    }

    /// Waits until one container of the service is ready, or the start failed elsewhere.
    /// A container that ended is named as the failure, with its exit code and logs.
    async fn await_ready(
        &self,
        svc: &str,
        id: &str,
        replica: Option<usize>,
        out: &mut Launched,
    ) -> Result<()> {
        let probes = self.probes(svc, id, out).await?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut cancelled = self.cancelled.clone();
        let waited = tokio::select! {
            r = wait_ready(&self.engine, &probes, Some(id), deadline) => r.map(|_| ()),
            _ = cancelled.wait_for(|c| *c) => bail!("stopped waiting: the start failed"),
        };
        let Err(e) = waited else {
            return Ok(());
        };
        let logs = self
            .redactor()
            .clean(self.engine.logs_tail(id, 20).await.trim_end());
        if let Ok(st) = self.engine.state(id).await
            && let Some(what) = fault(&st, false)
        {
            return Err(ServiceDied {
                stack: self.stack.name.clone(),
                service: svc.to_string(),
                replica,
                what,
                logs,
            }
            .into());
        }
        let probe = e
            .downcast_ref::<crate::deploy::ready::Unready>()
            .map_or("other", |u| u.probe);
        Err(NotReady {
            service: svc.to_string(),
            probe,
            error: format!("{e:#}"),
            logs,
        }
        .into())
    }

    /// The connection to the stack's database, once its container `id` is ready.
    async fn connect_database(&self, id: &str, out: &Launched) -> Result<Db> {
        let driver = &self.driver;
        let queries = Queries {
            reset: driver.reset.clone(),
            observe: driver.observe.clone(),
            invariants: driver.invariants.clone(),
        };
        Ok(match driver.database.engine {
            DatabaseKind::Sqlite => Db::sqlite(
                Sqlite {
                    engine: self.engine.clone(),
                    container: id.to_string(),
                    file: driver.database.name.clone(),
                },
                queries,
            ),
            _ => {
                let url = out.db_url.as_ref().map_or("", |(u, _)| u.as_str());
                Db::connect(url, queries).await?
            }
        })
    }

    /// Where a container's port is reached, by the engine's route choice.
    async fn address(&self, id: &str, port: u16) -> Result<Reached> {
        let at = self.engine.whereabouts(id, port, &self.network).await?;
        let published = at
            .published
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .ok_or_else(|| anyhow!("container port {port} of {id} is not published"))?;
        let Some(ip) = at.address else {
            bail!(
                "the engine reports no address of container {id} on {}",
                self.network
            );
        };
        let inside = SocketAddr::new(ip, port);
        let why = match self.engine.route {
            RouteChoice::Published => Some("route published was asked".to_string()),
            _ => crate::input::route::unreachable(at.gateway, self.engine.local),
        };
        let route =
            crate::input::route::decide(self.engine.route, why.as_deref(), self.engine.local)?;
        let host = match (&why, &self.tunnels) {
            (None, _) => inside,
            (Some(_), Some(tunnels)) => tunnels.to(inside).await?,
            (Some(_), None) => published,
        };
        Ok(Reached {
            host,
            inside,
            published,
            route,
        })
    }

    /// The probes that say `svc` is ready: the database answers SQL, the target answers its
    /// health path, a service with a health check is healthy, any other one runs.
    async fn probes(&self, svc: &str, id: &str, out: &mut Launched) -> Result<Vec<Probe>> {
        let driver = &self.driver;
        // The service's own health check, run by racy-matrix itself so that readiness is
        // noticed at once rather than at the engine's next interval.
        let health = self
            .stack
            .service(svc, &self.vars)?
            .health()?
            .and_then(|h| h.test.probe_command())
            .map(|cmd| Probe::Exec {
                id: id.to_string(),
                cmd,
            });
        if driver.database.service == svc && driver.database.engine == DatabaseKind::Sqlite {
            let check = Probe::Exec {
                id: id.to_string(),
                cmd: vec![
                    "sqlite3".into(),
                    driver.database.name.clone(),
                    "SELECT 1".into(),
                ],
            };
            return Ok(health.into_iter().chain([check]).collect());
        }
        if driver.database.service == svc {
            let at = self.address(id, driver.database.port).await?;
            let db = &driver.database;
            let url = |a: SocketAddr| database::url(db.engine, &db.user, &db.password, a, &db.name);
            out.db_url = Some((url(at.host), url(at.published)));
            return Ok(vec![Probe::Tcp(at.host), Probe::Sql(url(at.host))]);
        }
        if driver.target.service == svc {
            let at = self.address(id, driver.target.port).await?;
            out.target = Some(at);
            let target = at.host;
            return Ok(vec![
                Probe::Tcp(target),
                Probe::target(target, driver.target.health.as_deref()),
            ]);
        }
        let wanted = |cond: Condition| {
            self.stack.start_order().iter().any(|other| {
                self.stack
                    .depends_on(other)
                    .iter()
                    .any(|(d, c)| d == svc && *c == cond)
            })
        };
        if wanted(Condition::Completed) {
            return Ok(vec![Probe::Completed(id.to_string())]);
        }
        Ok(vec![
            health.unwrap_or_else(|| Probe::Running(id.to_string())),
        ])
    }
}

/// Builds (or finds) the image of every service of a stack, and returns their tags.
pub async fn build_images(
    engine: &Engine,
    stack: &Stack,
    vars: &BTreeMap<String, String>,
    progress: &mut Progress<'_>,
) -> Result<Vec<String>> {
    let mut tags = Vec::new();
    for svc in stack.start_order() {
        let tag = image_for(engine, stack, vars, &svc, progress)
            .await
            .with_context(|| format!("stack {}: service '{svc}'", stack.name))?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

/// The image a service runs: built (or found) from its build context, or its `image`.
async fn image_for(
    engine: &Engine,
    stack: &Stack,
    vars: &BTreeMap<String, String>,
    svc: &str,
    progress: &mut Progress<'_>,
) -> Result<String> {
    let def = stack.service(svc, vars)?;
    Ok(match &def.build {
        Some(build) => {
            let (context, dockerfile, args) = match build {
                Build::Context(c) => (c.clone(), None, BTreeMap::new()),
                Build::Long {
                    context,
                    dockerfile,
                    args,
                } => (
                    context.clone(),
                    dockerfile.as_deref(),
                    args.as_ref().map(|a| a.pairs()).unwrap_or_default(),
                ),
            };
            let dir = stack.dir().join(&context);
            let (tag, built) =
                image::ensure_built(engine, &dir, dockerfile, &args, &mut |step| match step {
                    Step::Building { line, .. } => progress(Step::Building {
                        service: Some(svc),
                        line,
                    }),
                    other => progress(other),
                })
                .await
                .with_context(|| format!("service '{svc}'"))?;
            if built {
                progress(Step::Built(&tag));
            }
            tag
        }
        None => def.image.clone().ok_or_else(|| anyhow!("no image"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_of_one_process_in_one_second_differ() {
        let ids: std::collections::BTreeSet<String> =
            (0..64).map(|_| RunId::new("t-").id).collect();
        assert_eq!(ids.len(), 64, "{ids:?}");
        assert!(ids.iter().all(|id| id.starts_with("t-")));
    }

    #[test]
    fn container_faults() {
        let st = |running: bool, exit_code: Option<i64>| crate::deploy::engine::ContainerState {
            running,
            exit_code,
            health: None,
            oom_killed: false,
            restart_count: 0,
        };
        assert_eq!(fault(&st(true, None), false), None);
        assert_eq!(
            fault(&st(false, Some(0)), true),
            None,
            "a job that ended well"
        );
        assert_eq!(
            fault(&st(false, Some(0)), false).as_deref(),
            Some("exited with code 0"),
            "a server that ended"
        );
        assert_eq!(
            fault(&st(false, Some(137)), true).as_deref(),
            Some("exited with code 137")
        );
        let oom = crate::deploy::engine::ContainerState {
            oom_killed: true,
            ..st(true, None)
        };
        assert!(
            fault(&oom, true).unwrap().contains("out of memory"),
            "even while it runs"
        );
        let restarted = crate::deploy::engine::ContainerState {
            restart_count: 2,
            ..st(true, None)
        };
        assert!(
            fault(&restarted, false)
                .unwrap()
                .starts_with("restarted 2 time")
        );
    }
}
