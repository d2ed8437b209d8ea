//! The load generator: a minimal HTTP/1.1 client over raw TCP so that connections can be
//! opened before the burst and every request released at once (each request is sent but
//! its last byte, then the last bytes go out together), plus per-request records.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::burst::record::{Outcome, RequestRecord};

/// One HTTP request, encoded once and sent many times.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct HttpRequest {
    bytes: Vec<u8>,
}

impl HttpRequest {
    /// A form request (`application/x-www-form-urlencoded` body) with `Connection: close`.
    pub fn form(method: &str, host: &str, path: &str, fields: &[(String, String)]) -> Self {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: racy-matrix\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        HttpRequest { bytes }
    }

    /// A GET request with `Connection: close`.
    pub fn get(host: &str, path: &str) -> Self {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: racy-matrix\r\nConnection: close\r\n\r\n"
        );
        HttpRequest {
            bytes: head.into_bytes(),
        }
    }
}

impl HttpRequest {
    /// The request's bytes, as sent.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The same request with one more header line (e.g. the burst's token).
    pub fn with_header(&self, name: &str, value: &str) -> Self {
        let end = self
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 2)
            .unwrap_or(self.bytes.len());
        let mut bytes = self.bytes[..end].to_vec();
        bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        bytes.extend_from_slice(&self.bytes[end..]);
        HttpRequest { bytes }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (form fields, and
/// the credentials in a database URL).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A parsed HTTP response.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

/// Sends one request on a fresh connection and reads the whole response.
pub async fn send(addr: SocketAddr, req: &HttpRequest, limit: Duration) -> Result<HttpResponse> {
    tokio::time::timeout(limit, async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(&req.bytes).await?;
        read_response(&mut s).await
    })
    .await
    .map_err(|_| anyhow!("no answer from {addr} within {limit:?}"))?
}

/// The most of one response racy-matrix reads: answers are kept with every record of a
/// cell, so one endless or huge answer must not take the run's memory.
pub const MAX_RESPONSE: u64 = 1 << 20;

async fn read_response(s: &mut TcpStream) -> Result<HttpResponse> {
    let mut buf = Vec::with_capacity(1024);
    s.take(MAX_RESPONSE + 1).read_to_end(&mut buf).await?;
    if buf.len() as u64 > MAX_RESPONSE {
        bail!(
            "the response is larger than {} KiB, the most racy-matrix reads",
            MAX_RESPONSE >> 10
        );
    }
    parse_response(&buf)
}

/// Parses a complete `Connection: close` response.
pub fn parse_response(buf: &[u8]) -> Result<HttpResponse> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => bail!("connection closed before a full response header"),
    };
    let status = resp.code.unwrap_or(0);
    let chunked = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        });
    let rest = &buf[head_len..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        if rest.len() < n {
            bail!("response body cut short ({} of {n} bytes)", rest.len());
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunked body"))?;
        let size_text = std::str::from_utf8(&data[..line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| anyhow!("bad chunk size '{size_text}'"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            bail!("chunked body cut short");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// What one burst sends.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BurstSpec {
    /// Where (the target's address by the run's route).
    pub addr: SocketAddr,
    /// The request every connection sends, unless `each` is given.
    pub request: HttpRequest,
    /// One request per connection, when they differ (per-request values): request `i`
    /// sends `each[i]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub each: Vec<HttpRequest>,
    /// How many requests.
    pub requests: u32,
    /// Gap between launches; 0 releases all at once.
    pub wait_ms: u64,
    /// How long the client waits for each response.
    pub timeout: Duration,
    /// How a `wait_ms = 0` burst is released.
    pub release: Release,
}

/// How the requests of a synchronized (`wait_ms = 0`) burst are let go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Release {
    /// Each request gets a task that connects and sends it, spawned one after another
    /// with no synchronization (what a script with a thread pool does).
    Sequential,
    /// Connections are opened first; every task waits at a barrier, then writes its whole
    /// request.
    Barrier,
    /// Connections are opened and each request is written but its last byte; the last
    /// bytes then go out back to back (the default: the server sees complete requests
    /// only at the release).
    #[default]
    LastByte,
}

impl Release {
    /// Every method, for the benchmark.
    pub const ALL: [Release; 3] = [Release::Sequential, Release::Barrier, Release::LastByte];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Release::Sequential => "sequential",
            Release::Barrier => "barrier",
            Release::LastByte => "last-byte",
        }
    }
}

/// Records of one burst and its duration (first send to last response).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BurstResult {
    /// One record per request, by index.
    pub records: Vec<RequestRecord>,
    /// First send to last response, in ms.
    pub burst_ms: f64,
}

