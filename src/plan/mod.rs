//! Cells in run order, the cost model, shards, plan's rendering.

pub mod cost;
pub mod render;
pub mod shard;
