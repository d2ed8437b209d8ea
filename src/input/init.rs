//! `racy-matrix init`: a starting `racy.yaml` for a project's own compose file. It reads
//! the compose file (never writes it), the env files its services name and the `.env`
//! beside it; guesses the target, the database and a worker-count setting, each written
//! with why; and marks what only the user knows (endpoints, reset and observe SQL) TODO,
//! with examples in the database's dialect. Secrets are never copied: the database's
//! credentials are left to be read from its service's environment, and only variable
//! names, never values read from env files, reach the file or the summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::input::source::{InputError, locate, parse_yaml, read_text};
use crate::input::stack::{collect_vars, interpolate, read_env_file};

/// The file a stack directory holds instead of `compose.yaml` when it names a project's
/// own compose file.
pub const RACY_FILE: &str = "racy.yaml";

/// Names of worker-count settings (environment keys or variables).
const WORKER_VARS: [&str; 6] = [
    "WEB_CONCURRENCY",
    "GUNICORN_WORKERS",
    "WORKERS",
    "workers",
    "UVICORN_WORKERS",
    "PUMA_WORKERS",
];

/// Reverse proxies: when one publishes a port, it is the target.
const PROXIES: [&str; 5] = ["nginx", "traefik", "caddy", "haproxy", "envoy"];

/// Services that publish a port but are not the app (broker, admin and monitoring tools).
const SIDE_TOOLS: [&str; 16] = [
    "redis",
    "rabbitmq",
    "memcached",
    "adminer",
    "pgadmin",
    "phpmyadmin",
    "mailhog",
    "mailpit",
    "flower",
    "minio",
    "grafana",
    "prometheus",
    "kibana",
    "elasticsearch",
    "jaeger",
    "localstack",
];

/// A drafted `racy.yaml`: its text, and one line per guess for the terminal.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    /// The file's text (valid YAML; guesses commented `guessed:`, the rest `TODO`).
    pub text: String,
    /// What was guessed, one line each (target, database, workers, variables).
    pub summary: Vec<String>,
}

/// Drafts the `racy.yaml` for `compose_file` that goes into directory `out_dir` (its
/// `compose:` is relative to it). Reads the compose file, its services' env files and its
/// `.env`; writes nothing.
pub fn draft(compose_file: &Path, out_dir: &Path) -> Result<Draft, InputError> {
    let project = Project::read(compose_file)?;
    let compose = relative_to(out_dir, compose_file)
        .map_err(|e| InputError::new(compose_file, (0, 0), format!("cannot resolve: {e}")))?;
    let database = guess_database(&project.services);
    let db_name = database.as_ref().map(|d| d.service.as_str());
    let target = guess_target(&project.services, db_name);
    let workers = guess_workers(&project, target.service.as_deref(), db_name);
    let guesses = Guesses {
        compose,
        target,
        database,
        workers,
    };
    Ok(Draft {
        text: render(&project, &guesses),
        summary: summary(&project, &guesses),
    })
}

/// The compose file as the guesses need it.
struct Project {
    /// The `.env` beside the compose file: values for `${VAR}`, to resolve guesses only.
    dotenv: BTreeMap<String, String>,
    /// Services in file order.
    services: Vec<Svc>,
    /// Every variable the file references, with its first default.
    variables: BTreeMap<String, Option<String>>,
}

/// One service, as far as the guesses need it.
struct Svc {
    name: String,
    raw: Value,
    /// Its environment (env_file entries, then `environment`), values resolved; `None`
    /// when unset or empty. Never written out: only the keys are.
    env: BTreeMap<String, Option<String>>,
    /// What it runs, lowercased, and where that shows: ("image", "postgres:16"),
    /// ("build context", "db"), ("Dockerfile FROM", "postgres:16").
    looks: Vec<(&'static str, String)>,
    /// Container ports of `ports`.
    published: Vec<u16>,
    /// Container ports of `expose`.
    exposed: Vec<u16>,
}

impl Project {
    /// Reads the compose file, its `.env` and its services' env files.
    fn read(file: &Path) -> Result<Project, InputError> {
        let text = read_text(file, "the compose file")?;
        let doc: Value = parse_yaml(&text, file)?;
        let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
        let dotenv_file = dir.join(".env");
        let dotenv: BTreeMap<String, String> = if dotenv_file.is_file() {
            read_env_file(&dotenv_file)?.into_iter().collect()
        } else {
            BTreeMap::new()
        };
        let Some(services) = doc.get("services").and_then(Value::as_object) else {
            return Err(InputError::new(
                file,
                (1, 1),
                "the compose file has no `services:` mapping",
            ));
        };
        let mut svcs = Vec::new();
        for (name, raw) in services {
            let src = (file, text.as_str());
            svcs.push(Svc::read(name, raw, &dir, src, &dotenv)?);
        }
        let mut variables = BTreeMap::new();
        collect_vars(&doc, &mut variables);
        Ok(Project {
            dotenv,
            services: svcs,
            variables,
        })
    }

    fn service(&self, name: &str) -> Option<&Svc> {
        self.services.iter().find(|s| s.name == name)
    }
}

impl Svc {
    fn read(
        name: &str,
        raw: &Value,
        dir: &Path,
        src: (&Path, &str),
        dotenv: &BTreeMap<String, String>,
    ) -> Result<Svc, InputError> {
        let ports = |key: &str| -> Vec<u16> {
            raw.get(key)
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(|e| container_port(e, dotenv)).collect())
                .unwrap_or_default()
        };
        Ok(Svc {
            name: name.to_string(),
            env: service_env(name, raw, dir, src, dotenv)?,
            looks: looks(raw, dir, dotenv),
            published: ports("ports"),
            exposed: ports("expose"),
            raw: raw.clone(),
        })
    }

