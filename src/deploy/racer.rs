//! The racer: racy-matrix's own binary in a container on the stack's network, which fires
//! each burst from beside the target (route `racer`). The host process hands it the burst
//! (`racy-matrix racer SPEC`, run inside it) and reads back the same request records a
//! burst fired from the host gives. No hop between the release and the target's port is
//! then the engine's: neither its proxy nor the host's routing.
//!
//! The image is made locally: the Debian base and this very binary, tagged by a hash of
//! both, so a new build of racy-matrix makes a new racer and an unchanged one is reused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::burst::http::{BurstResult, BurstSpec};
use crate::deploy::engine::Engine;
use crate::deploy::progress::{Progress, Step};
use crate::input::stack::ContainerSpec;

/// Where the binary lives inside the racer.
pub const INSIDE: &str = "/usr/local/bin/racy-matrix";

/// Names the binary the racer runs, when it is not the running executable (the bench
/// harness and the tests are other executables).
pub const BINARY_ENV: &str = "RACY_MATRIX_BINARY";

static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes `path` the binary every racer of this process runs (for executables other than
/// racy-matrix itself, such as the bench harness).
pub fn set_binary(path: &Path) {
    let _ = BINARY.set(path.to_path_buf());
}

/// A racer container running beside one stack instance.
pub struct Racer {
    engine: Engine,
    /// Its container id.
    pub id: String,
    /// The racy-matrix process that fires the bursts (`racer --serve`), started with the
    /// racer and kept for every burst: a burst is released by a process that is already
    /// warm (its runtime, threads and pages), not one started for it.
    session: tokio::sync::Mutex<Option<Session>>,
}

/// The serving racer process: its input takes one order per line, its output gives one
/// burst's records per line.
struct Session {
    exec: crate::deploy::engine::AttachedExec,
    /// Output read past the last full line.
    pending: Vec<u8>,
}

impl Session {
    async fn start(engine: &Engine, id: &str) -> Result<Session> {
        let cmd = [INSIDE.to_string(), "racer".into(), "--serve".into()];
        Ok(Session {
            exec: engine.exec_attached(id, &cmd).await?,
            pending: Vec::new(),
        })
    }

    /// Sends one order and reads its answer line.
    async fn order(&mut self, order: &str) -> Result<String> {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        self.exec.input.write_all(order.as_bytes()).await?;
        self.exec.input.write_all(b"\n").await?;
        self.exec.input.flush().await?;
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Ok(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            match self.exec.output.next().await {
                Some(chunk) => self.pending.extend_from_slice(&chunk?),
                None => bail!("the racer's process ended"),
            }
        }
    }
}

/// The racy-matrix binary to place in the racer: the one `set_binary` named, else
/// `RACY_MATRIX_BINARY`, else the running executable.
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = BINARY.get() {
        return Ok(p.clone());
    }
    match std::env::var_os(BINARY_ENV) {
        Some(p) => Ok(PathBuf::from(p)),
        None => std::env::current_exe().context("cannot find the running racy-matrix binary"),
    }
}

/// Builds (unless it exists) the racer image of `binary` on `base`, and returns its tag.
pub async fn ensure_image(
    engine: &Engine,
    base: &str,
    binary: &Path,
    progress: &mut Progress<'_>,
) -> Result<String> {
    let parent = std::env::temp_dir().join(format!(
        "racy-matrix-racer-{}-{}",
        std::process::id(),
        crate::deploy::deployment::next_serial()
    ));
    let context = parent.join("racer");
    std::fs::create_dir_all(&context)
        .with_context(|| format!("cannot create {}", context.display()))?;
    let made = async {
        std::fs::write(
            context.join("Dockerfile"),
            format!(
                "ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nCOPY racy-matrix {INSIDE}\n\
                 CMD [\"sleep\", \"infinity\"]\n"
            ),
        )?;
        let copy = context.join("racy-matrix");
        if std::fs::hard_link(binary, &copy).is_err() {
            std::fs::copy(binary, &copy).with_context(|| {
                format!(
                    "cannot read the racy-matrix binary {} for the racer",
                    binary.display()
                )
            })?;
        }
        let args = BTreeMap::from([("BASE_IMAGE".to_string(), base.to_string())]);
        let (tag, built) =
            crate::deploy::image::ensure_built(engine, &context, None, &args, progress).await?;
        if built {
            progress(Step::Built(&tag));
            // racers of earlier builds of racy-matrix are of no more use
            engine.remove_other_tags("racy-matrix/racer", &tag).await?;
        }
        Ok::<_, anyhow::Error>(tag)
    }
    .await;
    let _ = std::fs::remove_dir_all(&parent);
    made.context("making the racer image")
}

