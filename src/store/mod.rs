//! The run directory and its results.db: create, commit a cell, load, resume, merge.
//! Renders nothing.
//!
//! - `results`: the store.

pub mod results;
