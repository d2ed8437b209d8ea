//! The command line: clap's definitions, one function per command, and the one place
//! an outcome becomes an exit code. Holds no logic another module could test alone.
//!
//! - `commands`: the arguments and the commands' functions.
//! - `outcome`: failure kinds, verdicts, exit codes.
//! - `finished`: the one way a finished run is opened.
//! - `compare`, `init`: those commands' glue.

pub mod commands;
mod compare;
mod finished;
mod init;
pub mod logging;
pub mod outcome;

pub use commands::main;
