//! The files a stack is made of, and how they merge. A stack directory holds either
//! `compose.yaml` (services and the `x-racy` block in one file) or `racy.yaml`, which
//! names a project's own compose files (`compose: PATH` or a list) and adds the `x-racy`
//! block and any service overrides; they merge as `docker compose -f a -f b -f racy.yaml`
//! would: mappings key by key, sequences appended, `command`, `entrypoint` and
//! `healthcheck.test` replaced, `volumes` unique by target, `environment`, `labels`,
//! `depends_on` and `networks` as mappings whatever form each file writes them in. Paths
//! in every file are relative to the first compose file's directory, as compose has it.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use crate::input::source::{InputError, Source, parse_yaml, read_text};

/// One file of a stack.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The file.
    pub file: PathBuf,
    /// Its text.
    pub text: String,
    /// Whether it is a racy.yaml (which may name compose files).
    pub racy: bool,
}

impl Layer {
    /// The file as errors point into it.
    pub fn source(&self) -> Source<'_> {
        Source {
            file: &self.file,
            text: &self.text,
        }
    }
}

/// The files of a stack, for errors: a value is looked for from the last file (the one
/// whose value is in force) to the first.
#[derive(Clone, Copy, Debug)]
pub struct Files<'a>(pub &'a [Layer]);

impl Files<'_> {
    /// An error at the first occurrence of `needle` in the last file that holds it.
    pub fn at_text(&self, needle: &str, message: impl Into<String>) -> InputError {
        let layer = self
            .0
            .iter()
            .rev()
            .find(|l| l.text.contains(needle))
            .unwrap_or_else(|| self.last());
        layer.source().at_text(needle, message)
    }

    /// An error about the stack as a whole, at the start of its last file.
    pub fn whole(&self, message: impl Into<String>) -> InputError {
        self.last().source().whole(message)
    }

    fn last(&self) -> &Layer {
        self.0.last().expect("a stack has a file")
    }

    /// The directory relative paths are resolved against: the first file's.
    pub fn project_dir(&self) -> &Path {
        self.0[0].file.parent().unwrap_or(Path::new("."))
    }
}

#[derive(Deserialize)]
struct RacyHead {
    /// A path or a list of paths.
    #[serde(default)]
    compose: Option<Spanned<Value>>,
}

/// The files of the stack in `dir`: its racy.yaml's compose files and then the racy.yaml,
/// or its compose.yaml.
pub fn read(dir: &Path) -> Result<Vec<Layer>, InputError> {
    let racy = dir.join("racy.yaml");
    if !racy.is_file() {
        let file = dir.join("compose.yaml");
        let text = read_text(&file, "the stack file")?;
        return Ok(vec![Layer {
            file,
            text,
            racy: false,
        }]);
    }
    let text = read_text(&racy, "the stack file")?;
    let head: RacyHead = parse_yaml(&text, &racy)?;
    let src = Source {
        file: &racy,
        text: &text,
    };
    let Some(compose) = head.compose else {
        return Err(src.whole(
            "racy.yaml names no compose file: add `compose: PATH/TO/docker-compose.yml` (relative to racy.yaml)",
        ));
    };
    let paths: Vec<String> = match &compose.value {
        Value::String(p) => vec![p.clone()],
        Value::Array(l) if l.iter().all(Value::is_string) && !l.is_empty() => {
            l.iter().map(scalar_text).collect()
        }
        _ => {
            return Err(src.at(
                &compose,
                "`compose:` is a path or a list of paths to compose files",
            ));
        }
    };
    let mut layers = Vec::new();
    for path in paths {
        let file = tidy(&racy.parent().unwrap_or(Path::new(".")).join(&path));
        if !file.is_file() {
            return Err(src.within(
                &compose,
                &path,
                format!(
                    "compose file {} does not exist (the path is relative to racy.yaml)",
                    file.display()
                ),
            ));
        }
        let text = read_text(&file, "the compose file")?;
        layers.push(Layer {
            file,
            text,
            racy: false,
        });
    }
    layers.push(Layer {
        file: racy,
        text,
        racy: true,
    });
    Ok(layers)
}

/// `path` with `.` and `dir/..` taken out as text (`stacks/x/../../app` is `app`), so
/// that messages name files as the user would.
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// The files merged into one compose tree (each file's raw tree is read by the caller,
/// with located errors).
pub fn merge_all(raws: Vec<Value>) -> Value {
    let mut merged = Value::Object(Map::new());
    for mut raw in raws {
        if let Value::Object(m) = &mut raw {
            m.remove("compose");
        }
        normalise(&mut raw);
        merge(&mut merged, raw, "");
    }
    merged
}

