//! The command line: clap's definitions, one function per command, outcome → exit code.

pub mod commands;
mod compare;
mod finished;
mod init;
pub mod outcome;

pub use commands::main;
