//! The run loop: slots, cells, quiesce, and the events it reports; and check's single pass.

pub mod check;
pub mod events;
pub mod runner;
