//! The engine (the only module that talks to Docker), images, deployments, readiness,
//! SQL to the stack's database, routes (racer, tunnels).

pub mod database;
pub mod deployment;
pub mod engine;
pub mod image;
pub mod progress;
pub mod racer;
pub mod ready;
pub mod tunnel;
