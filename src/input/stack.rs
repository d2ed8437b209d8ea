//! Stack files (`stacks/<name>/compose.yaml`): the services (whose compose subset and
//! meaning live in `compose`), `${var}` interpolation, the `x-racy` block, and which
//! services a change of variables forces to be recreated. `checks` refuses the values
//! that would only fail once something runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::input::check::{BUILT_IN, Check, is_invariant_name};
use crate::input::expr;
use crate::input::matrix::Catalog;
use crate::input::source::{InputError, Source, parse_yaml};

mod checks;
mod compose;
mod envfile;
mod interpolate;
mod keys;
mod layers;

pub use layers::{Files, Layer};

pub use envfile::read_env_file;
pub use interpolate::{interpolate, references};

pub use compose::{
    Build, Condition, ContainerSpec, DependsOn, DependsOnLong, Health, KeyValues, MountEntry,
    MountSource, Placement, Scalar, Service, VolumeEntry,
};

/// The service and port that receive bursts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Service name.
    pub service: String,
    /// Container port.
    pub port: u16,
    /// Path answering 200 once the app is ready; without one, the target is ready when
    /// `GET /` answers anything but 502, 503 or 504.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Path answering `{"inflight": N}`; after a burst the tool waits for 0.
    #[serde(default)]
    pub quiesce: Option<String>,
}

/// Database engines racy-matrix can probe.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    /// MySQL or MariaDB.
    Mysql,
    /// PostgreSQL.
    Postgres,
    /// SQLite: `name` is the database file inside the service's container, reached with
    /// the `sqlite3` command-line shell run there.
    Sqlite,
}

/// The database the probe resets and observes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// Service name.
    pub service: String,
    /// Container port (not for SQLite).
    #[serde(default)]
    pub port: u16,
    /// DatabaseKind.
    pub engine: DatabaseKind,
    /// User name (interpolated; not for SQLite). Left out, it is read from the database
    /// service's environment (see [`Stack::driver_for`]).
    #[serde(default)]
    pub user: String,
    /// Password (interpolated; not for SQLite); left out, read like `user`.
    #[serde(default)]
    pub password: String,
    /// Database name (interpolated); for SQLite the file's path in the container. Left
    /// out, read like `user`.
    #[serde(default)]
    pub name: String,
}

/// One endpoint of the app.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Request path.
    pub path: String,
    /// HTTP method, POST by default.
    #[serde(default = "default_method")]
    pub method: String,
    /// What its race breaks (counter by default).
    #[serde(default)]
    pub check: Check,
    /// Compose profiles it needs: a run with a cell of this endpoint starts the services
    /// of these profiles (a service with `profiles:` starts only when one is needed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// What it does with the request's read→write window (`delay_ms`), for time
    /// estimates only: `parallel` (the default: a burst's windows overlap, as many at
    /// once as the stack has handlers), `serial` (one after another: a lock held across
    /// the window) or `ignored` (it has none). Runs given to `--timings` correct it.
    #[serde(default, skip_serializing_if = "is_parallel")]
    pub window: crate::input::setup::Shape,
}

fn is_parallel(w: &crate::input::setup::Shape) -> bool {
    *w == crate::input::setup::Shape::Parallel
}

fn default_method() -> String {
    "POST".into()
}

/// SQL that reads the state a cell is judged on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Observe {
    /// One row, one integer column: the counter. Needed by the endpoints that check
    /// `counter` (the default check); empty when the stack has none.
    #[serde(default)]
    pub balance: String,
    /// One row, two integer columns: ledger row count and ledger sum; needed with
    /// `balance`.
    #[serde(default)]
    pub ledger: String,
    /// Per check other than counter: one row with that check's named integer columns.
    #[serde(flatten)]
    pub checks: BTreeMap<Check, String>,
}

/// What must stay true of the app's data, as the stack's own SQL says it: run after
/// every burst in the observation's snapshot (docs/metrics.md#invariants).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Invariant {
    /// One row of one integer, 0 or more: how many things are broken.
    pub violations: String,
    /// One row of one integer: what the violations are out of; left out, the burst's
    /// acknowledged (2xx) requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of: Option<String>,
}

/// A variable a running service follows without being recreated: `apply` run inside each
/// of its containers with the new value as last argument makes the change (Gunicorn grows
/// and shrinks its pool on TTIN and TTOU), and `count` printing that value says it took
/// effect, so the change is awaited rather than assumed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Live {
    /// The service whose containers change.
    pub service: String,
    /// Command making the change; the new value is appended.
    pub apply: Vec<String>,
    /// Command printing the value in force.
    pub count: Vec<String>,
}

/// One live change to apply: `var` of `service` goes from `from` to `to`.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveChange {
    /// The variable.
    pub var: String,
    /// How to apply it.
    pub live: Live,
    /// Value in force.
    pub from: u32,
    /// Value wanted.
    pub to: u32,
}

/// The `x-racy` block: how the generic driver talks to this stack.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Driver {
    /// Burst target.
    pub target: Target,
    /// Database to reset and observe.
    pub database: Database,
    /// Form fields of every burst request (interpolated per cell; empty values are left out).
    #[serde(default)]
    pub request: BTreeMap<String, Scalar>,
    /// Endpoint name → path and method.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Statements run before every repetition.
    pub reset: Vec<String>,
    /// Observation queries.
    pub observe: Observe,
    /// The stack's own invariants, by name: SQL that counts what is broken after a burst.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub invariants: BTreeMap<String, Invariant>,
    /// Variables applied to running containers instead of recreating them.
    #[serde(default)]
    pub live: BTreeMap<String, Live>,
    /// How many requests the stack serves at once (interpolated): a whole number or a
    /// product such as `"${workers:-3}*${threads:-1}*${replicas:-1}"`. A burst with more
    /// requests than this queues some of them, so its start skew is left blank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handlers: Option<Scalar>,
}

impl Driver {
    /// Whether a field holds a per-request value, so that the requests of a burst differ.
    pub fn varies(&self) -> bool {
        self.plain_fields().iter().any(|(_, v)| expr::varies(v))
    }

    /// The form fields of request `request` of burst `burst` (call on an interpolated
    /// block): `request` without the fields whose value is empty, each per-request value
    /// evaluated.
    pub fn fields_of(&self, request: u32, burst: u32) -> Result<Vec<(String, String)>> {
        self.plain_fields()
            .into_iter()
            .map(|(k, v)| {
                let value = expr::render(&v, request, burst)
                    .map_err(|e| anyhow!("x-racy.request.{k}: {e}"))?;
                Ok((k, value))
            })
            .collect()
    }

