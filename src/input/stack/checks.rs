//! Stack values checked against what they reach, before anything starts: the SQL of
//! `x-racy.reset` and `x-racy.observe` (no `${...}`; for SQLite, no sqlite3 dot-commands),
//! and service settings the engine would only refuse at container start (`mem_limit`,
//! `deploy.replicas`, healthcheck durations) — literal ones when the file loads, those
//! that take a variable once per cell.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::compose::{MAX_REPLICAS, parse_bytes, parse_duration_ns, parse_replicas};
use super::{DatabaseKind, Driver, Layer, interpolate, references};
use crate::input::source::{InputError, Source, parse_yaml, start};

/// The smallest memory limit Docker accepts (6 MiB); below it container creation fails.
const MIN_MEMORY: i64 = 6 << 20;

/// Where the checked values are written: the typed parse of the file drops locations, so
/// these are read a second time with their spans.
#[derive(Debug, Deserialize)]
struct Spans {
    #[serde(default)]
    services: BTreeMap<String, ServiceSpans>,
    #[serde(rename = "x-racy", default)]
    x_racy: Option<SqlSpans>,
}

#[derive(Debug, Deserialize)]
struct ServiceSpans {
    #[serde(default)]
    deploy: Option<DeploySpans>,
    #[serde(default)]
    mem_limit: Option<Spanned<String>>,
    #[serde(default)]
    healthcheck: Option<HealthSpans>,
}

#[derive(Debug, Deserialize)]
struct DeploySpans {
    #[serde(default)]
    replicas: Option<Spanned<serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
struct HealthSpans {
    #[serde(default)]
    interval: Option<Spanned<String>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    start_period: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
struct SqlSpans {
    #[serde(default)]
    reset: Vec<Spanned<String>>,
    #[serde(default)]
    observe: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    invariants: BTreeMap<String, InvariantSpans>,
}

#[derive(Debug, Deserialize)]
struct InvariantSpans {
    #[serde(default)]
    violations: Option<Spanned<String>>,
    #[serde(default)]
    out_of: Option<Spanned<String>>,
}

/// A service setting the engine checks only when it creates the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Replicas,
    MemLimit,
    /// A healthcheck duration, by its field name.
    Duration(&'static str),
}

/// One such setting as written: its service, its text before interpolation, and where.
#[derive(Clone, Debug)]
pub(super) struct Setting {
    file: PathBuf,
    service: String,
    key: Key,
    raw: String,
    line: usize,
    column: usize,
    /// The service is the burst target or the database, which run as one container.
    single: bool,
}

impl Setting {
    /// The setting's path in the file, e.g. `services.app.deploy.replicas`.
    fn path(&self) -> String {
        let key = match self.key {
            Key::Replicas => "deploy.replicas".to_string(),
            Key::MemLimit => "mem_limit".to_string(),
            Key::Duration(field) => format!("healthcheck.{field}"),
        };
        format!("services.{}.{key}", self.service)
    }

    /// Whether it takes a variable (and so can only be checked once a cell sets it).
    fn varies(&self) -> bool {
        !references(&self.raw).is_empty()
    }

    /// What is wrong with `value` for this setting, and what to write instead.
    fn problem(&self, value: &str) -> Option<(String, String)> {
        match self.key {
            Key::Replicas => match parse_replicas(value) {
                Err(_) => Some((
                    "not a replica count".into(),
                    format!("a whole number from 1 to {MAX_REPLICAS}"),
                )),
                Ok(n) if n > 1 && self.single => Some((
                    "more than one container for the burst target or the database, which run as one".into(),
                    "1 (or leave deploy.replicas out)".into(),
                )),
                Ok(_) => None,
            },
            Key::MemLimit => match parse_bytes(value) {
                Err(_) => Some((
                    "not a memory size".into(),
                    "bytes, or a number with the unit k, m or g (e.g. 512m)".into(),
                )),
                Ok(b) if b < MIN_MEMORY => Some((
                    "below the 6m Docker accepts".into(),
                    "at least 6m (e.g. 256m)".into(),
                )),
                Ok(_) => None,
            },
            Key::Duration(_) => match parse_duration_ns(value) {
                Err(_) => Some((
                    "not a duration".into(),
                    "a number with the unit ns, us, ms, s, m or h (e.g. 1s, 500ms)".into(),
                )),
                Ok(ns) if ns != 0 && ns < 1_000_000 => Some((
                    "below the 1ms Docker accepts".into(),
                    "0 or at least 1ms".into(),
                )),
                Ok(_) => None,
            },
        }
    }

