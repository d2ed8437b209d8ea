//! racy-matrix: turns race conditions in a web app into measurements. It brings stacks up
//! through the Docker Engine API, sweeps a matrix of concurrency settings, fires
//! synchronized bursts, and counts lost updates per cell. The binary is `cli::main`; the
//! modules are public so that the benchmark harness measures the same code.

pub mod burst;
pub mod check;
pub mod claims;
pub mod cli;
pub mod compare;
pub mod cost;
pub mod database;
pub mod deploy;
pub mod engine;
pub mod expect;
pub mod explain;
pub mod export;
pub mod html;
pub mod image;
pub mod init;
pub mod input;
pub mod matrix;
pub mod measure;
pub mod plan;
pub mod racer;
pub mod ready;
pub mod results;
pub mod route;
pub mod runner;
pub mod shard;
pub mod stack;
pub mod tunnel;
