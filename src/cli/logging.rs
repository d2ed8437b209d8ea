//! The log filter: `RUST_LOG` as the user sets it, with the Docker client's own debug
//! lines left out, since they quote request bodies (a database password in a
//! container's environment among them).

use tracing_subscriber::EnvFilter;

/// Where the Docker client logs, and the most it may say.
const DOCKER_CLIENT: &str = "bollard=info";

/// The filter of `spec` (a `RUST_LOG` value), the Docker client capped at info.
pub fn log_filter(spec: &str) -> EnvFilter {
    EnvFilter::builder()
        .parse_lossy(spec)
        .add_directive(DOCKER_CLIENT.parse().expect("a valid directive"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docker_client_never_logs_below_info() {
        for spec in [
            "debug",
            "trace",
            "bollard=trace",
            "racy_matrix=debug,bollard=debug",
            "",
        ] {
            let f = log_filter(spec).to_string();
            assert!(f.contains("bollard=info"), "{spec}: {f}");
            assert!(
                !f.contains("bollard=debug") && !f.contains("bollard=trace"),
                "{spec}: {f}"
            );
        }
        assert!(
            log_filter("debug").to_string().contains("debug"),
            "the rest as asked"
        );
    }
}
