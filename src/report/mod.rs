//! Views of a run: one model (`model`) that the terminal table, CSV, Markdown, JSON and
//! HTML format, and the live view of a run in progress. May not measure or change the
//! store.
//!
//! - `model`: the report model. - `export`: CSV, Markdown, JSON, the terminal table.
//! - `html`: `report.html`. - `live`: progress bar, lines, files rewritten as a run goes.

pub mod export;
pub mod html;
pub mod live;
pub mod model;
