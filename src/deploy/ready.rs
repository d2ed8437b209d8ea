//! Readiness probes: TCP port, SQL `SELECT 1`, HTTP status, health-check commands; polled with a
//! short backoff until a deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};

use crate::burst::http::{HttpRequest, send};
use crate::deploy::engine::Engine;

/// What "ready" means for one service.
#[derive(Clone, Debug)]
pub enum Probe {
    /// The port accepts a TCP connection.
    Tcp(SocketAddr),
    /// `SELECT 1` succeeds at this database URL.
    Sql(String),
    /// `GET /` answers anything but 502, 503 or 504 (a target without a health path: an
    /// app answering at all, not the proxy in front of it).
    Answers(SocketAddr),
    /// `GET path` answers 200.
    Http {
        /// Published address.
        addr: SocketAddr,
        /// Path to get.
        path: String,
    },
    /// The container runs, or ended with status 0 (a one-shot job nothing waits for).
    Running(String),
    /// The container exited with status 0.
    Completed(String),
    /// A command run inside the container prints this number (a live variable's value).
    Count {
        /// Container id.
        id: String,
        /// The command.
        cmd: Vec<String>,
        /// The value awaited.
        want: i64,
    },
    /// A command run inside the container exits with status 0 (a compose health check).
    Exec {
        /// Container id.
        id: String,
        /// The command.
        cmd: Vec<String>,
    },
}

impl Probe {
    /// What kind of check it is, the same for the same check at another address: what
    /// tells two readiness failures of a service apart.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Tcp(_) => "tcp",
            Probe::Sql(_) => "sql",
            Probe::Answers(_) => "answers",
            Probe::Http { .. } => "http",
            Probe::Running(_) => "running",
            Probe::Completed(_) => "completed",
            Probe::Count { .. } => "count",
            Probe::Exec { .. } => "exec",
        }
    }
}

/// Readiness that did not come: which kind of probe failed, and how, in words.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Unready {
    /// The probe's kind ([`Probe::kind`]).
    pub probe: &'static str,
    /// What happened.
    pub message: String,
}

/// A probe failure that waiting cannot fix (the database refused the credentials it was
/// given): readiness gives up at once instead of at its deadline.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Hopeless(pub String);

/// What a probe checks, for messages: never the database URL, which holds the password.
impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Tcp(addr) => write!(f, "a TCP connection to {addr}"),
            Probe::Sql(url) => write!(f, "SELECT 1 at {}", crate::input::redact::url(url)),
            Probe::Http { addr, path } => write!(f, "GET http://{addr}{path} answering 200"),
            Probe::Answers(addr) => write!(f, "GET http://{addr}/ answering (not 502/503/504)"),
            Probe::Running(_) => write!(f, "the container running"),
            Probe::Completed(_) => write!(f, "the container exiting with status 0"),
            Probe::Count { cmd, want, .. } => write!(f, "`{}` printing {want}", cmd.join(" ")),
            Probe::Exec { cmd, .. } => write!(f, "the health check `{}`", cmd.join(" ")),
        }
    }
}

impl Probe {
    /// The probe that sees the burst target ready at `addr`: its health path answering
    /// 200, or, without one, `/` answering anything but a gateway error.
    pub fn target(addr: SocketAddr, health: Option<&str>) -> Probe {
        match health {
            Some(path) => Probe::Http {
                addr,
                path: path.to_string(),
            },
            None => Probe::Answers(addr),
        }
    }

    /// Checks once; `Ok(())` when ready, else what is wrong.
    pub async fn check(&self, engine: &Engine) -> Result<()> {
        match self {
            Probe::Tcp(addr) => {
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| anyhow!("connect to {addr} timed out"))??;
                Ok(())
            }
            Probe::Sql(url) => crate::deploy::database::ping(url).await,
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
            Probe::Answers(addr) => {
                let get = HttpRequest::get("localhost", "/");
                let r = send(*addr, &get, Duration::from_secs(3)).await?;
                match r.status {
                    502..=504 => bail!("GET / answered {}", r.status),
                    _ => Ok(()),
                }
            }
            Probe::Running(id) => {
                let st = engine.state(id).await?;
                if st.running || st.exit_code == Some(0) {
                    Ok(())
                } else {
                    bail!("container is not running (exit code {:?})", st.exit_code)
                }
            }
            Probe::Count { id, cmd, want } => {
                let out = engine.exec(id, cmd, Duration::from_secs(10)).await?;
                match out.stdout.trim().parse::<i64>() {
                    Ok(n) if n == *want => Ok(()),
                    Ok(n) => bail!("`{}` says {n}, waiting for {want}", cmd.join(" ")),
                    Err(_) => bail!(
                        "`{}` printed {:?}, not a number ({})",
                        cmd.join(" "),
                        out.stdout.trim(),
                        out.stderr.trim()
                    ),
                }
            }
            Probe::Exec { id, cmd } => {
                let out = engine.exec(id, cmd, Duration::from_secs(10)).await?;
                match out.exit_code {
                    Some(0) => Ok(()),
                    code => {
                        let said = format!("{}{}", out.stdout, out.stderr);
                        let last = said.trim().lines().last().unwrap_or("").to_string();
                        bail!("`{}` exited with {code:?}: {last}", cmd.join(" "))
                    }
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
/// 5 ms to 50 ms (100 ms for commands run in the container) until `deadline`. While
/// waiting, the engine is asked whether `container` still runs, so a crashed service fails
/// at once instead of at the deadline; so does a [`Hopeless`] failure.
pub async fn wait_ready(
    engine: &Engine,
    probes: &[Probe],
    container: Option<&str>,
    deadline: Instant,
) -> Result<Duration> {
    let start = Instant::now();
    for probe in probes {
        // cheap probes poll up to every 50 ms; a command run in the container costs an
        // exec and a process start, so those back off to 100 ms
        let cap = match probe {
            Probe::Exec { .. } | Probe::Count { .. } => Duration::from_millis(100),
            _ => Duration::from_millis(50),
        };
        let mut pause = Duration::from_millis(5);
        loop {
            let err = match probe.check(engine).await {
                Ok(()) => break,
                Err(e) if e.is::<Hopeless>() => {
                    return Err(Unready {
                        probe: probe.kind(),
                        message: format!("{probe} failed: {e:#}"),
                    }
                    .into());
                }
                Err(e) => e,
            };
            if let Some(id) = container {
                let st = engine.state(id).await?;
                if !st.running && !matches!(probe, Probe::Completed(_)) {
                    return Err(Unready {
                        probe: probe.kind(),
                        message: format!("the container stopped (exit code {:?})", st.exit_code),
                    }
                    .into());
                }
            }
            if Instant::now() >= deadline {
                return Err(Unready {
                    probe: probe.kind(),
                    message: format!(
                        "not ready after {:.1} s: waited for {probe}, which still fails: {err:#}",
                        start.elapsed().as_secs_f64()
                    ),
                }
                .into());
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 3 / 2).min(cap);
        }
    }
    Ok(start.elapsed())
}
