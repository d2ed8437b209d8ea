//! Terminal, CSV, Markdown, JSON and HTML views of a run.

pub mod export;
pub mod html;
