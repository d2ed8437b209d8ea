//! The racy-matrix command: see `racy-matrix --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(racy_matrix::log_filter(
            &std::env::var("RUST_LOG").unwrap_or_default(),
        ))
        .with_writer(std::io::stderr)
        .init();
    racy_matrix::main().await
}