    fn error(&self, message: String) -> InputError {
        InputError::new(&self.file, (self.line, self.column), message)
    }

    /// Refuses a literal value the engine would refuse.
    fn check_literal(&self) -> Result<(), InputError> {
        match self.problem(&self.raw) {
            None => Ok(()),
            Some((what, fix)) => Err(self.error(format!(
                "{} '{}' is {what}: write {fix}",
                self.path(),
                self.raw
            ))),
        }
    }

    /// Refuses the value a set of variables gives it, naming the variables; a variable
    /// the tool itself provides at run time (not in `vars`) leaves it unchecked.
    pub(super) fn check_with(&self, vars: &BTreeMap<String, String>) -> Result<(), InputError> {
        // a variable with no default and no value yet is one the tool sets at run time
        let later = references(&self.raw)
            .iter()
            .any(|(name, default)| default.is_none() && !vars.contains_key(name));
        let Ok(value) = interpolate(&self.raw, vars) else {
            return Ok(());
        };
        if later {
            return Ok(());
        }
        let Some((what, fix)) = self.problem(&value) else {
            return Ok(());
        };
        let refs = references(&self.raw);
        let cell: Vec<String> = refs
            .iter()
            .map(|(name, _)| match vars.get(name).filter(|v| !v.is_empty()) {
                Some(v) => format!("{name}={v}"),
                None => format!("{name} unset (its default applies)"),
            })
            .collect();
        let names: Vec<&str> = refs.iter().map(|(name, _)| name.as_str()).collect();
        Err(self.error(
            format!(
                "{} '{}' is '{value}' in the cell with {}, which is {what}: change the matrix's values for {} so that it is {fix}",
                self.path(),
                self.raw,
                cell.join(", "),
                names.join(", ")
            ),
        ))
    }
}

/// Checks a stack file's values against what they reach: refuses SQL that takes a
/// variable (or, for SQLite, holds a dot-command) and service settings whose literal
/// value the engine would refuse; returns the settings that take a variable, to be
/// checked once per cell.
pub(super) fn check_files(layers: &[Layer], driver: &Driver) -> Result<Vec<Setting>, InputError> {
    // The files once more with locations, for the values checked against what they
    // reach: SQL, the sqlite3 shell, the engine. The SQL of every file's x-racy block is
    // checked, so whichever statements the merge keeps were checked where they are written.
    for layer in layers {
        let src = layer.source();
        let spans: Spans = parse_yaml(src.text, src.file)?;
        if let Some(sql) = &spans.x_racy {
            check_sql(sql, driver.database.engine, src)?;
        }
    }
    let single = [
        driver.target.service.as_str(),
        driver.database.service.as_str(),
    ];
    let mut settings: Vec<Setting> = Vec::new();
    for layer in layers {
        let spans: Spans = parse_yaml(&layer.text, &layer.file)?;
        // a later file's value replaces an earlier one's
        for s in self::settings(&spans, layer, &single) {
            settings.retain(|o| (o.service.as_str(), o.key) != (s.service.as_str(), s.key));
            settings.push(s);
        }
    }
    for s in settings.iter().filter(|s| !s.varies()) {
        s.check_literal()?;
    }
    settings.retain(Setting::varies);
    Ok(settings)
}

fn settings(spans: &Spans, layer: &Layer, single: &[&str]) -> Vec<Setting> {
    let text = layer.text.as_str();
    let mut out = Vec::new();
    for (svc, s) in &spans.services {
        let mut add = |key: Key, raw: String, at: (usize, usize)| {
            out.push(Setting {
                file: layer.file.clone(),
                service: svc.clone(),
                key,
                raw,
                line: at.0,
                column: at.1,
                single: single.contains(&svc.as_str()),
            })
        };
        if let Some(r) = s.deploy.as_ref().and_then(|d| d.replicas.as_ref()) {
            let raw = match &r.value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            add(Key::Replicas, raw, start(r, text));
        }
        if let Some(m) = &s.mem_limit {
            add(Key::MemLimit, m.value.clone(), start(m, text));
        }
        if let Some(h) = &s.healthcheck {
            for (field, v) in [
                ("interval", &h.interval),
                ("timeout", &h.timeout),
                ("start_period", &h.start_period),
            ] {
                if let Some(v) = v {
                    add(Key::Duration(field), v.value.clone(), start(v, text));
                }
            }
        }
    }
    out
}

/// Refuses SQL in `x-racy.reset`, `x-racy.observe` and `x-racy.invariants` that would take anything but its own
/// text: a `${...}` there would put a matrix value into SQL, and for SQLite a line that
/// starts with `.` is a command of the sqlite3 shell the statements run through
/// (`.shell`, `.system` and `.output` run programs and write files), not SQL.
fn check_sql(sql: &SqlSpans, engine: DatabaseKind, src: Source) -> Result<(), InputError> {
    let statements = sql
        .reset
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("x-racy.reset statement {}", i + 1), s))
        .chain(
            sql.observe
                .iter()
                .map(|(k, s)| (format!("x-racy.observe.{k}"), s)),
        )
        .chain(sql.invariants.iter().flat_map(|(name, i)| {
            [("violations", &i.violations), ("out_of", &i.out_of)]
                .into_iter()
                .filter_map(move |(field, s)| {
                    Some((format!("x-racy.invariants.{name}.{field}"), s.as_ref()?))
                })
        }));
    for (what, stmt) in statements {
        let error = |needle: &str, message: String| src.within(stmt, needle, message);
        if what.starts_with("x-racy.invariants") && stmt.value.trim().is_empty() {
            return Err(src.within(stmt, "", format!("{what} is empty: write the SQL query")));
        }
        if let Some(reference) = first_reference(&stmt.value) {
            return Err(error(
                reference,
                format!(
                    "{what} uses '{reference}': SQL is taken as written and matrix values never reach it; write the value itself into the statement (a literal '$' is written '$$')"
                ),
            ));
        }
        if engine == DatabaseKind::Sqlite
            && let Some(line) = stmt.value.lines().find(|l| l.trim_start().starts_with('.'))
        {
            let line = line.trim();
            let command = line.split_whitespace().next().unwrap_or(line);
            return Err(error(
                line,
                format!(
                    "{what} is the sqlite3 command '{command}', not SQL: the statements run through the sqlite3 shell, which would execute it; write SQL statements only"
                ),
            ));
        }
    }
    Ok(())
}

/// The first interpolation in `s` as written (`${name...}` or `$name`; `$$` is a literal
/// dollar).
fn first_reference(s: &str) -> Option<&str> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            match bytes.get(i + 1) {
                Some(b'$') => {
                    i += 2;
                    continue;
                }
                Some(b'{') => {
                    let end = s[i..].find('}').map_or(s.len(), |e| i + e + 1);
                    return Some(&s[i..end]);
                }
                Some(c) if c.is_ascii_alphanumeric() || *c == b'_' => {
                    let len = s[i + 1..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(s.len() - i - 1);
                    return Some(&s[i..i + 1 + len]);
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_as_written() {
        assert_eq!(first_reference("id = ${account}"), Some("${account}"));
        assert_eq!(first_reference("id = $account + 1"), Some("$account"));
        assert_eq!(first_reference("${open"), Some("${open"));
        assert_eq!(first_reference("$$ $$x $1"), Some("$1"));
        assert_eq!(first_reference("cost $$5, $ alone, a$"), None);
    }
}
