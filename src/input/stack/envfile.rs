//! Environment files as compose reads them: a service's `env_file` and the project's
//! `.env` (whose values interpolate the compose file). One `KEY=VALUE` a line; blank
//! lines and lines starting with `#` are skipped; `export ` before a key is allowed; a
//! value in single quotes is literal, one in double quotes takes the escapes `\n`, `\t`,
//! `\\` and `\"`; an unquoted value ends at ` #` (an inline comment) and is trimmed.
//! Values are not interpolated (compose v1 does not; racy-matrix keeps `$` as written).

use std::path::Path;

use crate::input::source::{InputError, read_text};

/// The entries of an environment file, in the order written (a later duplicate wins
/// where they are collected into a map). Errors name the file and line.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, InputError> {
    let text = read_text(path, "the env file")?;
    parse_env(&text, path)
}

/// [`read_env_file`] on text already read (`file` names it in errors).
pub fn parse_env(text: &str, file: &Path) -> Result<Vec<(String, String)>, InputError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let at = |column: usize, message: String| InputError::new(file, (i + 1, column), message);
        let Some((key, value)) = body.split_once('=') else {
            // compose takes a bare name to mean "from the shell's environment", which
            // racy-matrix does not read: such a variable stays unset
            let key = body.trim();
            if !valid_key(key) {
                return Err(at(indent + 1, format!("'{key}' is not KEY=VALUE")));
            }
            continue;
        };
        let key = key.trim();
        if !valid_key(key) {
            return Err(at(
                indent + 1,
                format!("'{key}' is not a variable name (letters, digits, _ . -)"),
            ));
        }
        let value = unquote(value.trim_start())
            .map_err(|e| at(indent + body.find('=').unwrap_or(0) + 2, e))?;
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn unquote(v: &str) -> Result<String, String> {
    if let Some(rest) = v.strip_prefix('\'') {
        let end = rest.find('\'').ok_or("unclosed single quote")?;
        return Ok(rest[..end].to_string());
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(out),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err("unclosed double quote".into());
    }
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    Ok(v.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<(String, String)> {
        parse_env(text, Path::new(".env")).unwrap()
    }

    #[test]
    fn env_file_forms() {
        let got = parse(
            "# settings\n\nA=1\nexport B = two words  # note\nC='lit $x #'\nD=\"a\\\"b\\nc\"\nE=\nF=pa$$word\nBARE\n",
        );
        let want: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "lit $x #"),
            ("D", "a\"b\nc"),
            ("E", ""),
            ("F", "pa$$word"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bad_lines_are_located() {
        let e = parse_env("A=1\n  bad key=2\n", Path::new("x/.env")).unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.contains("bad key"), "{e}");
        let e = parse_env("A=\"open\n", Path::new(".env")).unwrap_err();
        assert_eq!((e.line, e.column), (1, 3));
        assert!(e.message.contains("unclosed"), "{e}");
    }
}
