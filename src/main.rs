//! racy-matrix: turns race conditions in a web app into measurements. It brings stacks up
//! through the Docker Engine API, sweeps a matrix of concurrency settings, fires
//! synchronized bursts, and counts lost updates per cell.

mod burst;
mod cli;
mod deploy;
mod engine;
mod expect;
mod export;
mod image;
mod matrix;
mod measure;
mod plan;
mod probe;
mod ready;
mod results;
mod runner;
mod stack;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    cli::main().await
}
