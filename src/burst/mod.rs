//! Firing requests: HTTP requests, the byte-level release, per-request records.

pub mod http;
pub mod record;
