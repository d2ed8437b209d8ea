//! What a cell's records mean: metrics, intervals and tests, explain, compare, claims,
//! expectations, and a cell's measured result. May not talk to the engine or render
//! files.
//!
//! - `metrics`: per-cell counts, rates and intervals. - `cell`: a measured cell.
//! - `explain`: who overwrote whom. - `compare`: the per-cell change test.
//! - `claims`, `expect`: the matrix's expectations and claims.

pub mod cell;
pub mod claims;
pub mod compare;
pub mod expect;
pub mod explain;
pub mod metrics;