impl Racer {
    /// Starts a racer on `network` from `image`, with the run's `labels` (so that every
    /// clean-up finds it).
    pub async fn start(
        engine: &Engine,
        image: &str,
        name: &str,
        network: &str,
        labels: std::collections::HashMap<String, String>,
    ) -> Result<Racer> {
        let spec = ContainerSpec {
            name: name.to_string(),
            image: image.to_string(),
            labels,
            network: network.to_string(),
            init: true,
            ..Default::default()
        };
        let id = engine.run_container(&spec).await?;
        let session = Session::start(engine, &id).await?;
        Ok(Racer {
            engine: engine.clone(),
            id,
            session: tokio::sync::Mutex::new(Some(session)),
        })
    }

    /// Fires one burst from inside the racer and returns its records.
    pub async fn fire(&self, spec: &BurstSpec, repetition: u32) -> Result<BurstResult> {
        let order = serde_json::to_string(&Order {
            spec: spec.clone(),
            repetition,
        })?;
        // the burst's own timeout bounds every request; spacing adds wait_ms per request
        let limit = spec.timeout
            + Duration::from_millis(spec.wait_ms.saturating_mul(spec.requests.into()))
            + Duration::from_secs(30);
        let mut session = self.session.lock().await;
        if session.is_none() {
            *session = Some(Session::start(&self.engine, &self.id).await?);
        }
        let answered = match session.as_mut() {
            Some(s) => tokio::time::timeout(limit, s.order(&order)).await,
            None => unreachable!("started above"),
        };
        let line = match answered {
            Ok(Ok(line)) => line,
            failed => {
                // the next burst starts a new process
                *session = None;
                let logs = self.engine.logs_tail(&self.id, 5).await;
                return Err(match failed {
                    Ok(Err(e)) => e,
                    _ => anyhow!("the racer did not answer within {limit:?}"),
                })
                .with_context(|| format!("the racer {}: {}", self.id, logs.trim()));
            }
        };
        if let Some(error) = line.strip_prefix("error: ") {
            bail!("the racer refused the burst: {error}");
        }
        serde_json::from_str(&line)
            .map_err(|e| anyhow!("the racer's answer is not a burst's records: {e}"))
    }

    /// Removes the racer.
    pub async fn remove(self) -> Result<()> {
        self.engine.remove_container(&self.id).await
    }
}

/// What the host hands the racer: one burst.
#[derive(serde::Serialize, serde::Deserialize)]
struct Order {
    spec: BurstSpec,
    repetition: u32,
}

/// `racy-matrix racer ORDER` inside the racer: fires the burst and prints its records.
pub async fn serve(order: &str) -> Result<()> {
    let order: Order = serde_json::from_str(order).context("the racer's order is not a burst")?;
    let shot = crate::burst::http::fire(&order.spec, order.repetition).await;
    println!("{}", serde_json::to_string(&shot)?);
    Ok(())
}

/// `racy-matrix racer --serve` inside the racer: fires the burst of each order line on
/// standard input and prints its records as one line (or `error: WHY`), until the input
/// ends.
pub async fn serve_lines() -> Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let answer = match serde_json::from_str::<Order>(&line) {
            Ok(order) => {
                let shot = crate::burst::http::fire(&order.spec, order.repetition).await;
                serde_json::to_string(&shot)?
            }
            Err(e) => format!("error: the order is not a burst: {e}"),
        };
        out.write_all(answer.as_bytes()).await?;
        out.write_all(b"\n").await?;
        out.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::burst::http::{HttpRequest, Release};

    #[test]
    fn an_order_survives_the_trip() {
        let spec = BurstSpec {
            addr: "172.18.0.4:80".parse().unwrap(),
            request: HttpRequest::get("localhost", "/counter/"),
            each: vec![],
            requests: 32,
            wait_ms: 0,
            timeout: Duration::from_millis(2500),
            release: Release::Barrier,
        };
        let text = serde_json::to_string(&Order {
            spec: spec.clone(),
            repetition: 3,
        })
        .unwrap();
        let back: Order = serde_json::from_str(&text).unwrap();
        assert_eq!(back.repetition, 3);
        assert_eq!(back.spec.addr, spec.addr);
        assert_eq!(back.spec.request.bytes(), spec.request.bytes());
        assert_eq!(back.spec.timeout, spec.timeout);
        assert_eq!(back.spec.release, Release::Barrier);
    }
}
