//! The command line: clap's definitions, one function per command, outcome → exit code.

pub mod commands;

pub use commands::main;
