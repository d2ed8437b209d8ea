//! Terminal, CSV, Markdown, JSON and HTML views of a run, and the live view of one in
//! progress.

pub mod export;
pub mod html;
pub mod live;
pub mod model;
