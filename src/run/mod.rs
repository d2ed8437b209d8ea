//! The run loop: slots, cells, quiesce; and check's single pass.

pub mod check;
pub mod runner;