fn unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn failed(rep: u32, index: u32, outcome: Outcome, sent: i64, error: String) -> RequestRecord {
    RequestRecord {
        repetition: rep,
        index,
        outcome,
        status: None,
        sent_unix_ns: sent,
        latency_ms: None,
        body: None,
        error: Some(error),
    }
}

/// Fires one burst. With `wait_ms == 0` and the default last-byte release, every
/// connection is opened first, every request written but its last byte, then the last
/// bytes are written back to back; with the barrier release the opened connections wait
/// at a barrier and then write whole requests; with the sequential release each request
/// connects and sends on its own, one task after another (what a thread-pool script
/// does). With `wait_ms > 0` the connections are opened first and request `i` is sent
/// `i * wait_ms` after the first. Timeouts and connection errors are recorded, never
/// fatal.
pub async fn fire(spec: &BurstSpec, repetition: u32) -> BurstResult {
    let n = spec.requests as usize;
    let bytes = |i: usize| spec.each.get(i).unwrap_or(&spec.request).bytes.clone();
    let mut tasks = Vec::with_capacity(n);
    let mut records: Vec<Option<RequestRecord>> = vec![None; n];
    if spec.wait_ms == 0 && spec.release == Release::Sequential {
        let first_send = Instant::now();
        for i in 0..n {
            let (addr, limit, req) = (spec.addr, spec.timeout, bytes(i));
            tasks.push(tokio::spawn(async move {
                let (t, sent) = (Instant::now(), unix_ns());
                let conn = connect(addr).await;
                send_whole(conn, &req, repetition, i as u32, (t, sent), limit).await
            }));
        }
        return collect(tasks, records, repetition, first_send).await;
    }
    let conns = futures_util::future::join_all((0..n).map(|_| connect(spec.addr))).await;

    let first_send = Instant::now();

    if spec.wait_ms == 0 && spec.release == Release::Barrier {
        let gate = std::sync::Arc::new(tokio::sync::Barrier::new(n + 1));
        for (i, c) in conns.into_iter().enumerate() {
            let (gate, limit, req) = (gate.clone(), spec.timeout, bytes(i));
            tasks.push(tokio::spawn(async move {
                gate.wait().await;
                let at = (Instant::now(), unix_ns());
                send_whole(c, &req, repetition, i as u32, at, limit).await
            }));
        }
        gate.wait().await;
    } else if spec.wait_ms == 0 {
        tasks = release_last_bytes(conns, spec, repetition, &mut records).await;
    } else {
        let start = tokio::time::Instant::now();
        for (i, c) in conns.into_iter().enumerate() {
            let at = start + Duration::from_millis(spec.wait_ms * i as u64);
            let limit = spec.timeout;
            let req = bytes(i);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let now = (Instant::now(), unix_ns());
                send_whole(c, &req, repetition, i as u32, now, limit).await
            }));
        }
    }
    collect(tasks, records, repetition, first_send).await
}

/// A request's task: its record, and when its response was complete.
type RequestTask = tokio::task::JoinHandle<(RequestRecord, Instant)>;

