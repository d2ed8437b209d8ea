//! What the client saw of one request: how it ended, its timings and the server's answer.

use serde::{Deserialize, Serialize};

/// How a request ended, as the client saw it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A complete HTTP response arrived.
    Response,
    /// The client gave up waiting.
    Timeout,
    /// Could not connect, or the connection broke.
    ConnError,
}

/// One request of a burst.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Repetition (0-based).
    pub repetition: u32,
    /// Index within the burst.
    pub index: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// When its last byte was sent (Unix ns, client clock).
    pub sent_unix_ns: i64,
    /// Send to complete response, ms.
    pub latency_ms: Option<f64>,
    /// Response body (JSON when it parses, else the text).
    pub body: Option<serde_json::Value>,
    /// What went wrong, for timeouts and connection errors.
    pub error: Option<String>,
}

impl RequestRecord {
    /// The app process that served it (`pid` in the body).
    pub fn pid(&self) -> Option<i64> {
        self.body.as_ref()?.get("pid")?.as_i64()
    }

    /// The serving process: its host (container) name, when the body has one, and pid.
    /// Containers number their processes alike, so the pid alone does not tell replicas
    /// apart.
    pub fn process(&self) -> Option<(String, i64)> {
        let host = self
            .body
            .as_ref()
            .and_then(|b| b.get("host"))
            .and_then(|h| h.as_str())
            .unwrap_or_default()
            .to_string();
        Some((host, self.pid()?))
    }

    /// Whether the app acknowledged it: a complete response with a 2xx status.
    pub fn is_acked(&self) -> bool {
        self.outcome == Outcome::Response && matches!(self.status, Some(200..=299))
    }

    /// A server timestamp from the body (`t_start`, `t_read`, `t_write`, `t_end`), ns.
    pub fn server_ns(&self, field: &str) -> Option<i64> {
        self.body.as_ref()?.get(field)?.as_i64()
    }
}

#[cfg(test)]
impl RequestRecord {
    /// A request of repetition `repetition` answered `status` with `body`, sent at 0 and
    /// answered 1 ms later (for tests).
    pub fn answered(repetition: u32, index: u32, status: u16, body: serde_json::Value) -> Self {
        RequestRecord {
            repetition,
            index,
            outcome: Outcome::Response,
            status: Some(status),
            sent_unix_ns: 0,
            latency_ms: Some(1.0),
            body: Some(body),
            error: None,
        }
    }
}