    /// The fields as substituted for the cell, per-request values unevaluated.
    fn plain_fields(&self) -> Vec<(String, String)> {
        self.request
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// `handlers` as a number (call on an interpolated block); `None` when the stack does
    /// not say.
    pub fn handler_count(&self) -> Result<Option<u64>> {
        let Some(text) = &self.handlers else {
            return Ok(None);
        };
        let text = text.to_string();
        let product = text.split('*').try_fold(1u64, |acc, factor| {
            let f = factor.trim().parse::<u64>().ok().filter(|&f| f > 0)?;
            acc.checked_mul(f)
        });
        match product {
            Some(n) => Ok(Some(n)),
            None => bail!(
                "x-racy.handlers must be a whole number above 0 or a product of them such as 4*1*2, got '{text}'"
            ),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ComposeFile {
    #[serde(default)]
    services: BTreeMap<String, Service>,
    #[serde(rename = "x-racy")]
    x_racy: Option<Driver>,
    #[serde(default)]
    volumes: Option<BTreeMap<String, Option<serde_json::Value>>>,
}

/// A loaded stack: its directory, services as written, the `x-racy` block, and the
/// variables each service references.
#[derive(Clone, Debug)]
pub struct Stack {
    /// Stack name (its directory name).
    pub name: String,
    /// The file holding the `x-racy` block (compose.yaml or racy.yaml).
    pub file: PathBuf,
    /// The directory relative paths are resolved against (the first compose file's).
    pub project_dir: PathBuf,
    /// The project's `.env` (beside its compose file): values for its variables, under
    /// those of the matrix.
    pub dotenv: BTreeMap<String, String>,
    /// Keys of the files that racy-matrix ignores, one note each (say them once).
    pub notes: Vec<String>,
    /// Services as written.
    pub services: BTreeMap<String, Service>,
    /// The `x-racy` block as written (interpolate before use: [`Stack::driver_for`]).
    pub driver: Driver,
    /// Variables referenced per service (including those of the services it restarts with).
    pub service_vars: BTreeMap<String, BTreeSet<String>>,
    /// Every variable the file references, with its `:-` default when it has one.
    pub variables: BTreeMap<String, Option<String>>,
    /// Named volumes (top-level `volumes`): one per stack instance, shared by its services.
    pub volumes: Vec<String>,
    /// Service settings whose value takes a variable, checked per cell (`check_variables`).
    settings: Vec<checks::Setting>,
}

impl Stack {
    /// Reads and checks the stack in `dir`: its `racy.yaml` (with the compose files it
    /// names) or its `compose.yaml`.
    pub fn load(dir: &Path) -> Result<Stack> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("bad stack directory {}", dir.display()))?
            .to_string();
        let layers = layers::read(dir).map_err(|e| anyhow!("{e}"))?;
        Self::from_layers(&name, &layers).map_err(|e| anyhow!("{e}"))
    }

    /// Parses one compose file's text holding its `x-racy` block; errors carry the file,
    /// line and column.
    pub fn parse(name: &str, file: &Path, text: &str) -> Result<Stack, InputError> {
        let layer = Layer {
            file: file.to_path_buf(),
            text: text.to_string(),
            racy: false,
        };
        Self::from_layers(name, &[layer])
    }

    /// Reads the files of a stack (compose files, then a racy.yaml), merged as compose
    /// merges them; errors point into the file that holds the value.
    pub fn from_layers(name: &str, layers: &[Layer]) -> Result<Stack, InputError> {
        let files = Files(layers);
        let mut notes = Vec::new();
        let mut raws = Vec::new();
        let mut raws_with_block = Vec::new();
        for layer in layers {
            let src = layer.source();
            notes.extend(keys::check(src, layer.racy)?);
            // each file alone, for errors located in it
            let _: ComposeFile =
                parse_yaml(src.text, src.file).map_err(|e| readable(e, src.text))?;
            let mut raw: serde_json::Value = parse_yaml(src.text, src.file)?;
            escape_per_request(&mut raw).map_err(|(s, e)| {
                src.at_text(
                    &s,
                    format!(
                        "x-racy.request: {e}; a per-request value is an integer expression of request and burst: see docs/formats.md#per-request-values"
                    ),
                )
            })?;
            if let Some((s, e)) = bad_interpolation(&raw) {
                return Err(src.at_text(
                    &s,
                    format!("{e}: write ${{name}}, ${{name:-default}}, or $$ for a literal '$'"),
                ));
            }
            raws_with_block.push(raw.get("x-racy").is_some());
            raws.push(raw);
        }
        let raw = layers::merge_all(raws);
        let parsed: ComposeFile =
            serde_json::from_value(raw.clone()).map_err(|e| files.whole(e.to_string()))?;
        let Some(driver) = parsed.x_racy else {
            return Err(files.whole(
                "no x-racy block: racy-matrix needs one (in compose.yaml, or in a racy.yaml beside the compose file)",
            ));
        };
        let project_dir = files.project_dir().to_path_buf();
        let dotenv = read_dotenv(&project_dir)?;
        let mut services = parsed.services;
        for (svc, s) in services.iter_mut() {
            fold_env_files(files, svc, s, &project_dir)?;
            resolve_binds(files, svc, s, &project_dir)?;
        }
        let volumes: Vec<String> = parsed
            .volumes
            .as_ref()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        let mut variables = BTreeMap::new();
        collect_vars(&raw, &mut variables);
        for (name, default) in variables.iter_mut() {
            if default.is_none() {
                *default = dotenv.get(name).cloned();
            }
        }
        check_services(files, &services, &volumes)?;
        // the last file whose YAML has the block (a mention in a comment is not one)
        let driver_layer = layers
            .iter()
            .zip(&raws_with_block)
            .rev()
            .find(|(_, has)| **has)
            .map_or(&layers[layers.len() - 1], |(l, _)| l);
        check_driver(driver_layer.source(), &driver, &services)?;
        let order = start_order(&services).map_err(|e| files.whole(e.to_string()))?;
        let settings = checks::check_files(layers, &driver)?;
        let service_vars = service_vars(&raw, &services, &order);
        Ok(Stack {
            name: name.to_string(),
            file: driver_layer.file.clone(),
            project_dir,
            dotenv,
            notes,
            services,
            driver,
            service_vars,
            variables,
            volumes,
            settings,
        })
    }

    /// Refuses variables (a cell's axes) that give a service a setting the engine would
    /// refuse when it creates the container (`mem_limit: ${mem}` with `mem=lots`); the
    /// error points at the setting in the stack file and names the variables.
    pub fn check_variables(&self, vars: &BTreeMap<String, String>) -> Result<(), InputError> {
        self.settings
            .iter()
            .try_for_each(|s| s.check_with(&self.with_dotenv(vars)))
    }

    /// The directory relative paths are resolved against (build contexts, bind mounts).
    pub fn dir(&self) -> &Path {
        &self.project_dir
    }

    /// A cell's variables over the project's `.env`.
    fn with_dotenv(&self, vars: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut all = self.dotenv.clone();
        all.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }

    /// Service names in start order (dependencies first).
    pub fn start_order(&self) -> Vec<String> {
        start_order(&self.services).expect("checked at load")
    }

    /// The services a run of cells measuring `endpoints` starts, in start order: every
    /// service without `profiles`, those with a profile one of the endpoints needs, the
    /// target and the database whatever their profiles, and every service these depend
    /// on. A matrix of lost-update endpoints starts no Celery worker and no Redis.
    pub fn start_order_for<'a>(&self, endpoints: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let active: BTreeSet<&str> = endpoints
            .into_iter()
            .filter_map(|e| self.driver.endpoints.get(e))
            .flat_map(|e| e.profiles.iter().map(String::as_str))
            .collect();
        let mut wanted: BTreeSet<String> = self
            .services
            .iter()
            .filter(|(name, s)| {
                let profiles = s.profiles.as_deref().unwrap_or_default();
                profiles.is_empty()
                    || profiles.iter().any(|p| active.contains(p.as_str()))
                    || **name == self.driver.target.service
                    || **name == self.driver.database.service
            })
            .map(|(name, _)| name.clone())
            .collect();
        let mut todo: Vec<String> = wanted.iter().cloned().collect();
        while let Some(svc) = todo.pop() {
            for (dep, _) in self.depends_on(&svc) {
                if wanted.insert(dep.clone()) {
                    todo.push(dep);
                }
            }
        }
        self.start_order()
            .into_iter()
            .filter(|s| wanted.contains(s))
            .collect()
    }

    /// Variables whose change recreates at least one service.
    pub fn restart_variables(&self) -> BTreeSet<String> {
        self.service_vars.values().flatten().cloned().collect()
    }

    /// How many services a change of `var` recreates (none for a live variable).
    pub fn restart_cost(&self, var: &str) -> usize {
        if self.driver.live.contains_key(var) {
            return 0;
        }
        self.service_vars
            .values()
            .filter(|v| v.contains(var))
            .count()
    }

    /// The restart variables, most expensive first: those recreating more services, and
    /// among equals those recreating more services that others depend on (a database
    /// before the app), then by name. A run that varies them in this order, the dearest
    /// slowest, recreates as little as it can.
    pub fn restart_variables_by_cost(&self) -> Vec<String> {
        let depended_on = |v: &String| {
            self.service_vars
                .iter()
                .filter(|(svc, vars)| {
                    vars.contains(v)
                        && self
                            .services
                            .keys()
                            .any(|o| self.depends_on(o).iter().any(|(d, _)| d == *svc))
                })
                .count()
        };
        let mut vars: Vec<String> = self.restart_variables().into_iter().collect();
        vars.sort_by_key(|v| {
            (
                std::cmp::Reverse(self.restart_cost(v)),
                std::cmp::Reverse(depended_on(v)),
            )
        });
        vars
    }

    /// The services whose configuration differs between two variable sets, other than
    /// by live variables (those are applied in place: see `live_changes`).
    pub fn services_changed(
        &self,
        a: &BTreeMap<String, String>,
        b: &BTreeMap<String, String>,
    ) -> Vec<String> {
        self.start_order()
            .into_iter()
            .filter(|s| {
                self.service_vars[s]
                    .iter()
                    .any(|v| !self.driver.live.contains_key(v) && a.get(v) != b.get(v))
            })
            .collect()
    }

    /// The live variables that differ between two variable sets, for services that are
    /// not recreated anyway (a recreated container starts with the new value).
    pub fn live_changes(
        &self,
        a: &BTreeMap<String, String>,
        b: &BTreeMap<String, String>,
    ) -> Result<Vec<LiveChange>> {
        let recreated = self.services_changed(a, b);
        let value = |vars: &BTreeMap<String, String>, var: &str| -> Result<u32> {
            let raw = vars
                .get(var)
                .cloned()
                .or_else(|| self.variables.get(var).cloned().flatten())
                .unwrap_or_default();
            raw.trim()
                .parse()
                .map_err(|_| anyhow!("live variable '{var}' must be a whole number, got '{raw}'"))
        };
        let mut out = Vec::new();
        for (var, live) in &self.driver.live {
            if a.get(var) == b.get(var) || recreated.contains(&live.service) {
                continue;
            }
            let (from, to) = (value(a, var)?, value(b, var)?);
            if from != to {
                out.push(LiveChange {
                    var: var.clone(),
                    live: live.clone(),
                    from,
                    to,
                });
            }
        }
        Ok(out)
    }

    /// The services `svc` depends on, with their condition.
    pub fn depends_on(&self, svc: &str) -> Vec<(String, Condition)> {
        dependencies(&self.services[svc])
            .into_iter()
            .map(|(name, long)| {
                let cond = match long.condition.as_deref() {
                    Some("service_healthy") => Condition::Healthy,
                    Some("service_completed_successfully") => Condition::Completed,
                    _ => Condition::Started,
                };
                (name, cond)
            })
            .collect()
    }

    /// The `x-racy` block with variables substituted; its `handlers` is checked to be a
    /// number here, so that a cell fails before its bursts rather than after.
    pub fn driver_for(&self, vars: &BTreeMap<String, String>) -> Result<Driver> {
        let vars = self.with_dotenv(vars);
        let mut driver: Driver = interpolate_typed(&self.driver, &vars).context("x-racy")?;
        driver.handler_count()?;
        if driver.database.engine != DatabaseKind::Sqlite {
            let db = self.service(&driver.database.service, &vars)?;
            let env = db.environment.map(|e| e.pairs()).unwrap_or_default();
            credentials_from_env(&mut driver.database, &env)?;
        }
        Ok(driver)
    }

    /// One service with variables substituted.
    pub fn service(&self, svc: &str, vars: &BTreeMap<String, String>) -> Result<Service> {
        interpolate_typed(&self.services[svc], &self.with_dotenv(vars))
            .with_context(|| format!("service '{svc}'"))
    }
}

/// Fills the database's user, password and name that `x-racy.database` leaves out from
/// the database service's environment, as the official images read it: PostgreSQL's
/// POSTGRES_USER (default postgres), POSTGRES_PASSWORD, POSTGRES_DB (default the user);
/// MariaDB's and MySQL's MARIADB_/MYSQL_ USER, PASSWORD and DATABASE, or root with
/// MARIADB_ROOT_PASSWORD / MYSQL_ROOT_PASSWORD.
fn credentials_from_env(db: &mut Database, env: &BTreeMap<String, String>) -> Result<()> {
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| env.get(*k).filter(|v| !v.is_empty()).cloned())
    };
    let (user, password, name) = match db.engine {
        DatabaseKind::Postgres => {
            let user = get(&["POSTGRES_USER"]).unwrap_or_else(|| "postgres".into());
            let name = get(&["POSTGRES_DB"]).unwrap_or_else(|| user.clone());
            (Some(user), get(&["POSTGRES_PASSWORD"]), Some(name))
        }
        DatabaseKind::Mysql => match get(&["MARIADB_USER", "MYSQL_USER"]) {
            Some(user) => (
                Some(user),
                get(&["MARIADB_PASSWORD", "MYSQL_PASSWORD"]),
                get(&["MARIADB_DATABASE", "MYSQL_DATABASE"]),
            ),
            None => (
                Some("root".into()),
                get(&["MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD"]),
                get(&["MARIADB_DATABASE", "MYSQL_DATABASE"]),
            ),
        },
        DatabaseKind::Sqlite => return Ok(()),
    };
    for (field, slot, found) in [
        ("user", &mut db.user, user),
        ("password", &mut db.password, password),
        ("name", &mut db.name, name),
    ] {
        if slot.is_empty() {
            *slot = found.ok_or_else(|| {
                anyhow!(
                    "x-racy.database.{field} is not given and service '{}' has no environment variable that says it: write it in x-racy.database",
                    db.service
                )
            })?;
        }
    }
    Ok(())
}