/// The last-byte release: each request but its last byte is written on its connection,
/// then the last bytes go out back to back, so the server sees every request complete
/// within microseconds. A connection that failed is recorded in `records`.
async fn release_last_bytes(
    conns: Vec<Result<TcpStream, String>>,
    spec: &BurstSpec,
    repetition: u32,
    records: &mut [Option<RequestRecord>],
) -> Vec<RequestTask> {
    let split = |i: usize| {
        let bytes = spec.each.get(i).unwrap_or(&spec.request).bytes();
        bytes.split_at(bytes.len() - 1)
    };
    let conn_error = |i: usize, e: String| {
        Some(failed(
            repetition,
            i as u32,
            Outcome::ConnError,
            unix_ns(),
            e,
        ))
    };
    let mut ready = Vec::with_capacity(conns.len());
    for (i, c) in conns.into_iter().enumerate() {
        match c {
            Ok(mut s) => match s.write_all(split(i).0).await {
                Ok(()) => ready.push((i, s)),
                Err(e) => records[i] = conn_error(i, e.to_string()),
            },
            Err(e) => records[i] = conn_error(i, e),
        }
    }
    let mut released = Vec::with_capacity(ready.len());
    for (i, mut s) in ready {
        let r = s.write_all(split(i).1).await;
        released.push((i, s, r, Instant::now(), unix_ns()));
    }
    released
        .into_iter()
        .map(|(i, mut s, r, at, sent)| {
            let limit = spec.timeout;
            tokio::spawn(
                async move { finish(&mut s, r, repetition, i as u32, at, sent, limit).await },
            )
        })
        .collect()
}

/// Writes a whole request on a connection opened (or not) before, and reads the answer;
/// `at` is when the send started (monotonic, and Unix ns for the record).
async fn send_whole(
    conn: Result<TcpStream, String>,
    req: &[u8],
    repetition: u32,
    index: u32,
    at: (Instant, i64),
    limit: Duration,
) -> (RequestRecord, Instant) {
    let (t, sent) = at;
    let mut s = match conn {
        Ok(s) => s,
        Err(e) => {
            let rec = failed(repetition, index, Outcome::ConnError, sent, e);
            return (rec, Instant::now());
        }
    };
    let written = s.write_all(req).await;
    finish(&mut s, written, repetition, index, t, sent, limit).await
}

/// Opens one connection (with a deadline), Nagle off.
async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let limit = Duration::from_secs(5);
    match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("connect timed out after {limit:?}")),
    }
}

/// Waits for every request task and assembles the burst's records.
async fn collect(
    tasks: Vec<tokio::task::JoinHandle<(RequestRecord, Instant)>>,
    mut records: Vec<Option<RequestRecord>>,
    repetition: u32,
    first_send: Instant,
) -> BurstResult {
    let mut last_done = first_send;
    for t in tasks {
        if let Ok((rec, done)) = t.await {
            if rec.outcome == Outcome::Response && done > last_done {
                last_done = done;
            }
            let i = rec.index as usize;
            records[i] = Some(rec);
        }
    }
    let records = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                failed(
                    repetition,
                    i as u32,
                    Outcome::ConnError,
                    0,
                    "task lost".into(),
                )
            })
        })
        .collect();
    BurstResult {
        records,
        burst_ms: last_done.duration_since(first_send).as_secs_f64() * 1e3,
    }
}

