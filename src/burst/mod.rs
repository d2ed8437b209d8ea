//! Firing requests: a burst's HTTP requests over raw TCP, their byte-level release, and
//! what the client saw of each. May not read files or know of stacks, stores or metrics.
//!
//! - `http`: building requests, sending a burst (last-byte, barrier, sequential).
//! - `record`: one request's outcome, timings and answer.

pub mod http;
pub mod record;
