//! How requests reach a stack: through the port the engine publishes on the host's
//! loopback (relayed by Docker's userland proxy, connection by connection), or straight to
//! the container's address on the stack's bridge network, which a host running its own
//! engine can reach.
//!
//! The proxy accepts each connection itself and opens its own to the container, so the
//! bytes of a burst released together on loopback reach the app spread over milliseconds
//! (README, Performance); the direct route leaves them as they were sent.

use std::net::IpAddr;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// The route asked for (`route:` in a matrix, `--route` on the command line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteChoice {
    /// Direct when the container's address answers from the host; on a remote engine the
    /// racer; else published.
    #[default]
    Auto,
    /// Always the container's address; a run fails when the host cannot reach it.
    Direct,
    /// Always the published port.
    Published,
    /// Bursts fired from a racer container on the stack's network (see `racer`); the
    /// host's own requests (readiness, quiesce, SQL) go direct when it can, else published.
    Racer,
}

impl RouteChoice {
    /// Every choice, as written in a matrix or on the command line.
    pub const NAMES: [&'static str; 4] = ["auto", "direct", "published", "racer"];

    /// How it reads in a run's header.
    pub fn how(self) -> &'static str {
        match self {
            RouteChoice::Auto => {
                "auto (straight to the containers when this host reaches them, a racer on a remote engine)"
            }
            RouteChoice::Direct => "direct (straight to the containers)",
            RouteChoice::Published => "published (the engine's published ports)",
            RouteChoice::Racer => "racer (fired from a container beside each target)",
        }
    }

    /// Parses a choice as written.
    pub fn parse(text: &str) -> Result<RouteChoice> {
        Ok(match text {
            "auto" => RouteChoice::Auto,
            "direct" => RouteChoice::Direct,
            "published" => RouteChoice::Published,
            "racer" => RouteChoice::Racer,
            other => bail!(
                "unknown route '{other}' (expected one of: {})",
                RouteChoice::NAMES.join(", ")
            ),
        })
    }
}

/// The route a stack instance's requests took.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// The published port on 127.0.0.1, through the engine's proxy.
    Published,
    /// The container's address on the stack's network.
    Direct,
    /// From a racer container on the stack's network.
    Racer,
}

impl Route {
    /// Its name in results and headers.
    pub fn name(self) -> &'static str {
        match self {
            Route::Published => "published",
            Route::Direct => "direct",
            Route::Racer => "racer",
        }
    }
}

impl Route {
    /// What it means, for a run's progress.
    pub fn how(self) -> &'static str {
        match self {
            Route::Published => "through the port published on the host (the engine's proxy)",
            Route::Direct => "straight to the container on the stack's network",
            Route::Racer => "fired by a racer container on the stack's network",
        }
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the direct route cannot be used, or `None` when it can.
///
/// A container's address answers from the host when the host holds the bridge its
/// network lives on, i.e. when the network's gateway address is one of the host's own
/// (binding a socket to it succeeds). Behind a virtual machine (Docker Desktop), in a
/// rootless engine's namespace or on another host it is not. A connection attempt would
/// not tell: where outgoing connections are intercepted, any address seems to answer.
pub fn unreachable(gateway: Option<IpAddr>, local_engine: bool) -> Option<String> {
    if !local_engine {
        return Some("the engine is not local (DOCKER_HOST names another host)".into());
    }
    let Some(gateway) = gateway else {
        return Some("the engine reports no gateway for the stack's network".into());
    };
    match std::net::TcpListener::bind((gateway, 0)) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "the network's gateway {gateway} is not an address of this host ({e}): \
             the engine runs in a virtual machine, a namespace of its own or elsewhere"
        )),
    }
}

/// Whether a stack instance needs a racer: the route asks for one, or the engine is not
/// local (its published ports are on another host's loopback, so the racer fires the
/// bursts and carries this host's own requests, see `tunnel`).
pub fn racer_needed(choice: RouteChoice, local_engine: bool) -> bool {
    choice == RouteChoice::Racer || (choice == RouteChoice::Auto && !local_engine)
}

/// The route a choice takes, given why the direct route is unavailable (if it is) and
/// whether the engine is local.
pub fn decide(
    choice: RouteChoice,
    direct_unavailable: Option<&str>,
    local_engine: bool,
) -> Result<Route> {
    match (choice, direct_unavailable) {
        (RouteChoice::Racer, _) => Ok(Route::Racer),
        (RouteChoice::Published, _) => Ok(Route::Published),
        (_, None) => Ok(Route::Direct),
        (RouteChoice::Auto, Some(_)) if !local_engine => Ok(Route::Racer),
        (RouteChoice::Auto, Some(_)) => Ok(Route::Published),
        (RouteChoice::Direct, Some(why)) => bail!(
            "route: direct was asked, but the host cannot reach the container: {why}; \
             use route: auto or published (--route)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_unknown_ones_are_named() {
        assert_eq!(RouteChoice::parse("direct").unwrap(), RouteChoice::Direct);
        let err = RouteChoice::parse("proxy").unwrap_err().to_string();
        assert!(
            err.contains("'proxy'") && err.contains("published"),
            "{err}"
        );
    }

    #[test]
    fn auto_falls_back_and_direct_refuses_to() {
        assert_eq!(
            decide(RouteChoice::Auto, None, true).unwrap(),
            Route::Direct
        );
        assert_eq!(
            decide(RouteChoice::Auto, Some("no route"), true).unwrap(),
            Route::Published
        );
        assert_eq!(
            decide(RouteChoice::Published, None, true).unwrap(),
            Route::Published
        );
        assert_eq!(
            decide(RouteChoice::Racer, Some("remote"), false).unwrap(),
            Route::Racer
        );
        let err = decide(RouteChoice::Direct, Some("no route to host"), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no route to host"), "{err}");
    }

    #[test]
    fn a_remote_engine_takes_the_racer_unless_told_otherwise() {
        let remote = Some("the engine is not local");
        assert_eq!(
            decide(RouteChoice::Auto, remote, false).unwrap(),
            Route::Racer
        );
        assert!(racer_needed(RouteChoice::Auto, false));
        assert!(!racer_needed(RouteChoice::Auto, true));
        assert!(racer_needed(RouteChoice::Racer, true));
        assert!(!racer_needed(RouteChoice::Published, false));
        assert_eq!(
            decide(RouteChoice::Published, remote, false).unwrap(),
            Route::Published
        );
    }

    #[test]
    fn an_address_of_this_host_holds_the_bridge() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(unreachable(Some(lo), true), None);
        let why = unreachable(Some(lo), false).unwrap();
        assert!(why.contains("not local"), "{why}");
        assert!(unreachable(None, true).unwrap().contains("no gateway"));
    }

    #[test]
    fn an_address_of_another_host_does_not() {
        // TEST-NET-2 (RFC 5737): never an address of this host
        let other: IpAddr = "198.51.100.7".parse().unwrap();
        let why = unreachable(Some(other), true).unwrap();
        assert!(why.contains("198.51.100.7"), "{why}");
    }
}