    /// Whether its name or what it runs mentions `word`; where, when it does.
    fn mentions(&self, word: &str) -> Option<String> {
        if self.name.to_lowercase().contains(word) {
            return Some(format!("named {}", self.name));
        }
        self.looks
            .iter()
            .find(|(_, text)| text.contains(word))
            .map(|(what, text)| format!("{what} {text}"))
    }

    /// Whether its environment sets `key` (to something not empty).
    fn sets(&self, key: &str) -> bool {
        matches!(self.env.get(key), Some(Some(_)))
    }
}

/// A service's environment: its env files (a string, a list of strings, or a list of
/// `{path, required}`; paths relative to the compose file's directory), then its
/// `environment`, which wins. A missing env file is an error unless `required: false`.
fn service_env(
    name: &str,
    raw: &Value,
    dir: &Path,
    (file, text): (&Path, &str),
    dotenv: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Option<String>>, InputError> {
    let mut env = BTreeMap::new();
    for (path, required) in env_files(raw.get("env_file")) {
        let full = dir.join(resolve(&path, dotenv));
        if !full.is_file() {
            if !required {
                continue;
            }
            return Err(InputError::new(
                file,
                locate(text, &path),
                format!(
                    "service {name}: env_file {path} does not exist in {} (`required: false` lets it be absent)",
                    if dir.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        dir
                    }
                    .display()
                ),
            ));
        }
        for (k, v) in read_env_file(&full)? {
            env.insert(k, Some(v));
        }
    }
    match raw.get("environment") {
        Some(Value::Object(m)) => {
            for (k, v) in m {
                env.insert(k.clone(), scalar_text(v).map(|t| resolve(&t, dotenv)));
            }
        }
        Some(Value::Array(l)) => {
            for entry in l.iter().filter_map(Value::as_str) {
                match entry.split_once('=') {
                    Some((k, v)) => env.insert(k.to_string(), Some(resolve(v, dotenv))),
                    None => env.insert(entry.to_string(), None),
                };
            }
        }
        _ => {}
    }
    Ok(env
        .into_iter()
        .map(|(k, v)| (k, v.filter(|v| !v.is_empty())))
        .collect())
}

/// The env files of `env_file`, with whether each must exist.
fn env_files(value: Option<&Value>) -> Vec<(String, bool)> {
    let one = |v: &Value| match v {
        Value::String(s) => Some((s.clone(), true)),
        Value::Object(m) => {
            let path = m.get("path")?.as_str()?.to_string();
            let required = m.get("required").and_then(Value::as_bool).unwrap_or(true);
            Some((path, required))
        }
        _ => None,
    };
    match value {
        Some(Value::Array(l)) => l.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => vec![],
    }
}

/// A scalar's text (`None` for null, a mapping or a list).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What a service runs, lowercased: its image, its build context's directory name, and
/// the images of its Dockerfile's `FROM` lines when the Dockerfile is readable.
fn looks(
    raw: &Value,
    dir: &Path,
    dotenv: &BTreeMap<String, String>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(image) = raw.get("image").and_then(Value::as_str) {
        out.push(("image", resolve(image, dotenv).to_lowercase()));
    }
    let (context, dockerfile) = match raw.get("build") {
        Some(Value::String(s)) => (s.as_str(), None),
        Some(Value::Object(m)) => (
            m.get("context").and_then(Value::as_str).unwrap_or("."),
            m.get("dockerfile").and_then(Value::as_str),
        ),
        _ => return out,
    };
    let context = resolve(context, dotenv);
    if context.contains("://") {
        return out;
    }
    if let Some(n) = Path::new(&context).file_name() {
        out.push(("build context", n.to_string_lossy().to_lowercase()));
    }
    let dockerfile = dir
        .join(&context)
        .join(dockerfile.map_or("Dockerfile".into(), |d| resolve(d, dotenv)));
    let text = std::fs::read_to_string(dockerfile).unwrap_or_default();
    for line in text.lines().map(str::trim) {
        let is_from = line
            .get(..5)
            .is_some_and(|w| w.eq_ignore_ascii_case("FROM "));
        if let Some(image) = line
            .get(5..)
            .filter(|_| is_from)
            .and_then(|rest| rest.split_whitespace().find(|w| !w.starts_with("--")))
        {
            out.push(("Dockerfile FROM", image.to_lowercase()));
        }
    }
    out
}

/// The container port of a `ports` or `expose` entry: `8000`, `"8000"`, `"8000:8000"`,
/// `"127.0.0.1:8000:8000"`, `"127.0.0.1::80"`, `"8000:8000/tcp"`, a range's first port,
/// or the long form's `target`.
fn container_port(entry: &Value, dotenv: &BTreeMap<String, String>) -> Option<u16> {
    match entry {
        Value::Number(n) => n.as_u64()?.try_into().ok(),
        Value::String(s) => {
            let s = resolve(s, dotenv);
            let no_proto = s.split('/').next()?;
            let target = no_proto.rsplit(':').next()?;
            target.split('-').next()?.trim().parse().ok()
        }
        Value::Object(m) => container_port(m.get("target")?, dotenv),
        _ => None,
    }
}

/// `s` with `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$VAR` and `$$` resolved from
/// `.env` (then the default, else empty): for guessing only.
fn resolve(s: &str, dotenv: &BTreeMap<String, String>) -> String {
    interpolate(s, dotenv).unwrap_or_else(|_| s.to_string())
}