/// Reads the response of a request whose sending ended with `written`.
async fn finish(
    s: &mut TcpStream,
    written: std::io::Result<()>,
    repetition: u32,
    index: u32,
    sent_at: Instant,
    sent_ns: i64,
    limit: Duration,
) -> (RequestRecord, Instant) {
    if let Err(e) = written {
        let rec = failed(
            repetition,
            index,
            Outcome::ConnError,
            sent_ns,
            e.to_string(),
        );
        return (rec, Instant::now());
    }
    let got = tokio::time::timeout(limit, read_response(s)).await;
    let done = Instant::now();
    let rec = match got {
        Err(_) => failed(
            repetition,
            index,
            Outcome::Timeout,
            sent_ns,
            format!("no response within {limit:?}"),
        ),
        Ok(Err(e)) => failed(
            repetition,
            index,
            Outcome::ConnError,
            sent_ns,
            e.to_string(),
        ),
        Ok(Ok(resp)) => RequestRecord {
            repetition,
            index,
            outcome: Outcome::Response,
            status: Some(resp.status),
            sent_unix_ns: sent_ns,
            latency_ms: Some(done.duration_since(sent_at).as_secs_f64() * 1e3),
            body: serde_json::from_slice(&resp.body).ok().or_else(|| {
                Some(serde_json::Value::String(
                    String::from_utf8_lossy(&resp.body)
                        .chars()
                        .take(500)
                        .collect(),
                ))
            }),
            error: None,
        },
    };
    (rec, done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_form() {
        let r = HttpRequest::form(
            "POST",
            "h",
            "/p/",
            &[("a".into(), "1 2".into()), ("b".into(), "3-4".into())],
        );
        let text = String::from_utf8(r.bytes).unwrap();
        assert!(text.starts_with("POST /p/ HTTP/1.1\r\nHost: h\r\n"));
        assert!(text.ends_with("\r\n\r\na=1%202&b=3-4"));
        assert!(text.contains("Content-Length: 13\r\n"));
        let tagged = String::from_utf8(
            HttpRequest::form("POST", "h", "/p/", &[("a".into(), "1".into())])
                .with_header("X-Racy-Burst", "t-1")
                .bytes,
        )
        .unwrap();
        assert!(
            tagged.ends_with("Connection: close\r\nX-Racy-Burst: t-1\r\n\r\na=1"),
            "{tagged:?}"
        );
    }

    #[test]
    fn parses_responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (502, &b"abcde"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Len").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
    }

    /// A local server that answers only after it has read every request: the burst
    /// really holds back the last byte until all connections are open.
    #[tokio::test]
    async fn burst_releases_all_requests() {
        for release in Release::ALL {
            burst_with(release).await;
        }
    }

    async fn burst_with(release: Release) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let n = 6u32;
        let server = tokio::spawn(async move {
            let mut conns = Vec::new();
            for _ in 0..n {
                let (s, _) = listener.accept().await.unwrap();
                conns.push(s);
            }
            // every connection is open before any request is complete
            let mut handles = Vec::new();
            for mut s in conns {
                handles.push(tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 512];
                    loop {
                        let k = s.read(&mut chunk).await.unwrap();
                        buf.extend_from_slice(&chunk[..k]);
                        if buf.ends_with(b"x=1") || k == 0 {
                            break;
                        }
                    }
                    let body = format!("{{\"pid\": {}}}", buf.len());
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    s.write_all(resp.as_bytes()).await.unwrap();
                }));
            }
            for h in handles {
                h.await.unwrap();
            }
        });
        let spec = BurstSpec {
            addr,
            request: HttpRequest::form("POST", "t", "/", &[("x".into(), "1".into())]),
            each: vec![],
            requests: n,
            wait_ms: 0,
            timeout: Duration::from_secs(5),
            release,
        };
        let res = fire(&spec, 0).await;
        server.await.unwrap();
        assert_eq!(res.records.len(), n as usize);
        assert!(
            res.records.iter().all(|r| r.status == Some(200)),
            "{}: {:?}",
            release.name(),
            res.records
        );
        assert!(res.burst_ms > 0.0);
    }

    #[tokio::test]
    async fn an_endless_answer_is_cut_at_the_limit_and_said() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 256];
            let _ = s.read(&mut head).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            // far more than the limit, then the connection stays open
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..64 {
                if s.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let req = HttpRequest::form("GET", "t", "/", &[]);
        let e = send(addr, &req, Duration::from_secs(10)).await.unwrap_err();
        assert!(e.to_string().contains("larger than 1024 KiB"), "{e}");
        server.abort();
    }

    #[tokio::test]
    async fn refused_connections_are_recorded() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        for (wait_ms, release) in [
            (1, Release::LastByte),
            (0, Release::Sequential),
            (0, Release::Barrier),
            (0, Release::LastByte),
        ] {
            let spec = BurstSpec {
                addr,
                request: HttpRequest::get("t", "/"),
                each: vec![],
                requests: 3,
                wait_ms,
                timeout: Duration::from_secs(1),
                release,
            };
            let res = fire(&spec, 2).await;
            assert_eq!(res.records.len(), 3);
            assert!(
                res.records
                    .iter()
                    .all(|r| r.outcome == Outcome::ConnError && r.repetition == 2),
                "{}",
                release.name()
            );
        }
    }
}
