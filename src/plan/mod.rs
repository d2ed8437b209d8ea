//! Before a run: cells in run order, the cost model, shards and the slices of a run,
//! and `plan`'s rendering. Makes no engine calls.
//!
//! - `cost`: the time model and its fit. - `shard`: shards, instances, slices.
//! - `render`: what `racy-matrix plan` prints.

pub mod cost;
pub mod render;
pub mod shard;
