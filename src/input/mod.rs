//! What the user gives: matrix and stack files, their schema and located errors.

pub mod init;
pub mod matrix;
pub mod route;
pub mod source;
pub mod stack;
