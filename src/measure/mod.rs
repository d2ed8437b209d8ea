//! Metrics, intervals and tests, explain, compare, claims, expectations.

pub mod cell;
pub mod claims;
pub mod compare;
pub mod expect;
pub mod explain;
pub mod metrics;