/// Rewrites each service's list-or-mapping keys in their mapping form, so that files
/// writing them differently merge entry by entry.
fn normalise(raw: &mut Value) {
    let Some(Value::Object(services)) = raw.get_mut("services") else {
        return;
    };
    for service in services.values_mut() {
        let Value::Object(s) = service else { continue };
        for key in ["environment", "labels"] {
            if let Some(Value::Array(list)) = s.get(key) {
                let map = list
                    .iter()
                    .map(|e| {
                        let e = scalar_text(e);
                        match e.split_once('=') {
                            Some((k, v)) => (k.to_string(), Value::String(v.to_string())),
                            None => (e, Value::Null),
                        }
                    })
                    .collect();
                s.insert(key.into(), Value::Object(map));
            }
        }
        for (key, value) in [
            (
                "depends_on",
                serde_json::json!({"condition": "service_started"}),
            ),
            ("networks", Value::Null),
        ] {
            if let Some(Value::Array(list)) = s.get(key) {
                let map = list
                    .iter()
                    .map(|n| (scalar_text(n), value.clone()))
                    .collect();
                s.insert(key.into(), Value::Object(map));
            }
        }
        if let Some(Value::String(context)) = s.get("build") {
            let long = serde_json::json!({ "context": context });
            s.insert("build".into(), long);
        }
        if let Some(one @ Value::String(_)) = s.get("env_file") {
            let list = Value::Array(vec![one.clone()]);
            s.insert("env_file".into(), list);
        }
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Merges `over` into `base` at `key` (the mapping key both sit under).
fn merge(base: &mut Value, over: Value, key: &str) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    // the x-racy block of a later file replaces an earlier one whole
                    Some(slot) if k != "x-racy" => merge(slot, v, &k),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(o)) => match key {
            "command" | "entrypoint" | "test" => *b = o,
            "volumes" => {
                for entry in o {
                    let target = volume_target(&entry);
                    b.retain(|e| target.is_none() || volume_target(e) != target);
                    b.push(entry);
                }
            }
            _ => {
                for entry in o {
                    if !b.contains(&entry) {
                        b.push(entry);
                    }
                }
            }
        },
        (b, o) => *b = o,
    }
}

fn volume_target(entry: &Value) -> Option<String> {
    match entry {
        Value::String(s) => s.split(':').nth(1).map(str::to_string),
        Value::Object(m) => m.get("target").map(scalar_text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_are_tidied_as_text() {
        assert_eq!(
            tidy(Path::new("stacks/x/../../app/c.yml")),
            Path::new("app/c.yml")
        );
        assert_eq!(tidy(Path::new("./a/./b")), Path::new("a/b"));
        assert_eq!(tidy(Path::new("../up/x")), Path::new("../up/x"));
        assert_eq!(tidy(Path::new("a/..")), Path::new("."));
    }

    #[test]
    fn files_merge_as_compose_merges_them() {
        let theirs = json!({"services": {"web": {
            "build": "./app",
            "command": ["gunicorn", "app:app"],
            "environment": ["A=1", "B=2"],
            "ports": ["8000:8000"],
            "volumes": ["./app:/srv/app:ro", "data:/data"],
            "depends_on": ["db"],
            "healthcheck": {"test": ["CMD", "true"], "interval": "2s"},
        }}, "volumes": {"data": null}});
        let ours = json!({"compose": "x.yml", "services": {"web": {
            "command": "gunicorn -w 4 app:app",
            "environment": {"B": "3", "C": "4"},
            "ports": ["8000:8000", "9000:9000"],
            "volumes": [{"type": "volume", "source": "src", "target": "/srv/app"}],
            "depends_on": {"cache": {"condition": "service_healthy"}},
            "healthcheck": {"test": "true"},
        }}, "x-racy": {"reset": ["b"]}});
        let merged = merge_all(vec![theirs, json!({"x-racy": {"reset": ["a"]}}), ours]);
        let web = &merged["services"]["web"];
        assert_eq!(web["build"], json!({"context": "./app"}));
        assert_eq!(web["command"], json!("gunicorn -w 4 app:app"));
        assert_eq!(web["environment"], json!({"A": "1", "B": "3", "C": "4"}));
        assert_eq!(web["ports"], json!(["8000:8000", "9000:9000"]));
        assert_eq!(
            web["volumes"],
            json!(["data:/data", {"type": "volume", "source": "src", "target": "/srv/app"}])
        );
        assert_eq!(
            web["depends_on"],
            json!({"db": {"condition": "service_started"}, "cache": {"condition": "service_healthy"}})
        );
        assert_eq!(
            web["healthcheck"],
            json!({"test": "true", "interval": "2s"})
        );
        assert_eq!(merged["x-racy"], json!({"reset": ["b"]}));
        assert!(merged.get("compose").is_none());
    }
}
