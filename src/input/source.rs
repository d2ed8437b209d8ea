//! User files (matrices and stack files) as racy-matrix reads them: the located error
//! every bad input becomes, reading their text and YAML within a budget, and finding
//! where in a file a value is written, so that each error points at it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

/// A bad-input error: where (file, 1-based line and column), what, and the valid choices.
#[derive(Debug, thiserror::Error)]
pub struct InputError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// Valid choices, when there is a fixed set.
    pub choices: Vec<String>,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if !self.choices.is_empty() {
            write!(f, "\n  valid: {}", self.choices.join(", "))?;
        }
        Ok(())
    }
}

impl InputError {
    /// An error at `(line, column)` of `file` (1-based; 0 when unknown), without choices.
    pub fn new(file: &Path, (line, column): (usize, usize), message: impl Into<String>) -> Self {
        InputError {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
            choices: vec![],
        }
    }

    /// The same error, listing the valid choices.
    pub fn with_choices(self, choices: Vec<String>) -> Self {
        InputError { choices, ..self }
    }
}

/// A user's file being read: its path and text, which errors point into.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// The file, as named in errors.
    pub file: &'a Path,
    /// Its text.
    pub text: &'a str,
}

impl Source<'_> {
    /// An error about the file as a whole, at its first line and column.
    pub fn whole(&self, message: impl Into<String>) -> InputError {
        InputError::new(self.file, (1, 1), message)
    }

    /// An error at a parsed value, where the YAML parser says it is referenced.
    pub fn at<T>(&self, value: &Spanned<T>, message: impl Into<String>) -> InputError {
        InputError::new(self.file, referenced(value), message)
    }

    /// An error about a value of the file, at the first occurrence of `needle` (its
    /// start when `needle` does not occur).
    pub fn at_text(&self, needle: &str, message: impl Into<String>) -> InputError {
        InputError::new(self.file, locate(self.text, needle), message)
    }

    /// An error at `needle` inside the source of a parsed value (at the value's start
    /// when its source spells `needle` otherwise).
    pub fn within<T>(
        &self,
        value: &Spanned<T>,
        needle: &str,
        message: impl Into<String>,
    ) -> InputError {
        InputError::new(self.file, find_in(value, self.text, needle), message)
    }
}

/// Reads a user's file as UTF-8 text; `what` names it in errors ("the matrix file").
/// Bytes that are not UTF-8 are an error at the line and column where they start.
pub fn read_text(path: &Path, what: &str) -> Result<String, InputError> {
    let bytes = std::fs::read(path)
        .map_err(|e| InputError::new(path, (0, 0), format!("cannot read {what}: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
        let column = upto.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        InputError::new(path, (line, column), format!("{what} is not UTF-8 text"))
    })
}

/// Parses YAML text of a user's file into `T` within a budget (alias bombs and huge
/// documents are refused); errors carry the file, line and column.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
) -> Result<T, InputError> {
    // Only true/false are booleans: `OFF` stays the string a stack variable wants.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        budget: serde_saphyr::budget! {
            max_aliases: 1000,
            max_nodes: 1_000_000,
        },
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let at = e
            .location()
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((0, 0));
        InputError::new(file, at, e.without_snippet().to_string())
    })
}

/// The line and column the YAML parser gives for where a value is referenced.
pub fn referenced<T>(value: &Spanned<T>) -> (usize, usize) {
    (
        value.referenced.line() as usize,
        value.referenced.column() as usize,
    )
}

/// The 1-based line and column of byte `at` of `text` (columns count characters).
pub fn position(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    (line, column)
}

/// The 1-based line and column of the first occurrence of `needle` in `text` (1:1 when
/// it does not occur).
pub fn locate(text: &str, needle: &str) -> (usize, usize) {
    match text.find(needle) {
        Some(at) => position(text, at),
        None => (1, 1),
    }
}

/// Where a parsed value starts in `text`, its source.
pub fn start<T>(value: &Spanned<T>, text: &str) -> (usize, usize) {
    match value.referenced.span().byte_offset() {
        Some(at) => position(text, at as usize),
        None => referenced(value),
    }
}

/// Where `needle` occurs inside the source of a parsed value (its start when the source
/// spells it otherwise, e.g. with escapes).
pub fn find_in<T>(value: &Spanned<T>, text: &str, needle: &str) -> (usize, usize) {
    let span = value.defined.span();
    if let (Some(at), Some(len)) = (span.byte_offset(), span.byte_len()) {
        let (at, len) = (at as usize, len as usize);
        if let Some(source) = text.get(at..at + len)
            && let Some(found) = source.find(needle)
        {
            return position(text, at + found);
        }
    }
    start(value, text)
}

/// A YAML scalar where a string is meant (`"3306"`, `3306`, `true`), in matrix and
/// stack files alike.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    /// Text.
    Str(String),
    /// Whole number.
    Int(i64),
    /// Decimal number.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Str(s) => f.write_str(s),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters() {
        let text = "a: 1\nbé: ${x}\n";
        assert_eq!(position(text, 0), (1, 1));
        assert_eq!(position(text, text.find('$').unwrap()), (2, 5));
        assert_eq!(position(text, text.len()), (3, 1));
    }
}
