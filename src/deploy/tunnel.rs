//! Tunnels to a stack on an engine this host cannot reach by network: another host over
//! `tcp://` or `ssh://`, whose stack networks are its own and whose published ports are
//! on its own loopback. Everything racy-matrix sends from the host besides the bursts
//! (readiness probes, the reset and observe SQL, quiesce requests) then goes through the
//! racer beside the stack: a local port per address on the stack's network, and for each
//! connection to it one `racy-matrix racer --pipe ADDR` run in the racer, which connects
//! to ADDR and relays bytes both ways over the engine's own API connection.
//!
//! The bursts themselves do not use it: they are fired by the racer (route `racer`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::deploy::engine::Engine;

/// The local ends of the tunnels through one racer, one per address on the stack's
/// network; dropping it closes them (connections open through them end when the racer
/// is removed).
pub struct Tunnels {
    engine: Engine,
    racer: String,
    /// The racy-matrix binary inside the racer.
    binary: String,
    open: std::sync::Mutex<HashMap<SocketAddr, (SocketAddr, JoinHandle<()>)>>,
}

impl Tunnels {
    /// Tunnels through the racer container `racer`, whose racy-matrix is `binary`.
    pub fn new(engine: &Engine, racer: &str, binary: &str) -> Tunnels {
        Tunnels {
            engine: engine.clone(),
            racer: racer.to_string(),
            binary: binary.to_string(),
            open: Default::default(),
        }
    }

    /// The local address (on 127.0.0.1) whose connections reach `inside`, an address on
    /// the stack's network; the same one for every call with the same address.
    pub async fn to(&self, inside: SocketAddr) -> Result<SocketAddr> {
        if let Some((local, _)) = self.open.lock().expect("tunnels").get(&inside) {
            return Ok(*local);
        }
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("opening a local port for a tunnel")?;
        let local = listener.local_addr()?;
        let (engine, racer) = (self.engine.clone(), self.racer.clone());
        let cmd = vec![
            self.binary.clone(),
            "racer".into(),
            "--pipe".into(),
            inside.to_string(),
        ];
        let accept = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (engine, racer, cmd) = (engine.clone(), racer.clone(), cmd.clone());
                tokio::spawn(async move {
                    let _ = relay(conn, &engine, &racer, &cmd).await;
                });
            }
        });
        let mut open = self.open.lock().expect("tunnels");
        // another caller may have opened one meanwhile: keep the first
        if let Some((first, _)) = open.get(&inside) {
            accept.abort();
            return Ok(*first);
        }
        open.insert(inside, (local, accept));
        Ok(local)
    }
}

impl Drop for Tunnels {
    fn drop(&mut self) {
        for (_, accept) in self.open.lock().expect("tunnels").values() {
            accept.abort();
        }
    }
}

/// Relays one local connection through a pipe run in the racer, until either side ends.
async fn relay(conn: TcpStream, engine: &Engine, racer: &str, cmd: &[String]) -> Result<()> {
    let _ = conn.set_nodelay(true);
    let mut pipe = engine.exec_attached(racer, cmd).await?;
    let (mut from_host, mut to_host) = conn.into_split();
    let up = async {
        copy_flushed(&mut from_host, &mut pipe.input).await?;
        pipe.input.shutdown().await
    };
    let down = async {
        while let Some(chunk) = pipe.output.next().await {
            to_host.write_all(&chunk?).await?;
        }
        to_host.shutdown().await
    };
    // A client that is done writing (an HTTP probe half-closes after its request) closes
    // the pipe's input, which the pipe passes on; the relay ends when the server's side
    // does (the pipe's output ends), or when relaying the client's bytes fails.
    until_answers_end(up, down).await?;
    Ok(())
}

/// Copies `from` to `to` until `from` ends, flushing each chunk (a request must not wait
/// in a buffer for more of itself).
async fn copy_flushed(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
    }
}

/// Runs both directions of a relay until `down` (the answering side) ends or either
/// fails: `up` ending is a half-close, after which answers still come.
async fn until_answers_end(
    up: impl Future<Output = std::io::Result<()>>,
    down: impl Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    let up = async {
        up.await?;
        std::future::pending::<std::io::Result<()>>().await
    };
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}

/// `racy-matrix racer --pipe ADDR` inside the racer: connects to ADDR and relays its
/// standard input to it and its answers to standard output, until the target's side ends;
/// then the process exits at once. (Tokio reads standard input on a thread that cannot be
/// cancelled, so returning would wait for an input that may never end, and the host would
/// not see the connection close.)
pub async fn pipe(addr: &str) -> Result<()> {
    let outcome = relay_stdio(addr).await;
    let _ = tokio::io::stdout().flush().await;
    match outcome {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("racy-matrix racer --pipe {addr}: {e:#}");
            std::process::exit(1)
        }
    }
}

async fn relay_stdio(addr: &str) -> Result<()> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| anyhow!("--pipe takes an address such as 172.18.0.3:5432: {e}"))?;
    let conn = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("{addr} did not accept a connection within 10 s"))?
        .with_context(|| format!("connecting to {addr}"))?;
    conn.set_nodelay(true)?;
    let (mut from_target, mut to_target) = conn.into_split();
    let up = async {
        copy_flushed(&mut tokio::io::stdin(), &mut to_target).await?;
        to_target.shutdown().await
    };
    let mut stdout = tokio::io::stdout();
    let down = copy_flushed(&mut from_target, &mut stdout);
    // Standard input ending is the client's half-close, passed on; the pipe ends when
    // the target's side does.
    until_answers_end(up, down).await?;
    Ok(())
}