/// A type error of a compose file in words about the compose key it is at, instead of
/// the deserializer's (which names Rust types): the key written on the error's line and
/// what that key takes.
fn readable(mut e: InputError, text: &str) -> InputError {
    const FORMS: &[(&str, &str)] = &[
        (
            "VolumeEntry",
            "a volume is `SOURCE:/path` (`:ro` to mount it read-only) or {type: volume|bind, source, target, read_only}",
        ),
        (
            "EnvFiles",
            "env_file is a path, a list of paths, or a list of {path, required}",
        ),
        ("StrOrList", "this is a string or a list of strings"),
        (
            "DependsOn",
            "depends_on is a list of service names or a mapping of name: {condition: ...}",
        ),
        (
            "KeyValues",
            "this is a mapping of NAME: value or a list of NAME=value",
        ),
        (
            "Build",
            "build is a context directory or {context, dockerfile, args}",
        ),
        (
            "Networks",
            "networks is a list of names or a mapping of name: {aliases: [...]}",
        ),
        ("expected sequence", "this is a list"),
        ("expected mapping", "this is a mapping"),
        ("invalid boolean", "this is true or false"),
    ];
    let Some((_, says)) = FORMS.iter().find(|(k, _)| e.message.contains(k)) else {
        return e;
    };
    let key = text
        .lines()
        .nth(e.line.saturating_sub(1))
        .and_then(|l| l.trim_start().trim_start_matches("- ").split_once(':'))
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| !k.is_empty() && !k.contains(' '));
    e.message = match key {
        Some(k) => format!("`{k}`: {says}"),
        None => says.to_string(),
    };
    e
}

/// The project's `.env`, when it has one.
fn read_dotenv(project_dir: &Path) -> Result<BTreeMap<String, String>, InputError> {
    let file = project_dir.join(".env");
    if !file.is_file() {
        return Ok(BTreeMap::new());
    }
    Ok(read_env_file(&file)?.into_iter().collect())
}

/// Reads a service's `env_file`s (relative to the project) into its `environment`, under
/// the entries `environment` writes itself; their values are kept as written (a `$` in a
/// password is no variable).
fn fold_env_files(
    files: Files,
    svc: &str,
    s: &mut Service,
    project_dir: &Path,
) -> Result<(), InputError> {
    let Some(env_files) = s.env_file.take() else {
        return Ok(());
    };
    let mut env: BTreeMap<String, Option<Scalar>> = BTreeMap::new();
    for (path, required) in env_files.entries() {
        let file = project_dir.join(&path);
        if !file.is_file() {
            if required {
                return Err(files.at_text(
                    &path,
                    format!(
                        "service '{svc}': env_file {} does not exist (paths are relative to {})",
                        file.display(),
                        project_dir.display()
                    ),
                ));
            }
            continue;
        }
        for (k, v) in read_env_file(&file)? {
            env.insert(k, Some(Scalar::Str(v.replace('$', "$$"))));
        }
    }
    if let Some(own) = &s.environment {
        for (k, v) in own.pairs() {
            env.insert(k, Some(Scalar::Str(v)));
        }
    }
    s.environment = Some(KeyValues::Map(env));
    Ok(())
}

/// Makes the host path of each bind mount absolute (relative to the project, `~` the
/// home directory) and refuses one that does not exist: Docker would fail at create.
fn resolve_binds(
    files: Files,
    svc: &str,
    s: &mut Service,
    project_dir: &Path,
) -> Result<(), InputError> {
    let Some(volumes) = s.volumes.as_mut() else {
        return Ok(());
    };
    for entry in volumes.iter_mut() {
        let written = match entry {
            VolumeEntry::Short(m) => m.clone(),
            VolumeEntry::Long { source, .. } => source.clone().unwrap_or_default(),
        };
        let mount = entry
            .mount()
            .map_err(|e| files.at_text(&written, format!("service '{svc}': {e}")))?;
        let MountSource::Bind(path) = &mount.source else {
            continue;
        };
        let host = match path.strip_prefix("~/") {
            Some(rest) => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest),
            None => project_dir.join(path),
        };
        let host = host.canonicalize().map_err(|e| {
            files.at_text(
                &written,
                format!(
                    "service '{svc}' mounts {} ({e}): bind mounts are relative to {}",
                    project_dir.join(path).display(),
                    project_dir.display()
                ),
            )
        })?;
        *entry = VolumeEntry::Long {
            kind: "bind".into(),
            source: Some(host.to_string_lossy().into_owned()),
            target: mount.target.clone(),
            read_only: Some(mount.read_only),
        };
    }
    Ok(())
}

/// Every stack under `root` (directories holding a racy.yaml or a compose.yaml), by name.
pub fn discover(root: &Path) -> Result<BTreeMap<String, Stack>> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(root)
        .with_context(|| format!("cannot read the stacks directory {}", root.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.join("racy.yaml").is_file() || path.join("compose.yaml").is_file() {
            let stack = Stack::load(&path)?;
            out.insert(stack.name.clone(), stack);
        }
    }
    Ok(out)
}