/// `to` relative to directory `from`, `/`-separated (both made absolute, with the
/// symbolic links of the part that exists resolved, as the kernel will).
fn relative_to(from: &Path, to: &Path) -> std::io::Result<String> {
    let (from, to) = (real(from)?, real(to)?);
    let (f, t): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts = vec!["..".to_string(); f.len() - common];
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    Ok(parts.join("/"))
}

/// `p` absolute, its deepest existing ancestor canonicalized.
fn real(p: &Path) -> std::io::Result<PathBuf> {
    let abs = std::path::absolute(p)?;
    let mut existing = abs.as_path();
    let mut missing = Vec::new();
    while !existing.exists() {
        let (Some(name), Some(parent)) = (existing.file_name(), existing.parent()) else {
            break;
        };
        missing.push(name);
        existing = parent;
    }
    let mut out = existing.canonicalize()?;
    out.extend(missing.iter().rev());
    Ok(out)
}

/// Everything guessed, ready to render.
struct Guesses {
    /// The compose file, relative to the racy.yaml.
    compose: String,
    target: TargetGuess,
    database: Option<DbGuess>,
    workers: Workers,
}

/// Database engines `init` recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Postgres,
    Mysql,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mysql => 3306,
        }
    }

    /// The engine a text (image, context name) mentions.
    fn mentioned_in(text: &str) -> Option<Engine> {
        if ["postgres", "postgis"].iter().any(|w| text.contains(w)) {
            Some(Engine::Postgres)
        } else if ["mysql", "mariadb", "percona"]
            .iter()
            .any(|w| text.contains(w))
        {
            Some(Engine::Mysql)
        } else {
            None
        }
    }

    /// The engine whose image reads an environment key.
    fn of_key(key: &str) -> Option<Engine> {
        if key.starts_with("POSTGRES_") {
            Some(Engine::Postgres)
        } else if key.starts_with("MYSQL_") || key.starts_with("MARIADB_") {
            Some(Engine::Mysql)
        } else {
            None
        }
    }

    /// The environment keys its image takes user, password and name from, in order of
    /// preference.
    fn credential_keys(self) -> [(&'static str, &'static [&'static str]); 3] {
        match self {
            Engine::Postgres => [
                ("user", &["POSTGRES_USER"]),
                ("password", &["POSTGRES_PASSWORD"]),
                ("name", &["POSTGRES_DB"]),
            ],
            Engine::Mysql => [
                ("user", &["MARIADB_USER", "MYSQL_USER"]),
                ("password", &["MARIADB_PASSWORD", "MYSQL_PASSWORD"]),
                ("name", &["MARIADB_DATABASE", "MYSQL_DATABASE"]),
            ],
        }
    }

    /// SQL's integer type for CAST.
    fn integer(self) -> &'static str {
        match self {
            Engine::Postgres => "BIGINT",
            Engine::Mysql => "SIGNED",
        }
    }
}

/// The guessed database.
struct DbGuess {
    service: String,
    engine: Engine,
    port: u16,
    why: String,
    /// user, password, name: the key of the service's environment each is read from, or
    /// the keys that could set it when none does.
    credentials: Vec<(&'static str, Result<&'static str, &'static [&'static str]>)>,
}

/// The database: a service whose image, build context or Dockerfile mentions
/// postgres/postgis or mysql/mariadb/percona; else one whose environment has
/// `POSTGRES_*`, `MYSQL_*` or `MARIADB_*` keys (a likely server before a likely client).
fn guess_database(services: &[Svc]) -> Option<DbGuess> {
    for s in services {
        for (what, text) in &s.looks {
            let tool = ["exporter", "admin", "backup"]
                .iter()
                .any(|w| text.contains(w));
            if let Some(engine) = Engine::mentioned_in(text).filter(|_| !tool) {
                return Some(db_guess(s, engine, format!("its {what} is {text}")));
            }
        }
    }
    let mut best: Option<((bool, bool), &Svc, Engine)> = None;
    for s in services {
        let Some(engine) = s.env.keys().find_map(|k| Engine::of_key(k)) else {
            continue;
        };
        let named = ["db", "database", "postgres", "mysql", "maria", "pg"]
            .iter()
            .any(|w| s.name.to_lowercase().contains(w));
        let client = s.env.keys().any(|k| k.ends_with("_HOST"));
        let rank = (named, !client);
        if best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
            best = Some((rank, s, engine));
        }
    }
    let (_, s, engine) = best?;
    let keys: Vec<&str> = s
        .env
        .keys()
        .filter(|k| Engine::of_key(k) == Some(engine))
        .map(String::as_str)
        .collect();
    let why = format!("its environment has {}", keys.join(", "));
    Some(db_guess(s, engine, why))
}

fn db_guess(s: &Svc, engine: Engine, why: String) -> DbGuess {
    let default = engine.default_port();
    let shown: Vec<u16> = s.published.iter().chain(&s.exposed).copied().collect();
    let port = if shown.contains(&default) {
        default
    } else {
        shown.first().copied().unwrap_or(default)
    };
    let credentials = engine
        .credential_keys()
        .into_iter()
        .map(|(field, keys)| {
            let found = keys.iter().copied().find(|k| s.sets(k));
            (field, found.ok_or(keys))
        })
        .collect();
    DbGuess {
        service: s.name.clone(),
        engine,
        port,
        why,
        credentials,
    }
}

/// The guessed target (`service` None: not found).
struct TargetGuess {
    service: Option<String>,
    port: u16,
    why: String,
}

