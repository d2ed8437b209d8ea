//! Bringing stacks up: the engine (the only module that talks to Docker), images,
//! deployments, readiness, SQL to the stack's database, and the routes bursts take
//! (racer, tunnels). May not decide which cells run, nor write results.
//!
//! - `engine`: the Docker Engine API. - `image`: base and stack images.
//! - `deployment`: a stack instance, its start, reconfiguration and faults.
//! - `ready`: readiness probes. - `database`: reset and observe through SQL.
//! - `racer`, `tunnel`: the route through a container beside the stack.
//! - `progress`: what deploying is doing, as typed steps.

pub mod database;
pub mod deployment;
pub mod engine;
pub mod image;
pub mod progress;
pub mod racer;
pub mod ready;
pub mod tunnel;
