//! A running instance of one stack: its network, one container per service, the
//! published addresses, and reconfiguration that recreates only what changed.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bollard::models::HealthConfig;

use crate::engine::{
    ContainerSpec, Engine, HOST_LABEL, PID_LABEL, RUN_LABEL, SERVICE_LABEL, STACK_LABEL,
    compose_duration_ns,
};
use crate::image;
use crate::probe::{self, Db};
use crate::ready::{Probe, wait_ready};
use crate::stack::{Build, Condition, Stack, XRacy};

/// A number unique within this process, so that no name is reused even when a stack is
/// recreated while pieces of the old one could not be removed yet.
fn next_serial() -> u64 {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// How long one service may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// Memory limit for services that set none.
const DEFAULT_MEMORY: i64 = 1 << 30;

/// Identity shared by everything one racy-matrix process creates.
#[derive(Clone, Debug)]
pub struct RunId {
    /// The value of the run label.
    pub id: String,
}

impl RunId {
    /// A new id from the time and the pid.
    pub fn new(prefix: &str) -> RunId {
        let now = chrono::Local::now().format("%Y%m%d-%H%M%S");
        RunId {
            id: format!("{prefix}{now}-{}", std::process::id()),
        }
    }

    /// The labels every object of this run carries.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (RUN_LABEL.to_string(), self.id.clone()),
            (PID_LABEL.to_string(), std::process::id().to_string()),
            (HOST_LABEL.to_string(), crate::engine::host_name()),
        ])
    }
}

struct Running {
    id: String,
    name: String,
}

/// One stack brought up for a run.
pub struct Deployment {
    engine: Engine,
    /// The stack definition.
    pub stack: Stack,
    run: RunId,
    network: String,
    containers: BTreeMap<String, Running>,
    vars: BTreeMap<String, String>,
    /// Where bursts go (the target's published port).
    pub target: SocketAddr,
    /// The database's URL on its published port.
    pub db_url: String,
    /// Pool to the database.
    pub db: Option<Db>,
    /// The driver block for the current variables.
    pub driver: XRacy,
}