/// The target: a reverse proxy (named or imaged nginx, traefik, caddy, haproxy, envoy)
/// that publishes a port; else a service that publishes one and is neither the database
/// nor a side tool; else one that exposes one. The port is the container's.
fn guess_target(services: &[Svc], db: Option<&str>) -> TargetGuess {
    let candidates = || services.iter().filter(|s| Some(s.name.as_str()) != db);
    let http_port = |ports: &[u16]| {
        ports
            .iter()
            .copied()
            .find(|p| ![443, 8443].contains(p))
            .or(ports.first().copied())
    };
    for s in candidates() {
        let proxy = PROXIES.iter().find_map(|w| s.mentions(w));
        if let (Some(how), Some(port)) = (proxy, http_port(&s.published)) {
            let why = format!("a reverse proxy ({how}) that publishes {port}");
            return TargetGuess {
                service: Some(s.name.clone()),
                port,
                why,
            };
        }
    }
    let app = |s: &&Svc| !SIDE_TOOLS.iter().any(|w| s.mentions(w).is_some());
    let db_note = if db.is_some() {
        " and is not the database"
    } else {
        ""
    };
    for (ports, verb) in [(0, "publishes"), (1, "exposes")] {
        for s in candidates().filter(app) {
            let list = if ports == 0 { &s.published } else { &s.exposed };
            if let Some(port) = http_port(list) {
                return TargetGuess {
                    service: Some(s.name.clone()),
                    port,
                    why: format!("{verb} {port}{db_note}"),
                };
            }
        }
    }
    TargetGuess {
        service: None,
        port: 80,
        why: "no service other than the database publishes or exposes a port".into(),
    }
}

/// How a matrix axis `workers` reaches the app's worker count.
#[derive(Debug, PartialEq)]
enum Workers {
    /// An environment key (e.g. WEB_CONCURRENCY) the override points at `${workers}`.
    Env {
        service: String,
        key: String,
        default: String,
    },
    /// A `--workers N` / `-w N` in the command: a suggested command, commented.
    Command {
        service: String,
        flag: String,
        suggestion: String,
    },
    /// A variable of another worker name (e.g. `${GUNICORN_WORKERS}`) the service reads.
    Variable { service: String, var: String },
    /// The service already reads `${workers}`.
    Already { service: String },
    /// Nothing found.
    None,
}

/// The worker-count setting, looked for in the target, the services it depends on, then
/// the others (never the database): a `--workers`/`-w` in the command, an environment key
/// named like a worker count, or a variable named so.
fn guess_workers(project: &Project, target: Option<&str>, db: Option<&str>) -> Workers {
    let mut names: Vec<String> = Vec::new();
    if let Some(t) = target.and_then(|t| project.service(t)) {
        names.push(t.name.clone());
        names.extend(depends_on(&t.raw));
    }
    names.extend(project.services.iter().map(|s| s.name.clone()));
    let mut order: Vec<&Svc> = Vec::new();
    for s in names.iter().filter_map(|n| project.service(n)) {
        if Some(s.name.as_str()) != db && !order.iter().any(|o| o.name == s.name) {
            order.push(s);
        }
    }
    order
        .into_iter()
        .map(|s| workers_in(s, &project.dotenv))
        .find(|w| *w != Workers::None)
        .unwrap_or(Workers::None)
}

/// The names of the services `raw` depends on.
fn depends_on(raw: &Value) -> Vec<String> {
    match raw.get("depends_on") {
        Some(Value::Array(l)) => l
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        _ => vec![],
    }
}

/// The worker-count setting of one service.
fn workers_in(s: &Svc, dotenv: &BTreeMap<String, String>) -> Workers {
    let mut vars = BTreeMap::new();
    collect_vars(&s.raw, &mut vars);
    if vars.contains_key("workers") {
        return Workers::Already {
            service: s.name.clone(),
        };
    }
    if let Some(w) = command_workers(s, dotenv) {
        return w;
    }
    if let Some(key) = WORKER_VARS.iter().find(|k| s.env.contains_key(**k)) {
        let value = s.env[*key].clone().unwrap_or_default();
        let default = if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
            value
        } else {
            "1".into()
        };
        return Workers::Env {
            service: s.name.clone(),
            key: key.to_string(),
            default,
        };
    }
    match WORKER_VARS.iter().find(|v| vars.contains_key(**v)) {
        Some(var) => Workers::Variable {
            service: s.name.clone(),
            var: var.to_string(),
        },
        None => Workers::None,
    }
}

/// A `--workers N`, `--workers=N` or `-w N` in a service's command, with the command
/// rewritten to read `${workers:-N}` instead.
fn command_workers(s: &Svc, dotenv: &BTreeMap<String, String>) -> Option<Workers> {
    let (mut words, list): (Vec<Vec<String>>, bool) = match s.raw.get("command")? {
        Value::String(c) => (vec![split(c)], false),
        Value::Array(l) => (
            l.iter()
                .filter_map(scalar_text)
                .map(|w| split(&w))
                .collect(),
            true,
        ),
        _ => return None,
    };
    // (element, word) of every word, so that a flag and its value may sit in two elements
    let at: Vec<(usize, usize)> = words
        .iter()
        .enumerate()
        .flat_map(|(e, ws)| (0..ws.len()).map(move |w| (e, w)))
        .collect();
    let (i, flag, inline) = at.iter().enumerate().find_map(|(i, &(e, w))| {
        let word = &words[e][w];
        match word.as_str() {
            "--workers" | "-w" => Some((i + 1, word.clone(), false)),
            _ if word.starts_with("--workers=") => Some((i, "--workers".to_string(), true)),
            _ => None,
        }
    })?;
    let &(e, w) = at.get(i)?;
    let value = words[e][w].trim_start_matches("--workers=").to_string();
    let n = resolve(&value, dotenv);
    let n = if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) {
        n
    } else {
        "1".into()
    };
    let new = format!("${{workers:-{n}}}");
    words[e][w] = if inline {
        format!("--workers={new}")
    } else {
        new
    };
    let joined: Vec<String> = words.iter().map(|ws| ws.join(" ")).collect();
    let suggestion = if list {
        serde_json::to_string(&joined).unwrap_or_default()
    } else {
        yaml_str(&joined[0])
    };
    Some(Workers::Command {
        service: s.name.clone(),
        flag,
        suggestion,
    })
}