/// Stacks known to a run, as the matrix module sees them.
pub struct StackCatalog {
    /// Stacks by name.
    pub stacks: BTreeMap<String, Stack>,
}

impl Catalog for StackCatalog {
    fn stacks(&self) -> Vec<String> {
        self.stacks.keys().cloned().collect()
    }
    fn endpoints(&self, stack: &str) -> Option<Vec<String>> {
        self.stacks
            .get(stack)
            .map(|s| s.driver.endpoints.keys().cloned().collect())
    }
    fn variables(&self, stack: &str) -> Vec<(String, Option<String>)> {
        self.stacks
            .get(stack)
            .map(|s| s.variables.clone().into_iter().collect())
            .unwrap_or_default()
    }
    fn restart_variables(&self, stack: &str) -> Vec<String> {
        self.stacks
            .get(stack)
            .map(|s| s.restart_variables_by_cost())
            .unwrap_or_default()
    }
    fn check_variables(
        &self,
        stack: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<(), InputError> {
        match self.stacks.get(stack) {
            Some(s) => s.check_variables(vars),
            None => Ok(()),
        }
    }
}

/// Refuses a service that cannot be made: a mount of an undeclared volume (or a bind
/// mount), neither `build` nor `image`, a dependency on an unknown service.
fn check_services(
    files: Files,
    services: &BTreeMap<String, Service>,
    volumes: &[String],
) -> Result<(), InputError> {
    let names: Vec<String> = services.keys().cloned().collect();
    for (svc, s) in services {
        let mounts = s
            .mounts()
            .map_err(|e| files.whole(format!("service '{svc}': {e}")))?;
        for m in mounts {
            let MountSource::Volume(source) = &m.source else {
                continue;
            };
            if !volumes.contains(source) {
                return Err(files
                    .at_text(
                        &format!("{source}:"),
                        format!(
                            "service '{svc}' mounts volume '{source}', which the top-level `volumes` does not declare"
                        ),
                    )
                    .with_choices(volumes.to_vec()));
            }
        }
        if s.build.is_none() && s.image.is_none() {
            return Err(files.at_text(
                &format!("{svc}:"),
                format!("service '{svc}' has neither build nor image"),
            ));
        }
        for (dep, _) in dependencies(s) {
            if !services.contains_key(&dep) {
                return Err(files
                    .at_text(
                        &dep,
                        format!("service '{svc}' depends on unknown service '{dep}'"),
                    )
                    .with_choices(names.clone()));
            }
        }
    }
    Ok(())
}

/// Refuses an `x-racy` block the driver cannot use: unknown services, a live variable
/// without its commands, a database without a port, no endpoints, an endpoint whose
/// check has no query.
fn check_driver(
    src: Source,
    driver: &Driver,
    services: &BTreeMap<String, Service>,
) -> Result<(), InputError> {
    let names: Vec<String> = services.keys().cloned().collect();
    for (what, svc) in [
        ("x-racy.target.service", &driver.target.service),
        ("x-racy.database.service", &driver.database.service),
    ] {
        if !services.contains_key(svc) {
            return Err(src
                .whole(format!("{what} names unknown service '{svc}'"))
                .with_choices(names.clone()));
        }
    }
    for (var, live) in &driver.live {
        if !services.contains_key(&live.service) {
            return Err(src
                .at_text(
                    &format!("service: {}", live.service),
                    format!("x-racy.live.{var} names unknown service '{}'", live.service),
                )
                .with_choices(names.clone()));
        }
        if live.count.is_empty() || live.apply.is_empty() {
            return Err(src.whole(format!(
                "x-racy.live.{var} needs both an apply and a count command"
            )));
        }
    }
    if driver.database.engine != DatabaseKind::Sqlite && driver.database.port == 0 {
        return Err(src.whole("x-racy.database.port is required for mysql and postgres"));
    }
    if driver.endpoints.is_empty() {
        return Err(src.whole("x-racy.endpoints is empty"));
    }
    let declared: BTreeSet<&str> = services
        .values()
        .flat_map(|s| s.profiles.iter().flatten().map(String::as_str))
        .collect();
    for (name, ep) in &driver.endpoints {
        // the path and the method go into the request line as they are: a space, CR or LF
        // there would end it early or start another request
        for (what, text) in [("path", &ep.path), ("method", &ep.method)] {
            if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(src.at_text(
                    &format!("{name}:"),
                    format!(
                        "endpoint '{name}': its {what} {text:?} is empty or holds a space or a control character (CR, LF, tab), which would break the request line"
                    ),
                ));
            }
        }
        if let Some(p) = ep.profiles.iter().find(|p| !declared.contains(p.as_str())) {
            return Err(src
                .at_text(
                    &format!("{name}:"),
                    format!("endpoint '{name}' needs profile '{p}', which no service has"),
                )
                .with_choices(declared.iter().map(|d| d.to_string()).collect()));
        }
        check_endpoint_check(src, driver, name, ep)?;
    }
    check_invariant_names(src, driver)
}

/// Refuses an endpoint whose check has no query: a counter without `balance` and
/// `ledger`, a built-in check without its observe query, an invariant the stack does not
/// declare.
fn check_endpoint_check(
    src: Source,
    driver: &Driver,
    name: &str,
    ep: &Endpoint,
) -> Result<(), InputError> {
    let o = &driver.observe;
    if ep.check == Check::Counter && (o.balance.trim().is_empty() || o.ledger.trim().is_empty()) {
        return Err(src.whole(format!(
            "endpoint '{name}' checks 'counter' (the default check), but x-racy.observe has no 'balance' and 'ledger' queries: add them, or give the endpoint its check (unique, task, start, or one of x-racy.invariants)"
        )));
    }
    if let Check::Invariant(inv) = &ep.check {
        if !driver.invariants.contains_key(inv) {
            let mut choices: Vec<String> = driver.invariants.keys().cloned().collect();
            choices.extend(BUILT_IN.iter().map(|c| c.name().to_string()));
            return Err(src
                .at_text(
                    &format!("check: {inv}"),
                    format!(
                        "endpoint '{name}' checks '{inv}', which is neither a built-in check nor one of x-racy.invariants"
                    ),
                )
                .with_choices(choices));
        }
    } else if ep.check != Check::Counter && !driver.observe.checks.contains_key(&ep.check) {
        return Err(src.whole(format!(
            "endpoint '{name}' checks '{}', but x-racy.observe has no '{}' query (columns: {})",
            ep.check.name(),
            ep.check.name(),
            ep.check.columns().join(", ")
        )));
    }
    Ok(())
}

/// Refuses an invariant in `observe` (it belongs in `invariants`) and an invariant whose
/// name is not one ([`is_invariant_name`]).
fn check_invariant_names(src: Source, driver: &Driver) -> Result<(), InputError> {
    if let Some(check) = driver.observe.checks.keys().find(|c| c.is_invariant()) {
        let name = check.name();
        return Err(src.at_text(
            &format!("{name}:"),
            format!(
                "x-racy.observe.{name} is not a built-in check's query (unique, task, start): an invariant of your own goes in x-racy.invariants.{name}, with its `violations` query"
            ),
        ));
    }
    for name in driver.invariants.keys() {
        if !is_invariant_name(name) {
            return Err(src.at_text(
                &format!("{name}:"),
                format!(
                    "x-racy.invariants.{name}: an invariant's name is letters, digits and _ (not starting with a digit, at most 64), and not a built-in check's (counter, unique, task, start)"
                ),
            ));
        }
    }
    Ok(())
}

/// The variables whose change recreates each service: its own, and those of every
/// service it depends on, since a service is recreated with what it depends on (folded
/// in start order, so dependencies come first).
fn service_vars(
    raw: &serde_json::Value,
    services: &BTreeMap<String, Service>,
    order: &[String],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for svc in order {
        let mut own = BTreeMap::new();
        collect_vars(&raw["services"][svc], &mut own);
        let mut vars: BTreeSet<String> = own.into_keys().collect();
        for (dep, _) in dependencies(&services[svc]) {
            vars.extend(out[&dep].iter().cloned());
        }
        out.insert(svc.clone(), vars);
    }
    out
}

