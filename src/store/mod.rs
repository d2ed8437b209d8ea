//! The run directory and results.db.

pub mod results;