fn split(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// `s` as a YAML scalar: plain when that reads back as the same string, else quoted.
fn yaml_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || "_./".contains(c))
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && s.parse::<f64>().is_err()
        && !["true", "false", "null", "yes", "no", "on", "off", "y", "n"]
            .contains(&s.to_lowercase().as_str());
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// The file's text: header, variables, the workers override, then `x-racy`.
fn render(project: &Project, g: &Guesses) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# racy.yaml: how racy-matrix measures {} (that file is not edited).",
        g.compose
    );
    out.push_str(
        "# Written by `racy-matrix init`: each guess says why (`guessed:`); fill in every TODO,\n\
         # then `racy-matrix check` tries the stack once.\n",
    );
    let _ = writeln!(
        out,
        "compose: {}   # relative to this file (a list of files is merged in order)\n",
        yaml_str(&g.compose)
    );
    out.push_str(&render_variables(project, &g.workers));
    out.push_str(&render_workers(&g.workers));
    out.push_str("\nx-racy:\n");
    out.push_str(&render_target(&g.target));
    out.push_str(&render_database(g.database.as_ref()));
    if let Workers::Env { default, .. } = &g.workers {
        let _ = writeln!(
            out,
            "  handlers: \"${{workers:-{default}}}\"   # requests served at once (sync workers x containers): a burst larger than this queues"
        );
    }
    out.push_str(
        "  request: {amount: \"${amount}\", delay_ms: \"${delay_ms:-0}\"}   # form fields of each POST (add what your endpoints read)\n",
    );
    let engine = g.database.as_ref().map_or(Engine::Postgres, |d| d.engine);
    out.push_str(&render_sql(engine));
    out
}

/// The comment block listing the variables: the candidate matrix axes.
fn render_variables(project: &Project, workers: &Workers) -> String {
    let mut out = String::new();
    if project.variables.is_empty() {
        out.push_str("# The compose file reads no ${VARIABLES}: a matrix axis reaches a service only through an override below.\n");
    } else {
        out.push_str("# Variables the compose file reads (candidate matrix axes; a matrix sets them per cell):\n");
    }
    for (name, default) in &project.variables {
        let _ = writeln!(
            out,
            "#   {}",
            describe_variable(project, name, default.as_deref())
        );
    }
    if matches!(workers, Workers::Env { .. }) && !project.variables.contains_key("workers") {
        out.push_str("#   workers (added by the override below)\n");
    }
    out
}

/// `NAME (default D)`, with a default hidden when the name looks secret.
fn describe_variable(project: &Project, name: &str, default: Option<&str>) -> String {
    let upper = name.to_uppercase();
    let secret = ["PASSWORD", "SECRET", "TOKEN", "KEY", "PASS"]
        .iter()
        .any(|w| upper.contains(w));
    let set = project.dotenv.contains_key(name);
    match (default, secret, set) {
        (Some(_), true, _) => format!("{name} (default not shown)"),
        (Some(""), false, _) => format!("{name} (default empty)"),
        (Some(d), false, _) => format!("{name} (default {d})"),
        (None, _, true) => format!("{name} (set in .env)"),
        (None, _, false) => format!("{name} (no default)"),
    }
}

/// The `services:` override that makes a matrix axis `workers` reach the app, or a
/// commented suggestion, or a note.
fn render_workers(workers: &Workers) -> String {
    match workers {
        Workers::Env { service, key, default } => format!(
            "\nservices:   # merged over the compose file's, as `docker compose -f theirs -f racy.yaml` would\n  \
             {}:\n    environment:\n      \
             # guessed: {key} sets the worker count of service {service}; a matrix axis `workers` now sets it (default {default}, as before)\n      \
             {key}: \"${{workers:-{default}}}\"\n",
            yaml_str(service)
        ),
        Workers::Command { service, flag, suggestion } => format!(
            "\n# guessed: service {service}'s command sets the worker count ({flag}). To let a matrix axis\n\
             # `workers` set it, override the command (a suggestion: check it against the compose file):\n\
             # services:\n#   {}:\n#     command: {suggestion}\n",
            yaml_str(service)
        ),
        Workers::Variable { service, var } => format!(
            "\n# guessed: service {service} reads ${{{var}}}, a worker count: a matrix axis named {var} sets it.\n"
        ),
        Workers::Already { service } => format!(
            "\n# guessed: service {service} already reads ${{workers}}: a matrix axis `workers` sets it.\n"
        ),
        Workers::None => "\n# No worker-count setting found (WEB_CONCURRENCY, GUNICORN_WORKERS, WORKERS, UVICORN_WORKERS,\n\
             # PUMA_WORKERS, or --workers/-w in a command). TODO: if the app runs several processes, let a\n\
             # matrix axis `workers` set their number with an override, e.g.\n\
             # services:\n#   app:\n#     environment:\n#       WEB_CONCURRENCY: \"${workers:-1}\"\n"
            .to_string(),
    }
}

