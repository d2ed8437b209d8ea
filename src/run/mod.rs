//! The run loop: stack instances (slots), cells, retries, quiesce, and the events it
//! reports; and `check`'s single pass. Never prints, never plans: it receives the slices.
//!
//! - `runner`: the loop. - `events`: what it reports. - `check`: one request per endpoint.

pub mod check;
pub mod events;
pub mod runner;
