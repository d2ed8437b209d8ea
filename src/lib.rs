//! racy-matrix: turns race conditions in a web app into measurements. It brings stacks up
//! through the Docker Engine API, sweeps a matrix of concurrency settings, fires
//! synchronized bursts, and counts lost updates per cell.
//!
//! The modules are the stages a run goes through, lowest first; a module imports only
//! the ones above it in this list (`tests::layers` fails on a circle). See
//! `docs/architecture.md`.

pub mod burst;
pub mod cli;
pub mod deploy;
pub mod input;
pub mod measure;
pub mod plan;
pub mod report;
pub mod run;
pub mod store;