fn render_target(t: &TargetGuess) -> String {
    let mut out = String::from(
        "  # add health: /path that answers 200 once the app is ready (without it: any answer but 502/503/504 on /)\n",
    );
    match &t.service {
        Some(s) => {
            let _ = writeln!(
                out,
                "  target: {{service: {}, port: {}}}   # guessed: {}",
                yaml_str(s),
                t.port,
                t.why
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  target: {{service: TODO, port: 80}}   # TODO: the service and container port that receives the requests ({})",
                t.why
            );
        }
    }
    out
}

fn render_database(db: Option<&DbGuess>) -> String {
    let Some(db) = db else {
        return "  # TODO: no database found (an image or build naming postgres/mysql/mariadb, or POSTGRES_*/MYSQL_*/MARIADB_*\n  \
                # in a service's environment): name its service, port and engine (postgres | mysql), and user, password, name\n  \
                database: {service: TODO, port: 5432, engine: postgres}\n"
            .to_string();
    };
    let mut out = String::new();
    let found: Vec<(&str, &str)> = db
        .credentials
        .iter()
        .filter_map(|(field, key)| key.ok().map(|k| (*field, k)))
        .collect();
    if !found.is_empty() {
        let fields: Vec<&str> = found.iter().map(|(f, _)| *f).collect();
        let keys: Vec<&str> = found.iter().map(|(_, k)| *k).collect();
        let _ = writeln!(
            out,
            "  # {}: read from service {}'s {}",
            fields.join(", "),
            db.service,
            keys.join(", ")
        );
    }
    let missing: Vec<String> = db
        .credentials
        .iter()
        .filter_map(|(field, key)| {
            key.err()
                .map(|keys| format!("{} ({field})", keys.join(" or ")))
        })
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "  # TODO: service {}'s environment does not set {}:\n  \
             #   set them there (an env_file keeps the password out of the compose file), or write\n  \
             #   user: and name: here (a password does not belong in this file)",
            db.service,
            missing.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "  database: {{service: {}, port: {}, engine: {}}}   # guessed: {}",
        yaml_str(&db.service),
        db.port,
        db.engine.name(),
        db.why
    );
    out
}

/// Endpoints, reset and observe: placeholders marked TODO, with examples in the
/// engine's dialect.
fn render_sql(engine: Engine) -> String {
    let int = engine.integer();
    let dialect = match engine {
        Engine::Postgres => "PostgreSQL",
        Engine::Mysql => "MySQL/MariaDB",
    };
    format!(
        "  # TODO: the endpoints to measure, name -> path (method: POST by default; check: counter, the default,\n  \
         # | unique | task | one of your invariants below). A counter endpoint adds `amount` to one row, e.g.\n  \
         #   add: {{path: /counters/1/add, method: POST}}\n  \
         # a unique one creates a row whose name should stay unique, e.g.\n  \
         #   create_thing: {{path: /things/, method: POST, check: unique}}\n  \
         # and a check-then-act one (a debit checked against the balance) is judged by an invariant, e.g.\n  \
         #   debit: {{path: /wallets/1/debit, method: POST, check: no_overdraft}}\n  \
         endpoints:\n    \
         TODO: {{path: /TODO/, method: POST}}   # TODO: replace with your endpoints\n  \
         # TODO: SQL run before every repetition: empty what the endpoints write, create the counter row, e.g.\n  \
         #   - DELETE FROM hits\n  \
         #   - DELETE FROM counters\n  \
         #   - INSERT INTO counters (id, value) VALUES (1, 0)\n  \
         reset:\n    \
         - SELECT 1 -- TODO\n  \
         # TODO: SQL read after every repetition ({dialect}: integers as CAST(... AS {int})). For counter endpoints:\n  \
         #   balance: SELECT CAST(value AS {int}) FROM counters WHERE id = 1   (one integer: the counter)\n  \
         #   ledger: SELECT CAST(COUNT(*) AS {int}), CAST(COALESCE(SUM(amount), 0) AS {int}) FROM hits WHERE counter_id = 1   (rows, sum added)\n  \
         # For check: unique endpoints:\n  \
         #   unique: SELECT CAST(COUNT(*) AS {int}) AS total, CAST(COUNT(DISTINCT name) AS {int}) AS distinct_values FROM things\n  \
         observe:\n    \
         balance: SELECT 0 -- TODO\n    \
         ledger: SELECT 0, 0 -- TODO\n  \
         # Requests of one burst may differ: a request field \"${{request % 2 + 1}}\" sends 1, 2, 1, 2, …\n  \
         # What must stay true, as your SQL says it (one row, one integer: how many things are broken after a\n  \
         # burst, 0 after the reset), for races that lose no update: overdrafts, limits overrun, write skew, e.g.\n  \
         # invariants:\n  \
         #   no_overdraft:   # debits that left the wallet below zero, out of the debits accepted (2xx)\n  \
         #     violations: SELECT CAST(COUNT(*) AS {int}) FROM debits WHERE balance_after < 0\n  \
         #   one_on_call:    # a burst that left nobody on call, one trial per burst\n  \
         #     violations: SELECT CAST(CASE WHEN COUNT(*) = 0 THEN 1 ELSE 0 END AS {int}) FROM doctors WHERE on_call\n  \
         #     out_of: SELECT 1\n"
    )
}

