//! What the user gives: matrix and stack files, their schema and located errors.

pub mod check;
pub mod init;
pub mod matrix;
pub mod redact;
pub mod route;
pub mod setup;
pub mod source;
pub mod stack;
