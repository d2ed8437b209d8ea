//! Readiness probes: TCP port, SQL `SELECT 1`, HTTP status, engine health; polled with a
//! short backoff until a deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};

use crate::burst::{HttpRequest, send};
use crate::engine::Engine;

/// What "ready" means for one service.
#[derive(Clone, Debug)]
pub enum Probe {
    /// The port accepts a TCP connection.
    Tcp(SocketAddr),
    /// `SELECT 1` succeeds at this database URL.
    Sql(String),
    /// `GET path` answers 200.
    Http {
        /// Published address.
        addr: SocketAddr,
        /// Path to get.
        path: String,
    },
    /// The engine reports the container healthy.
    Healthy(String),
    /// The container runs.
    Running(String),
    /// The container exited with status 0.
    Completed(String),
}

impl Probe {
    /// Checks once; `Ok(())` when ready, else what is wrong.
    pub async fn check(&self, engine: &Engine) -> Result<()> {
        match self {
            Probe::Tcp(addr) => {
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| anyhow!("connect to {addr} timed out"))??;
                Ok(())
            }
            Probe::Sql(url) => crate::probe::ping(url).await,
            Probe::Http { addr, path } => {
                let r = send(
                    *addr,
                    &HttpRequest::get("localhost", path),
                    Duration::from_secs(3),
                )
                .await?;
                if r.status == 200 {
                    Ok(())
                } else {
                    bail!("GET {path} answered {}", r.status)
                }
            }
            Probe::Healthy(id) => match engine.state(id).await?.health.as_deref() {
                Some("healthy") => Ok(()),
                other => bail!("health is {}", other.unwrap_or("unknown")),
            },
            Probe::Running(id) => {
                let st = engine.state(id).await?;
                if st.running {
                    Ok(())
                } else {
                    bail!("container is not running (exit code {:?})", st.exit_code)
                }
            }
            Probe::Completed(id) => match engine.state(id).await?.exit_code {
                Some(0) => Ok(()),
                Some(c) => Err(anyhow!("container exited with {c}")),
                None => bail!("container is still running"),
            },
        }
    }
}

/// Polls `probes` in order (each must pass before the next is tried) with a backoff from
/// 5 ms to 200 ms until `deadline`. While waiting, `alive` is asked whether the container
/// still runs, so a crashed service fails at once instead of at the deadline.
pub async fn wait_ready(
    engine: &Engine,
    probes: &[Probe],
    container: Option<&str>,
    deadline: Instant,
) -> Result<Duration> {
    let start = Instant::now();
    for probe in probes {
        let mut pause = Duration::from_millis(5);
        loop {
            let err = match probe.check(engine).await {
                Ok(()) => break,
                Err(e) => e,
            };
            if let Some(id) = container {
                let st = engine.state(id).await?;
                if !st.running && !matches!(probe, Probe::Completed(_)) {
                    bail!("the container stopped (exit code {:?})", st.exit_code);
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "not ready after {:.1} s: {probe:?} still fails: {err:#}",
                    start.elapsed().as_secs_f64()
                );
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 3 / 2).min(Duration::from_millis(200));
        }
    }
    Ok(start.elapsed())
}
