//! What the user gives: matrix and stack files, their schema, located errors,
//! interpolation, the compose subset and `init`'s drafts; and the input types the other
//! modules share. May not talk to the engine, the network or the results store.
//!
//! - `source`: located errors, YAML parsing. - `matrix`: matrix files and cells.
//! - `stack`: stack files and the compose subset. - `init`: `racy.yaml` drafts.
//! - `check`: an endpoint's anomaly kind. - `expr`: per-request values. - `setup`: a restart's kind, a window's shape.
//! - `route`: the route choice. - `redact`: the one redactor of secrets.

pub mod check;
pub mod expr;
pub mod init;
pub mod matrix;
pub mod redact;
pub mod route;
pub mod setup;
pub mod source;
pub mod stack;