fn dependencies(s: &Service) -> Vec<(String, DependsOnLong)> {
    match &s.depends_on {
        None => vec![],
        Some(DependsOn::List(l)) => l
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    DependsOnLong {
                        condition: None,
                        restart: false,
                        required: None,
                    },
                )
            })
            .collect(),
        Some(DependsOn::Map(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

fn start_order(services: &BTreeMap<String, Service>) -> Result<Vec<String>> {
    let mut order: Vec<String> = Vec::new();
    let mut visiting = Vec::new();
    fn visit(
        name: &str,
        services: &BTreeMap<String, Service>,
        order: &mut Vec<String>,
        visiting: &mut Vec<String>,
    ) -> Result<()> {
        if order.iter().any(|o| o == name) {
            return Ok(());
        }
        if visiting.iter().any(|v| v == name) {
            visiting.push(name.to_string());
            bail!("depends_on forms a cycle: {}", visiting.join(" -> "));
        }
        visiting.push(name.to_string());
        if let Some(s) = services.get(name) {
            for (dep, _) in dependencies(s) {
                visit(&dep, services, order, visiting)?;
            }
        }
        visiting.pop();
        order.push(name.to_string());
        Ok(())
    }
    for name in services.keys() {
        visit(name, services, &mut order, &mut visiting)?;
    }
    Ok(order)
}

/// Every variable a compose tree references, with the first default written.
pub fn collect_vars(v: &serde_json::Value, out: &mut BTreeMap<String, Option<String>>) {
    match v {
        serde_json::Value::String(s) => {
            for (name, default) in references(s) {
                let slot = out.entry(name).or_insert(None);
                if slot.is_none() {
                    *slot = default;
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_vars(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| collect_vars(x, out)),
        _ => {}
    }
}

/// Writes the per-request expressions of a file's `x-racy.request` fields so that the
/// per-cell substitution leaves them for each request ([`expr::escape`]); the first that
/// does not parse is an error, with the field's text.
fn escape_per_request(raw: &mut serde_json::Value) -> Result<(), (String, String)> {
    let Some(fields) = raw
        .get_mut("x-racy")
        .and_then(|x| x.get_mut("request"))
        .and_then(|r| r.as_object_mut())
    else {
        return Ok(());
    };
    for value in fields.values_mut() {
        if let serde_json::Value::String(s) = value {
            *s = expr::escape(s).map_err(|e| (s.clone(), e))?;
        }
    }
    Ok(())
}

/// The first string of a file whose interpolation is malformed (`${open`, `${bad name}`),
/// with what is wrong: such a string would only fail when a container is made from it.
fn bad_interpolation(v: &serde_json::Value) -> Option<(String, String)> {
    match v {
        serde_json::Value::String(s) => interpolate::check(s)
            .err()
            .map(|e| (s.clone(), e.to_string())),
        serde_json::Value::Array(a) => a.iter().find_map(bad_interpolation),
        serde_json::Value::Object(m) => m.values().find_map(bad_interpolation),
        _ => None,
    }
}

/// Interpolates every string of a deserializable value by a round trip through JSON.
fn interpolate_typed<T>(value: &T, vars: &BTreeMap<String, String>) -> Result<T>
where
    T: serde::Serialize + DeserializeOwned,
{
    fn walk(v: &mut serde_json::Value, vars: &BTreeMap<String, String>) -> Result<()> {
        match v {
            serde_json::Value::String(s) => *s = interpolate(s, vars)?,
            serde_json::Value::Array(a) => a.iter_mut().try_for_each(|x| walk(x, vars))?,
            serde_json::Value::Object(m) => m.values_mut().try_for_each(|x| walk(x, vars))?,
            _ => {}
        }
        Ok(())
    }
    let mut json = serde_json::to_value(value)?;
    walk(&mut json, vars)?;
    Ok(serde_json::from_value(json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::interpolate::tests::vars;

    const STACK: &str = r#"
x-racy:
  target: {service: web, port: 80, health: /health}
  database: {service: db, port: 3306, engine: mysql, user: u, password: "${db_password:-p}", name: n}
  request: {amount: "${amount}", delay_ms: "${delay_ms}"}
  endpoints:
    a: {path: /a/}
  reset: ["DELETE FROM t"]
  observe: {balance: "SELECT 1", ledger: "SELECT 1, 2"}
services:
  db:
    image: "db:${dbver:-1}"
    environment: {MODE: "${isolation:-rc}"}
  app:
    image: app
    command: ["serve", "--workers", "${workers}"]
    depends_on: {db: {condition: service_healthy}}
  web:
    image: web
    depends_on: [app]
  solo:
    image: solo
"#;

    #[test]
    fn restart_sets_follow_the_file() {
        let s = Stack::parse("t", Path::new("t/compose.yaml"), STACK).unwrap();
        assert_eq!(s.start_order(), vec!["db", "app", "solo", "web"]);
        assert_eq!(
            s.service_vars["db"],
            BTreeSet::from(["dbver".into(), "isolation".into()])
        );
        assert_eq!(
            s.service_vars["app"],
            BTreeSet::from(["dbver".into(), "isolation".into(), "workers".into()])
        );
        // dependents restart with what they depend on: web with app, app with db
        assert_eq!(
            s.service_vars["web"],
            BTreeSet::from(["dbver".into(), "isolation".into(), "workers".into()])
        );
        assert!(s.service_vars["solo"].is_empty());
        let a = vars(&[("workers", "1"), ("delay_ms", "10")]);
        let b = vars(&[("workers", "4"), ("delay_ms", "10")]);
        assert_eq!(s.services_changed(&a, &b), vec!["app", "web"]);
        let c = vars(&[("workers", "1"), ("delay_ms", "99")]);
        assert!(
            s.services_changed(&a, &c).is_empty(),
            "request axes restart nothing"
        );
        assert!(!s.restart_variables().contains("delay_ms"));
        assert_eq!(s.variables["isolation"], Some("rc".into()));
    }

    #[test]
    fn service_and_driver_interpolate() {
        let s = Stack::parse("t", Path::new("t/compose.yaml"), STACK).unwrap();
        let v = vars(&[("workers", "3"), ("amount", "100"), ("delay_ms", "200")]);
        let app = s.service("app", &v).unwrap();
        assert_eq!(
            app.command.unwrap().words(),
            vec!["serve", "--workers", "3"]
        );
        let d = s.driver_for(&v).unwrap();
        assert_eq!(d.database.password, "p");
        assert_eq!(d.request["delay_ms"].to_string(), "200");
        // unset and without a default: empty, as compose makes it
        let bare = s.service("app", &BTreeMap::new()).unwrap();
        assert_eq!(
            bare.command.unwrap().words(),
            vec!["serve", "--workers", ""]
        );
    }

    #[test]
    fn live_variables_change_in_place() {
        let with = STACK.replace(
            "  reset:",
            "  live:\n    workers: {service: app, apply: [sh, /resize], count: [sh, /count]}\n  reset:",
        );
        let s = Stack::parse("t", Path::new("c.yaml"), &with).unwrap();
        let a = vars(&[("workers", "1"), ("isolation", "rc")]);
        let b = vars(&[("workers", "4"), ("isolation", "rc")]);
        assert!(s.services_changed(&a, &b).is_empty(), "nothing recreated");
        let live = s.live_changes(&a, &b).unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(
            (live[0].var.as_str(), live[0].from, live[0].to),
            ("workers", 1, 4)
        );
        assert_eq!(live[0].live.service, "app");
        // when the service is recreated anyway, its new container starts with the value
        let c = vars(&[("workers", "2"), ("isolation", "sz")]);
        assert_eq!(s.services_changed(&a, &c), vec!["db", "app", "web"]);
        assert!(s.live_changes(&a, &c).unwrap().is_empty());
        // a live variable is the cheapest restart axis
        assert_eq!(s.restart_cost("workers"), 0);
        assert_eq!(s.restart_variables_by_cost()[0], "dbver");
        let bad = with.replace("service: app, apply", "service: nope, apply");
        let e = Stack::parse("t", Path::new("c.yaml"), &bad).unwrap_err();
        assert!(e.message.contains("unknown service 'nope'"), "{e}");
        assert!(e.line > 1, "{e}");
    }

    #[test]
    fn volumes_and_replicas() {
        let with = STACK
            .replace(
                "    image: app\n",
                "    image: app\n    volumes: [\"shared:/shared\", \"data:/data:ro\"]\n    deploy: {replicas: \"${replicas:-1}\"}\n",
            )
            + "volumes:\n  shared: {}\n  data:\n";
        let s = Stack::parse("t", Path::new("c.yaml"), &with).unwrap();
        assert_eq!(s.volumes, vec!["data", "shared"]);
        assert!(s.service_vars["app"].contains("replicas"));
        let app = s
            .service("app", &vars(&[("workers", "2"), ("replicas", "3")]))
            .unwrap();
        assert_eq!(app.replicas().unwrap(), 3);
        assert_eq!(
            app.mounts().unwrap(),
            vec![
                compose::tests::volume("shared", "/shared", false),
                compose::tests::volume("data", "/data", true)
            ]
        );
        let zero = s
            .service("app", &vars(&[("workers", "2"), ("replicas", "0")]))
            .unwrap();
        assert!(zero.replicas().is_err());
        // an undeclared volume and a bind mount are refused where they are written
        let undeclared = with.replace("\"data:/data:ro\"", "\"logs:/logs\"");
        let e = Stack::parse("t", Path::new("c.yaml"), &undeclared).unwrap_err();
        assert!(e.message.contains("'logs'"), "{e}");
        assert_eq!((e.line, e.column), (16, 34), "{e}");
        let bind = with.replace("\"data:/data:ro\"", "\"./here:/data\"");
        let e = Stack::parse("t", Path::new("c.yaml"), &bind).unwrap_err();
        assert!(e.message.contains("bind mounts"), "{e}");
        assert_eq!(e.line, 16, "{e}");
    }

    /// The handlers of a stack file for a cell with `pairs` (plus what STACK's request needs).
    fn handlers_of(text: &str, pairs: &[(&str, &str)]) -> Result<Option<u64>> {
        let s = Stack::parse("t", Path::new("c.yaml"), text).unwrap();
        let mut v = vars(&[("amount", "100"), ("delay_ms", "200")]);
        v.extend(vars(pairs));
        s.driver_for(&v)?.handler_count()
    }

    #[test]
    fn handlers_are_a_product_of_the_cell_variables() {
        let with = STACK.replace(
            "  reset:",
            "  handlers: \"${workers:-3}*${threads:-1}*${replicas:-1}\"\n  reset:",
        );
        assert_eq!(handlers_of(&with, &[]).unwrap(), Some(3), "defaults 3*1*1");
        let v = [("workers", "4"), ("threads", "2"), ("replicas", "3")];
        assert_eq!(handlers_of(&with, &v).unwrap(), Some(24));
        // an empty variable takes its default, as everywhere in the file
        assert_eq!(handlers_of(&with, &[("threads", "")]).unwrap(), Some(3));
        // the block only describes the stack: it restarts nothing
        let s = Stack::parse("t", Path::new("c.yaml"), &with).unwrap();
        assert!(!s.service_vars["app"].contains("threads"));
        // a plain number, and no declaration at all
        let plain = STACK.replace("  reset:", "  handlers: 16\n  reset:");
        assert_eq!(handlers_of(&plain, &[]).unwrap(), Some(16));
        assert_eq!(handlers_of(STACK, &[]).unwrap(), None);
        // what is not a product of whole numbers above 0 fails when it is interpolated
        for bad in ["four", "0", "-2", "2.5"] {
            let e = handlers_of(&with, &[("threads", bad)])
                .unwrap_err()
                .to_string();
            assert!(e.contains("x-racy.handlers") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn shipped_stacks_declare_their_handlers() {
        // workers × threads × replicas, with the defaults the compose files give them
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks");
        for (name, s) in discover(&root).unwrap() {
            let handlers = |pairs: &[(&str, &str)]| {
                let mut v = vars(pairs);
                v.insert("amount".into(), "100".into());
                s.driver_for(&v).unwrap().handler_count().unwrap()
            };
            if name == "flask-counter" {
                // Gunicorn's WEB_CONCURRENCY sync workers, one container
                assert_eq!(handlers(&[]), Some(1), "{name}");
                assert_eq!(handlers(&[("workers", "4")]), Some(4), "{name}");
                continue;
            }
            if name.starts_with("startup-") {
                // seed 000's: one Gunicorn worker answers each start's one request
                assert_eq!(handlers(&[]), Some(1), "{name}");
                continue;
            }
            assert_eq!(handlers(&[]), Some(3), "{name}");
            let v = [("workers", "3"), ("threads", "2"), ("replicas", "2")];
            assert_eq!(handlers(&v), Some(12), "{name}");
            for var in ["workers", "threads", "replicas"] {
                assert!(s.variables.contains_key(var), "{name} uses {var}");
            }
        }
    }

    #[test]
    fn bad_stacks_are_located() {
        let cyclic = STACK.replace(
            "    environment: {MODE: \"${isolation:-rc}\"}",
            "    depends_on: [web]",
        );
        let e = Stack::parse("t", Path::new("c.yaml"), &cyclic).unwrap_err();
        assert!(e.message.contains("cycle"), "{e}");
        let typo = STACK.replace("    image: app", "    imagee: app");
        let e = Stack::parse("t", Path::new("c.yaml"), &typo).unwrap_err();
        assert!(e.line > 1, "{e}");
        assert!(e.to_string().starts_with("c.yaml:"), "{e}");
        let unclosed = STACK.replace("    image: app", "    image: \"app:${tag\"");
        let e = Stack::parse("t", Path::new("c.yaml"), &unclosed).unwrap_err();
        assert!(e.message.contains("unclosed"), "{e}");
        assert_eq!(e.line, 15, "{e}");
    }

    #[test]
    fn a_path_or_method_that_would_break_the_request_line_is_refused() {
        for (bad, what) in [
            ("    a: {path: \"/a/ HTTP/1.1\\r\\nX-Evil: 1\"}", "path"),
            ("    a: {path: /a/, method: \"POST /x\"}", "method"),
            ("    a: {path: \"\"}", "path"),
        ] {
            let text = STACK.replace("    a: {path: /a/}", bad);
            let e = Stack::parse("t", Path::new("c.yaml"), &text).unwrap_err();
            assert!(
                e.message.contains(&format!("endpoint 'a': its {what}")),
                "{e}"
            );
            assert!(e.line > 1, "located: {e}");
        }
    }

    #[test]
    fn an_endpoint_declares_its_window() {
        let text = STACK.replace(
            "    a: {path: /a/}",
            "    a: {path: /a/}\n    b: {path: /b/, window: serial}\n    c: {path: /c/, window: ignored}",
        );
        let s = Stack::parse("t", Path::new("c.yaml"), &text).unwrap();
        let window = |e: &str| s.driver.endpoints[e].window;
        assert_eq!(window("a"), crate::input::setup::Shape::Parallel);
        assert_eq!(window("b"), crate::input::setup::Shape::Serial);
        assert_eq!(window("c"), crate::input::setup::Shape::Ignored);
        // a word it does not know: located, with the choices
        let bad = text.replace("window: serial", "window: serialized");
        let e = Stack::parse("t", Path::new("c.yaml"), &bad).unwrap_err();
        assert_eq!(e.line, 8, "{e}");
        assert!(e.to_string().contains("parallel, serial"), "{e}");
    }

    #[test]
    fn profiles_start_what_the_cells_need() {
        // solo and a cache only for endpoint b; web in a profile, but it is the target;
        // the cache depends on solo, which comes with it
        let text = STACK
            .replace("    a: {path: /a/}", "    a: {path: /a/}\n    b: {path: /b/, profiles: [extra]}")
            .replace("    image: solo", "    image: solo\n    profiles: [other]")
            .replace(
                "    depends_on: [app]",
                "    depends_on: [app]\n    profiles: [other]\n  cache:\n    image: cache\n    profiles: [extra]\n    depends_on: [solo]",
            );
        let s = Stack::parse("t", Path::new("c.yaml"), &text).unwrap();
        assert_eq!(s.start_order_for(["a"]), vec!["db", "app", "web"]);
        assert_eq!(
            s.start_order_for(["a", "b"]),
            vec!["db", "app", "solo", "cache", "web"]
        );
        // `up` starts everything
        assert_eq!(s.start_order().len(), 5);
        // an endpoint needing a profile no service has: located, with the choices
        let bad = text.replace("profiles: [extra]}", "profiles: [extar]}");
        let e = Stack::parse("t", Path::new("c.yaml"), &bad).unwrap_err();
        assert_eq!((e.line, e.column), (8, 5), "{e}");
        assert!(
            e.to_string()
                .contains("endpoint 'b' needs profile 'extar', which no service has"),
            "{e}"
        );
    }

    #[test]
    fn the_lab_starts_redis_and_celery_only_for_their_endpoints() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks");
        let stacks = discover(&root).unwrap();
        let s = &stacks["django-mysql"];
        assert_eq!(
            s.start_order_for(["atomic_long_delay", "get_or_create", "lock_flock_shared"]),
            vec!["app", "db", "migrate", "web"]
        );
        let with = |eps: &[&str]| s.start_order_for(eps.iter().copied());
        assert!(with(&["lock_redis"]).contains(&"redis".to_string()));
        assert!(!with(&["lock_redis"]).contains(&"worker".to_string()));
        let tasks = with(&["task_on_commit"]);
        assert!(tasks.contains(&"redis".to_string()) && tasks.contains(&"worker".to_string()));
        let s = &stacks["django-sqlite"];
        assert!(
            !s.start_order_for(["non_atomic_long_delay"])
                .contains(&"redis".to_string())
        );
    }

    fn refused(text: &str) -> InputError {
        Stack::parse("t", Path::new("c.yaml"), text).unwrap_err()
    }

    #[test]
    fn per_request_values_differ_per_request_and_bad_ones_are_located() {
        let text = STACK.replace(
            "  request: {amount: \"${amount}\", delay_ms: \"${delay_ms}\"}",
            "  request:\n    amount: \"${amount}\"\n    doctor: \"${request % 2 + 1}\"\n    tag: \"b${burst}-${amount:-0}\"",
        );
        let s = Stack::parse("t", Path::new("c.yaml"), &text).unwrap();
        let d = s
            .driver_for(&BTreeMap::from([("amount".into(), "100".into())]))
            .unwrap();
        assert!(d.varies());
        let of = |i, b| d.fields_of(i, b).unwrap();
        assert_eq!(
            of(1, 3),
            vec![
                ("amount".into(), "100".into()),
                ("doctor".into(), "2".into()),
                ("tag".into(), "b3-100".into())
            ]
        );
        assert_eq!(of(2, 0)[1].1, "1");
        let e = refused(&text.replace("request % 2 + 1", "request % 0"));
        assert_eq!(
            e.to_string(),
            "c.yaml:7:14: x-racy.request: '${request % 0}': '% 0' divides by zero; a per-request value is an integer expression of request and burst: see docs/formats.md#per-request-values"
        );
        // a stack without them sends one request to every connection
        let plain = Stack::parse("t", Path::new("c.yaml"), STACK).unwrap();
        assert!(!plain.driver_for(&BTreeMap::new()).unwrap().varies());
    }

    #[test]
    fn invariants_are_declared_named_and_checked_like_other_sql() {
        let with = |endpoint: &str, invariants: &str| {
            STACK
                .replace("    a: {path: /a/}", &format!("    a: {endpoint}"))
                .replace("  reset:", &format!("  invariants:\n{invariants}  reset:"))
        };
        let good = with(
            "{path: /a/, check: no_overdraft}",
            "    no_overdraft:\n      violations: SELECT COUNT(*) FROM debit WHERE balance_after < 0\n    one_on_call: {violations: SELECT 0, out_of: SELECT 1}\n",
        );
        let s = Stack::parse("t", Path::new("c.yaml"), &good).unwrap();
        let a = &s.driver.endpoints["a"];
        assert_eq!(a.check, Check::Invariant("no_overdraft".into()));
        assert_eq!(s.driver.invariants["no_overdraft"].out_of, None);
        assert_eq!(
            s.driver.invariants["one_on_call"].out_of.as_deref(),
            Some("SELECT 1")
        );
        // an endpoint naming an invariant the stack does not declare: located, with the
        // names it could have meant
        let e = refused(&good.replace("check: no_overdraft", "check: no_overdraf"));
        assert!(
            e.message
                .starts_with("endpoint 'a' checks 'no_overdraf', which is neither"),
            "{e}"
        );
        assert_eq!(e.line, 7, "{e}");
        assert!(e.to_string().contains("no_overdraft"), "{e}");
        // a value in the SQL, an empty query, a missing one: located errors
        let e = refused(&good.replace("balance_after < 0", "balance_after < ${floor}"));
        assert!(
            e.message
                .starts_with("x-racy.invariants.no_overdraft.violations uses '${floor}'"),
            "{e}"
        );
        assert_eq!(e.line, 10, "{e}");
        let e = refused(&good.replace("out_of: SELECT 1", "out_of: \"\""));
        assert_eq!(
            e.message,
            "x-racy.invariants.one_on_call.out_of is empty: write the SQL query"
        );
        let e = refused(&good.replace(
            "{violations: SELECT 0, out_of: SELECT 1}",
            "{out_of: SELECT 1}",
        ));
        assert!(e.message.contains("violations"), "{e}");
        // an invariant's name cannot be a built-in check's, nor hide in observe
        let e = refused(&with("{path: /a/}", "    unique: {violations: SELECT 0}\n"));
        assert!(
            e.message
                .starts_with("x-racy.invariants.unique: an invariant's name"),
            "{e}"
        );
        let e = refused(&STACK.replace(
            "ledger: \"SELECT 1, 2\"}",
            "ledger: \"SELECT 1, 2\", no_overdraft: \"SELECT 0\"}",
        ));
        assert!(
            e.message
                .starts_with("x-racy.observe.no_overdraft is not a built-in check's query"),
            "{e}"
        );
    }

    #[test]
    fn a_counter_needs_balance_and_ledger_and_other_checks_do_not() {
        // no counter endpoint: the counter's queries may go
        let starts = STACK
            .replace("    a: {path: /a/}", "    a: {path: /a/, check: start}")
            .replace(
                "  observe: {balance: \"SELECT 1\", ledger: \"SELECT 1, 2\"}",
                "  observe: {start: \"SELECT 1 AS starts, 0 AS failed\"}",
            );
        let s = Stack::parse("t", Path::new("c.yaml"), &starts).unwrap();
        assert!(s.driver.observe.balance.is_empty());
        // a counter endpoint without them is refused, saying what to do
        let counter = STACK.replace(
            "  observe: {balance: \"SELECT 1\", ledger: \"SELECT 1, 2\"}",
            "  observe: {start: \"SELECT 1 AS starts, 0 AS failed\"}",
        );
        let e = refused(&counter);
        assert!(
            e.message.starts_with("endpoint 'a' checks 'counter' (the default check), but x-racy.observe has no 'balance' and 'ledger' queries"),
            "{e}"
        );
    }

    #[test]
    fn sql_takes_no_variables() {
        let reset = STACK.replace(
            "reset: [\"DELETE FROM t\"]",
            "reset: [\"DELETE FROM t\", \"DELETE FROM u WHERE id = ${account}\"]",
        );
        let e = refused(&reset);
        assert_eq!((e.line, e.column), (8, 54), "{e}");
        assert!(
            e.message
                .starts_with("x-racy.reset statement 2 uses '${account}'"),
            "{e}"
        );
        assert!(e.message.contains("write the value itself"), "{e}");
        // the bare form too, in a block scalar of observe
        let observe = STACK.replace(
            "  observe: {balance: \"SELECT 1\", ledger: \"SELECT 1, 2\"}",
            "  observe:\n    ledger: SELECT 1, 2\n    balance: |\n      SELECT balance FROM a\n      WHERE id = $account\n",
        );
        let e = refused(&observe);
        assert_eq!((e.line, e.column), (13, 18), "{e}");
        assert!(
            e.message
                .starts_with("x-racy.observe.balance uses '$account'"),
            "{e}"
        );
        // a literal dollar is written $$ and stays one
        let dollar = STACK.replace("\"DELETE FROM t\"", "\"SELECT '$$1'\"");
        let s = Stack::parse("t", Path::new("c.yaml"), &dollar).unwrap();
        assert_eq!(
            s.driver_for(&vars(&[("amount", "1"), ("delay_ms", "1")]))
                .unwrap()
                .reset,
            ["SELECT '$1'"]
        );
    }

    #[test]
    fn sqlite_takes_no_dot_commands() {
        let sqlite = STACK.replace(
            "{service: db, port: 3306, engine: mysql, user: u, password: \"${db_password:-p}\", name: n}",
            "{service: db, engine: sqlite, name: /data/db.sqlite3}",
        );
        Stack::parse("t", Path::new("c.yaml"), &sqlite).unwrap();
        let dot = "reset: [\"DELETE FROM t\", \"  .shell touch /x\"]";
        let e = refused(&sqlite.replace("reset: [\"DELETE FROM t\"]", dot));
        assert_eq!((e.line, e.column), (8, 31), "{e}");
        assert!(
            e.message
                .starts_with("x-racy.reset statement 2 is the sqlite3 command '.shell'"),
            "{e}"
        );
        // on any line of a statement, since the shell reads commands line by line
        let e = refused(&sqlite.replace("\"SELECT 1, 2\"", "\"SELECT 1, 2;\\n.system id\""));
        assert!(
            e.message
                .contains("x-racy.observe.ledger is the sqlite3 command '.system'"),
            "{e}"
        );
        assert_eq!(e.line, 9, "{e}");
        // for the other engines a leading dot is only bad SQL, which the database reports
        Stack::parse(
            "t",
            Path::new("c.yaml"),
            &STACK.replace("\"DELETE FROM t\"", "\".tables\""),
        )
        .unwrap();
    }

    #[test]
    fn settings_the_engine_refuses_are_located() {
        let app =
            |extra: &str| STACK.replace("    image: app\n", &format!("    image: app\n{extra}"));
        let e = refused(&app("    mem_limit: lots\n"));
        assert_eq!((e.line, e.column), (16, 16), "{e}");
        assert_eq!(
            e.message,
            "services.app.mem_limit 'lots' is not a memory size: write bytes, or a number with the unit k, m or g (e.g. 512m)"
        );
        let e = refused(&app("    mem_limit: 1k\n"));
        assert!(e.message.contains("below the 6m"), "{e}");
        let e = refused(&app("    deploy: {replicas: -3}\n"));
        assert_eq!((e.line, e.column), (16, 24), "{e}");
        assert!(e.message.contains("'-3' is not a replica count"), "{e}");
        let e = refused(&app("    healthcheck: {test: [CMD, x], interval: soon}\n"));
        assert!(
            e.message
                .starts_with("services.app.healthcheck.interval 'soon' is not a duration"),
            "{e}"
        );
        let e = refused(&app(
            "    healthcheck: {test: [CMD, x], start_period: 500us}\n",
        ));
        assert!(e.message.contains("below the 1ms"), "{e}");
        let web = STACK.replace(
            "    image: web\n",
            "    image: web\n    deploy: {replicas: 2}\n",
        );
        let e = refused(&web);
        assert!(
            e.message
                .starts_with("services.web.deploy.replicas '2' is more than one container"),
            "{e}"
        );
        let fine = app(
            "    mem_limit: 1.5g\n    deploy: {replicas: 3}\n    healthcheck: {test: [CMD, x], interval: 1m30s, timeout: 0s}\n",
        );
        Stack::parse("t", Path::new("c.yaml"), &fine).unwrap();
    }

    #[test]
    fn settings_are_checked_for_each_cell() {
        let text = STACK.replace(
            "    image: app\n",
            "    image: app\n    deploy: {replicas: \"${scale:-1}\"}\n    mem_limit: ${mem:-lots}\n    healthcheck: {test: [CMD, x], timeout: \"${BASE_IMAGE}\"}\n",
        );
        // the variables decide: nothing is refused when the file loads
        let s = Stack::parse("t", Path::new("c.yaml"), &text).unwrap();
        let e = s
            .check_variables(&vars(&[("scale", "-3"), ("mem", "1g")]))
            .unwrap_err();
        assert_eq!(
            (e.file.as_path(), e.line, e.column),
            (Path::new("c.yaml"), 16, 24),
            "{e}"
        );
        assert_eq!(
            e.message,
            "services.app.deploy.replicas '${scale:-1}' is '-3' in the cell with scale=-3, which is not a replica count: change the matrix's values for scale so that it is a whole number from 1 to 64"
        );
        s.check_variables(&vars(&[("scale", "4"), ("mem", "1g")]))
            .unwrap();
        let e = s.check_variables(&vars(&[("scale", "4")])).unwrap_err();
        assert_eq!(e.line, 17, "{e}");
        assert!(
            e.message
                .contains("'lots' in the cell with mem unset (its default applies)"),
            "{e}"
        );
        // a variable the tool sets at run time (BASE_IMAGE here) leaves its setting to then
        s.check_variables(&vars(&[("mem", "1g")])).unwrap();
    }

    #[test]
    fn matrix_cells_are_checked_against_the_stack() {
        let text = STACK.replace(
            "    image: app\n",
            "    image: app\n    deploy: {replicas: \"${scale:-1}\"}\n",
        );
        let catalog = StackCatalog {
            stacks: BTreeMap::from([(
                "t".to_string(),
                Stack::parse("t", Path::new("c.yaml"), &text).unwrap(),
            )]),
        };
        let matrix = |extra: &str| {
            let m = format!(
                "name: m\nstacks: [t]\naxes:\n  workers: [1]\n  delay_ms: [\"0\"]\n  scale: [1, 2]\n{extra}"
            );
            crate::input::matrix::parse(&m, Path::new("m.yaml"), &catalog)
        };
        matrix("").unwrap();
        // a cell that only an include adds is checked too
        let e = matrix("include: [{scale: 0}]\n").unwrap_err();
        assert_eq!((e.file.as_path(), e.line), (Path::new("c.yaml"), 16), "{e}");
        assert!(e.message.contains("scale=0"), "{e}");
    }

    #[test]
    fn sql_is_checked_in_whichever_file_holds_it() {
        // the block is in the compose file; racy.yaml only mentions it in a comment
        let base = STACK.replace(
            r#"reset: ["DELETE FROM t"]"#,
            r#"reset: ["DELETE FROM t", "UPDATE t SET b = ${account}"]"#,
        );
        let layers = [
            Layer {
                file: PathBuf::from("p/base.yml"),
                text: base,
                racy: false,
            },
            Layer {
                file: PathBuf::from("s/racy.yaml"),
                text: "# the x-racy block lives in base.yml\nservices: {web: {image: web}}\n"
                    .into(),
                racy: true,
            },
        ];
        let e = Stack::from_layers("t", &layers).unwrap_err();
        assert!(
            e.to_string().starts_with("p/base.yml:"),
            "located in base.yml: {e}"
        );
        assert!(e.message.contains("uses '${account}'"), "{e}");
    }

    #[test]
    fn a_racy_yaml_beside_an_unmodified_compose_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let s = Stack::load(&root.join("stacks/flask-counter")).unwrap();
        assert!(s.file.ends_with("stacks/flask-counter/racy.yaml"));
        assert!(s.project_dir.ends_with("examples/flask-counter"));
        assert_eq!(
            s.dir(),
            s.project_dir.as_path(),
            "build contexts are the app's"
        );
        // env_file read into the environment, under what `environment` writes itself
        let web = s.service("web", &vars(&[("workers", "4")])).unwrap();
        let env = web.environment.as_ref().unwrap().pairs();
        assert_eq!(env["POSTGRES_USER"], "counter");
        assert_eq!(env["WEB_CONCURRENCY"], "4", "racy.yaml's override wins");
        // a bind mount made absolute, read-only as written
        let mounts = web.mounts().unwrap();
        let MountSource::Bind(path) = &mounts[0].source else {
            panic!("{mounts:?}")
        };
        assert!(Path::new(path).is_absolute() && path.ends_with("examples/flask-counter/app"));
        assert!(mounts[0].read_only);
        // credentials from the database service's environment
        let d = s.driver_for(&vars(&[("amount", "100")])).unwrap();
        assert_eq!(
            (d.database.user.as_str(), d.database.name.as_str()),
            ("counter", "counter")
        );
        assert_eq!(d.database.password, "counter-dev-secret");
        assert_eq!(d.target.health, None);
        // what it ignores, once each, where the compose file says it
        assert_eq!(s.notes.len(), 2, "{:?}", s.notes);
        assert!(s.variables.contains_key("workers"));
    }

    #[test]
    fn type_errors_speak_of_compose_keys() {
        let service = |body: &str| {
            let text = STACK.replace("    image: solo\n", &format!("    image: solo\n{body}\n"));
            Stack::parse("t", Path::new("c.yaml"), &text).unwrap_err()
        };
        let e = service("    volumes: [{source: x}]");
        assert!(
            e.message
                .starts_with("`volumes`: a volume is `SOURCE:/path`"),
            "{e}"
        );
        let e = service("    depends_on: db");
        assert!(
            e.message.starts_with("`depends_on`: depends_on is a list"),
            "{e}"
        );
        let e = service("    tty: maybe");
        assert_eq!(e.message, "`tty`: this is true or false", "{e}");
        assert!(!e.to_string().contains("enum"), "{e}");
    }

    #[test]
    fn credentials_follow_the_official_images() {
        let db = |engine| Database {
            service: "db".into(),
            port: 1,
            engine,
            user: String::new(),
            password: String::new(),
            name: String::new(),
        };
        let env = |pairs: &[(&str, &str)]| vars(pairs);
        let mut pg = db(DatabaseKind::Postgres);
        credentials_from_env(&mut pg, &env(&[("POSTGRES_PASSWORD", "pw")])).unwrap();
        assert_eq!(
            (pg.user, pg.password, pg.name),
            ("postgres".into(), "pw".into(), "postgres".into())
        );
        let mut my = db(DatabaseKind::Mysql);
        let e = env(&[
            ("MYSQL_USER", "u"),
            ("MARIADB_PASSWORD", "p"),
            ("MYSQL_DATABASE", "d"),
        ]);
        credentials_from_env(&mut my, &e).unwrap();
        assert_eq!(
            (my.user, my.password, my.name),
            ("u".into(), "p".into(), "d".into())
        );
        let mut root = db(DatabaseKind::Mysql);
        let e = env(&[("MARIADB_ROOT_PASSWORD", "r"), ("MARIADB_DATABASE", "d")]);
        credentials_from_env(&mut root, &e).unwrap();
        assert_eq!((root.user, root.password), ("root".into(), "r".into()));
        // what the file writes wins; what nothing says is an error naming the field
        let mut given = Database {
            password: "mine".into(),
            ..db(DatabaseKind::Postgres)
        };
        credentials_from_env(&mut given, &env(&[("POSTGRES_PASSWORD", "theirs")])).unwrap();
        assert_eq!(given.password, "mine");
        let mut none = db(DatabaseKind::Mysql);
        let e = credentials_from_env(&mut none, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x-racy.database.password is not given"), "{e}");
    }
}