impl Deployment {
    /// Creates the network and starts every service in dependency order, waiting for each
    /// to be ready as its dependents require.
    pub async fn start(
        engine: &Engine,
        stack: &Stack,
        run: &RunId,
        vars: BTreeMap<String, String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Deployment> {
        let driver = stack.driver(&vars)?;
        let network = format!("racy-{}-{}-{}", run.id, stack.name, next_serial());
        engine.create_network(&network, run.labels()).await?;
        let mut d = Deployment {
            engine: engine.clone(),
            stack: stack.clone(),
            run: run.clone(),
            network,
            containers: BTreeMap::new(),
            vars,
            target: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_url: String::new(),
            db: None,
            driver,
        };
        let order = stack.start_order();
        if let Err(e) = d.start_services(&order, progress).await {
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
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<String>> {
        let changed = self.stack.services_changed(&self.vars, &vars);
        self.vars = vars;
        self.driver = self.stack.driver(&self.vars)?;
        if changed.is_empty() {
            return Ok(changed);
        }
        for svc in changed.iter().rev() {
            if let Some(c) = self.containers.remove(svc) {
                self.engine.remove_container(&c.id).await?;
            }
        }
        self.start_services(&changed, progress).await?;
        // A recreated service behind the target (the app behind nginx) is ready only when
        // the target answers its health path through it again.
        if !changed.contains(&self.driver.target.service) {
            let probe = Probe::Http {
                addr: self.target,
                path: self.driver.target.health.clone(),
            };
            let deadline = Instant::now() + READY_TIMEOUT;
            if let Err(e) = wait_ready(&self.engine, &[probe], None, deadline).await {
                let mut logs = String::new();
                for svc in &changed {
                    logs.push_str(&format!(
                        "--- last log lines of {svc} ---\n{}\n",
                        self.logs(svc, 20).await.trim_end()
                    ));
                }
                return Err(anyhow!("stack {}: {e:#}\n{logs}", self.stack.name));
            }
        }
        Ok(changed)
    }

    async fn start_services(
        &mut self,
        services: &[String],
        progress: &mut dyn FnMut(&str),
    ) -> Result<()> {
        for svc in services {
            self.start_service(svc, progress)
                .await
                .with_context(|| format!("stack {}: service '{svc}'", self.stack.name))?;
        }
        Ok(())
    }

    async fn start_service(&mut self, svc: &str, progress: &mut dyn FnMut(&str)) -> Result<()> {
        let def = self.stack.service(svc, &self.vars)?;
        let image = match &def.build {
            Some(build) => {
                let (context, args) = match build {
                    Build::Context(c) => (c.clone(), BTreeMap::new()),
                    Build::Long { context, args, .. } => (
                        context.clone(),
                        args.as_ref().map(|a| a.pairs()).unwrap_or_default(),
                    ),
                };
                let dir = self.stack.dir().join(&context);
                let (tag, built) = image::ensure_built(&self.engine, &dir, &args, &mut |l| {
                    progress(&format!("building {svc}: {l}"))
                })
                .await?;
                if built {
                    progress(&format!("built {tag}"));
                }
                tag
            }
            None => def.image.clone().ok_or_else(|| anyhow!("no image"))?,
        };
        let x = self.driver.clone();
        let mut publish = Vec::new();
        if x.target.service == svc {
            publish.push(x.target.port);
        }
        if x.database.service == svc {
            publish.push(x.database.port);
        }
        let mut labels = self.run.labels();
        labels.insert(STACK_LABEL.into(), self.stack.name.clone());
        labels.insert(SERVICE_LABEL.into(), svc.to_string());
        let healthcheck = match &def.healthcheck {
            Some(h) => Some(HealthConfig {
                test: Some(match &h.test {
                    crate::stack::StrOrList::One(s) => vec!["CMD-SHELL".into(), s.clone()],
                    l => l.words(),
                }),
                interval: h.interval.as_deref().map(compose_duration_ns).transpose()?,
                timeout: h.timeout.as_deref().map(compose_duration_ns).transpose()?,
                retries: h.retries,
                start_period: h
                    .start_period
                    .as_deref()
                    .map(compose_duration_ns)
                    .transpose()?,
                start_interval: None,
            }),
            None => None,
        };
        let name = format!(
            "racy-{}-{}-{svc}-{}",
            self.run.id,
            self.stack.name,
            next_serial()
        );
        let spec = ContainerSpec {
            name: name.clone(),
            image,
            cmd: def.command.as_ref().map(|c| c.words()),
            entrypoint: def.entrypoint.as_ref().map(|c| c.words()),
            env: def
                .environment
                .as_ref()
                .map(|e| {
                    e.pairs()
                        .into_iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect()
                })
                .unwrap_or_default(),
            labels,
            network: self.network.clone(),
            aliases: vec![svc.to_string()],
            publish,
            healthcheck,
            memory: Some(match &def.mem_limit {
                Some(m) => parse_bytes(m)?,
                None => DEFAULT_MEMORY,
            }),
            user: def.user.clone(),
            cap_drop: def.cap_drop.clone(),
            cap_add: def.cap_add.clone(),
        };
        progress(&format!("starting {svc}"));
        let id = self.engine.run_container(&spec).await?;
        self.containers.insert(
            svc.to_string(),
            Running {
                id: id.clone(),
                name,
            },
        );
        let probes = self.probes(svc, &id).await?;
        let deadline = Instant::now() + READY_TIMEOUT;
        if let Err(e) = wait_ready(&self.engine, &probes, Some(&id), deadline).await {
            let logs = self.engine.logs_tail(&id, 20).await;
            return Err(anyhow!(
                "{e:#}\n--- last log lines of {svc} ---\n{}",
                logs.trim_end()
            ));
        }
        if x.database.service == svc {
            if let Some(db) = self.db.take() {
                db.close().await;
            }
            self.db = Some(Db::connect(&self.db_url, x.reset.clone(), x.observe.clone()).await?);
        }
        Ok(())
    }

    /// The probes that say `svc` is ready: the database answers SQL, the target answers its
    /// health path, a service with a health check is healthy, any other one runs.
    async fn probes(&mut self, svc: &str, id: &str) -> Result<Vec<Probe>> {
        let x = self.driver.clone();
        if x.database.service == svc {
            let port = self.engine.published_port(id, x.database.port).await?;
            self.db_url = probe::url(
                x.database.engine,
                &x.database.user,
                &x.database.password,
                port,
                &x.database.name,
            );
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            return Ok(vec![Probe::Tcp(addr), Probe::Sql(self.db_url.clone())]);
        }
        if x.target.service == svc {
            let port = self.engine.published_port(id, x.target.port).await?;
            self.target = SocketAddr::from(([127, 0, 0, 1], port));
            return Ok(vec![
                Probe::Tcp(self.target),
                Probe::Http {
                    addr: self.target,
                    path: x.target.health.clone(),
                },
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
        if wanted(Condition::Healthy) && self.stack.services[svc].healthcheck.is_some() {
            return Ok(vec![Probe::Healthy(id.to_string())]);
        }
        Ok(vec![Probe::Running(id.to_string())])
    }

    /// The last log lines of a service.
    pub async fn logs(&self, svc: &str, n: usize) -> String {
        match self.containers.get(svc) {
            Some(c) => self.engine.logs_tail(&c.id, n).await,
            None => String::new(),
        }
    }

    /// The last `n` log lines of every service, each under a heading.
    pub async fn all_logs(&self, n: usize) -> String {
        let mut out = String::new();
        for (svc, c) in &self.containers {
            let logs = self.engine.logs_tail(&c.id, n).await;
            out.push_str(&format!(
                "--- last log lines of {svc} ---\n{}\n",
                logs.trim_end()
            ));
        }
        out
    }

    /// Container names by service.
    pub fn container_names(&self) -> BTreeMap<String, String> {
        self.containers
            .iter()
            .map(|(k, v)| (k.clone(), v.name.clone()))
            .collect()
    }

    /// Removes every container and the network.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(db) = self.db.take() {
            db.close().await;
        }
        let removals = self
            .containers
            .values()
            .map(|c| self.engine.remove_container(&c.id));
        for r in futures_util::future::join_all(removals).await {
            r?;
        }
        self.engine.remove_network(&self.network).await
    }
}

/// Parses a compose byte size (`512m`, `1g`, `1073741824`).
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| anyhow!("bad memory size '{s}'"))?;
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1GB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert!(parse_bytes("lots").is_err());
    }
}