/// One line per guess, for the terminal.
fn summary(project: &Project, g: &Guesses) -> Vec<String> {
    let mut out = Vec::new();
    out.push(match &g.target.service {
        Some(s) => format!(
            "target: {s}, port {} (guessed: {})",
            g.target.port, g.target.why
        ),
        None => format!("target: TODO ({})", g.target.why),
    });
    out.push(match &g.database {
        Some(d) => format!(
            "database: {}, {}, port {} (guessed: {})",
            d.service,
            d.engine.name(),
            d.port,
            d.why
        ),
        None => "database: TODO (none found)".into(),
    });
    out.push(match &g.workers {
        Workers::Env { service, key, .. } => {
            format!("workers: the axis `workers` sets {key} of service {service} (override in racy.yaml)")
        }
        Workers::Command { service, flag, .. } => format!(
            "workers: service {service}'s command sets {flag}; racy.yaml suggests a command reading ${{workers}}"
        ),
        Workers::Variable { service, var } => {
            format!("workers: service {service} reads ${{{var}}} (an axis named {var} sets it)")
        }
        Workers::Already { service } => {
            format!("workers: service {service} already reads ${{workers}}")
        }
        Workers::None => "workers: no worker-count setting found".into(),
    });
    let names: Vec<&str> = project.variables.keys().map(String::as_str).collect();
    out.push(if names.is_empty() {
        "variables: none".into()
    } else {
        format!("variables: {}", names.join(", "))
    });
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A temporary directory of fixture files, removed when dropped (`init`'s command
    /// tests use it too).
    pub(crate) struct Fixture(pub(crate) PathBuf);

    impl Fixture {
        pub(crate) fn new(tag: &str) -> Fixture {
            let dir = std::env::temp_dir().join(format!("racy-init-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Fixture(dir)
        }

        pub(crate) fn write(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.0.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The draft's text as YAML, which it must be.
    fn yaml(d: &Draft) -> Value {
        parse_yaml(&d.text, Path::new("racy.yaml"))
            .unwrap_or_else(|e| panic!("{e}\n---\n{}", d.text))
    }

    const FLASK: &str = "\
services:
  db:
    build: ./db
    env_file: .env
    volumes: [pgdata:/var/lib/postgresql/data]
  web:
    build: .
    command: gunicorn app:app --bind 0.0.0.0:8000
    ports: [\"8000:8000\"]
    environment:
      WEB_CONCURRENCY: ${WEB_CONCURRENCY:-1}
      DATABASE_URL: postgresql://flask@db/flask
    depends_on: [db]
volumes:
  pgdata:
";

    const SECRET: &str = "s3cret-Pa55w0rd";

    #[test]
    fn flask_compose_gives_web_postgres_and_a_workers_override() {
        let fx = Fixture::new("flask");
        let compose = fx.write("flaskapp/docker-compose.yml", FLASK);
        fx.write(
            "flaskapp/.env",
            &format!("POSTGRES_USER=flask\nPOSTGRES_PASSWORD={SECRET}\nPOSTGRES_DB=flask\n"),
        );
        let out_dir = fx.0.join("stacks/flaskapp");
        let d = draft(&compose, &out_dir).unwrap();
        let doc = yaml(&d);
        let x = &doc["x-racy"];
        assert_eq!(x["target"]["service"], "web", "{}", d.text);
        assert_eq!(x["target"]["port"], 8000);
        assert_eq!(x["database"]["service"], "db");
        assert_eq!(x["database"]["engine"], "postgres");
        assert_eq!(x["database"]["port"], 5432);
        assert!(x["database"].get("password").is_none());
        assert_eq!(
            doc["services"]["web"]["environment"]["WEB_CONCURRENCY"],
            "${workers:-1}"
        );
        assert!(d.text.contains(
            "# user, password, name: read from service db's POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB"
        ));
        assert!(!d.text.contains(SECRET), "{}", d.text);
        assert!(!d.summary.join("\n").contains(SECRET));
        // compose: is relative to the racy.yaml's directory and names the fixture
        let rel = doc["compose"].as_str().unwrap();
        assert_eq!(rel, "../../flaskapp/docker-compose.yml");
        std::fs::create_dir_all(&out_dir).unwrap();
        assert_eq!(
            out_dir.join(rel).canonicalize().unwrap(),
            compose.canonicalize().unwrap()
        );
        // placeholders the loader takes, marked TODO
        assert_eq!(x["endpoints"]["TODO"]["path"], "/TODO/");
        assert!(x["observe"]["ledger"].as_str().unwrap().contains("TODO"));
        assert!(d.text.contains("CAST(value AS BIGINT)"));
        assert!(
            d.text.contains("#   WEB_CONCURRENCY (default 1)"),
            "{}",
            d.text
        );
        // the commented invariants, uncommented, and an endpoint checking one: a stack
        // the loader takes, with both invariants
        let mut text = String::new();
        let mut inside = false;
        for line in d.text.lines() {
            inside = inside || line == "  # invariants:";
            inside = inside && line.starts_with("  # ");
            match line.strip_prefix("  # ").filter(|_| inside) {
                Some(rest) => text.push_str(&format!("  {}\n", rest.split("   #").next().unwrap())),
                None => text.push_str(&format!("{line}\n")),
            }
        }
        let text = text.replace(
            "TODO: {path: /TODO/, method: POST}",
            "debit: {path: /debit, check: no_overdraft}",
        );
        std::fs::write(out_dir.join("racy.yaml"), text).unwrap();
        let stack = crate::input::stack::Stack::load(&out_dir).unwrap();
        assert_eq!(
            stack.driver.invariants.keys().collect::<Vec<_>>(),
            ["no_overdraft", "one_on_call"]
        );
        assert_eq!(
            stack.driver.invariants["one_on_call"].out_of.as_deref(),
            Some("SELECT 1")
        );
    }

    #[test]
    fn the_django_stack_gives_nginx_and_postgres() {
        let file =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/django-postgres/compose.yaml");
        let fx = Fixture::new("django");
        let d = draft(&file, &fx.0.join("stacks/mine")).unwrap();
        let doc = yaml(&d);
        let x = &doc["x-racy"];
        assert_eq!(x["target"]["service"], "web", "{}", d.text);
        assert_eq!(x["target"]["port"], 80);
        assert!(
            d.text.contains("a reverse proxy (build context nginx)"),
            "{}",
            d.text
        );
        assert_eq!(x["database"]["service"], "db");
        assert_eq!(x["database"]["engine"], "postgres");
        assert_eq!(x["database"]["port"], 5432);
        assert!(d.text.contains("#   workers (default 3)"), "{}", d.text);
        assert!(d.text.contains("#   isolation (default read_committed)"));
        assert!(d.text.contains("#   db_password (default not shown)"));
        // the app already reads ${workers}: nothing to override
        assert!(doc.get("services").is_none());
        assert!(
            d.summary
                .iter()
                .any(|l| l == "workers: service app already reads ${workers}")
        );
        // its database image sets no POSTGRES_*: the credentials are TODO
        assert!(
            d.text.contains(
                "does not set POSTGRES_USER (user), POSTGRES_PASSWORD (password), POSTGRES_DB (name):"
            ),
            "{}",
            d.text
        );
    }

    #[test]
    fn a_mariadb_image_is_mysql_on_3306() {
        let fx = Fixture::new("shop");
        let compose = fx.write(
            "shop/compose.yaml",
            "\
services:
  app:
    image: php:8-apache
    ports:
      - \"127.0.0.1:8080:80/tcp\"
    environment: [DB_HOST=mariadb, \"WORKERS=${APP_WORKERS:-4}\"]
  mariadb:
    image: mariadb:11
    expose: [\"3306\"]
    environment:
      MARIADB_USER: shop
      MARIADB_PASSWORD: hunter2-secret
      MARIADB_DATABASE: shop
      MARIADB_ROOT_PASSWORD: root-secret
",
        );
        let d = draft(&compose, &fx.0.join("stacks/shop")).unwrap();
        let doc = yaml(&d);
        let x = &doc["x-racy"];
        assert_eq!(x["database"]["engine"], "mysql", "{}", d.text);
        assert_eq!(x["database"]["service"], "mariadb");
        assert_eq!(x["database"]["port"], 3306);
        assert!(d.text.contains("guessed: its image is mariadb:11"));
        assert!(
            d.text
                .contains("MARIADB_USER, MARIADB_PASSWORD, MARIADB_DATABASE")
        );
        assert_eq!(x["target"]["service"], "app");
        assert_eq!(x["target"]["port"], 80);
        assert_eq!(
            doc["services"]["app"]["environment"]["WORKERS"],
            "${workers:-4}"
        );
        assert!(d.text.contains("CAST(value AS SIGNED)"));
        assert!(!d.text.contains("BIGINT"));
        for secret in ["hunter2-secret", "root-secret"] {
            assert!(!d.text.contains(secret));
        }
    }

    #[test]
    fn env_files_builds_and_commands() {
        let fx = Fixture::new("forms");
        fx.write(
            "p/database/Containerfile",
            "# base\nFROM --platform=linux/amd64 postgis/postgis:16 AS base\n",
        );
        let text = "\
services:
  store:
    build: {context: ./database, dockerfile: Containerfile}
    env_file:
      - path: ./absent.env
        required: false
  api:
    image: example/api
    command: [\"gunicorn\", \"-w\", \"${GUNICORN_WORKERS:-2}\", \"api:app\"]
    expose: [8000]
";
        let compose = fx.write("p/compose.yaml", text);
        let d = draft(&compose, &fx.0.join("stacks/p")).unwrap();
        let doc = yaml(&d);
        let x = &doc["x-racy"];
        assert_eq!(x["database"]["service"], "store", "{}", d.text);
        assert!(d.text.contains("its Dockerfile FROM is postgis/postgis:16"));
        assert_eq!(x["target"]["service"], "api");
        assert_eq!(x["target"]["port"], 8000);
        assert!(
            d.text
                .contains("TODO: service store's environment does not set POSTGRES_USER (user)")
        );
        assert!(
            d.text
                .contains(r#"#     command: ["gunicorn","-w","${workers:-2}","api:app"]"#),
            "{}",
            d.text
        );
        assert!(doc.get("services").is_none());
        // a required env file that is missing is an error that names it
        let compose = fx.write(
            "p/compose.yaml",
            &text.replace("required: false", "required: true"),
        );
        let e = draft(&compose, &fx.0.join("stacks/p")).unwrap_err();
        assert!(e.message.contains("absent.env"), "{e}");
        assert_eq!((e.line, e.column), (5, 15), "{e}");
    }

    #[test]
    fn resolving_and_ports() {
        let env: BTreeMap<String, String> = [("PORT".to_string(), "9000".to_string())].into();
        assert_eq!(
            resolve("${PORT:-80}:${IN:-8000}/tcp $$x $PORT", &env),
            "9000:8000/tcp $x 9000"
        );
        let port = |v: Value| container_port(&v, &env);
        assert_eq!(port(Value::from("8000")), Some(8000));
        assert_eq!(port(Value::from("127.0.0.1:8001:8000")), Some(8000));
        assert_eq!(port(Value::from("127.0.0.1::80")), Some(80));
        assert_eq!(port(Value::from("8000-8001:8000-8001/udp")), Some(8000));
        assert_eq!(port(Value::from("${PORT}:${PORT}")), Some(9000));
        assert_eq!(
            port(serde_json::json!({"target": 5000, "published": "80"})),
            Some(5000)
        );
        assert_eq!(yaml_str("../a/b.yml"), "../a/b.yml");
        assert_eq!(yaml_str("a b"), "\"a b\"");
        assert_eq!(yaml_str("on"), "\"on\"");
    }
}
