//! Compose services as racy-matrix reads them: the subset of the compose spec a stack
//! file's `services` may use, what their values mean (durations, byte sizes, replica
//! counts, volume mounts, the health check), and a service turned into the engine's
//! description of its container.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};

/// The most containers one service may run.
pub const MAX_REPLICAS: u32 = 64;
/// Memory limit for services that set none.
pub const DEFAULT_MEMORY: i64 = 1 << 30;

pub use crate::input::source::Scalar;

/// A string or a list of strings (compose `command`, `entrypoint`, healthcheck `test`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StrOrList {
    /// One string, split on white space.
    One(String),
    /// An exec-form list.
    List(Vec<Scalar>),
}

impl StrOrList {
    /// The exec-form words.
    pub fn words(&self) -> Vec<String> {
        match self {
            // compose splits a string command as a shell would, quotes included
            StrOrList::One(s) => shell_words::split(s)
                .unwrap_or_else(|_| s.split_whitespace().map(str::to_string).collect()),
            StrOrList::List(l) => l.iter().map(ToString::to_string).collect(),
        }
    }
}

/// A mapping or a `KEY=VALUE` list (compose `environment`, build `args`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum KeyValues {
    /// `KEY: value` entries.
    Map(BTreeMap<String, Option<Scalar>>),
    /// `KEY=value` entries.
    List(Vec<String>),
}

impl KeyValues {
    /// The entries as ordered pairs (a key without value maps to the empty string).
    pub fn pairs(&self) -> BTreeMap<String, String> {
        match self {
            KeyValues::Map(m) => m
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_ref().map(ToString::to_string).unwrap_or_default(),
                    )
                })
                .collect(),
            KeyValues::List(l) => l
                .iter()
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (e.clone(), String::new()),
                })
                .collect(),
        }
    }
}

/// Compose `build`: a context path or the long form.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Build {
    /// Only the context directory.
    Context(String),
    /// Context, Dockerfile and build args.
    Long {
        /// Build context directory, relative to the compose file.
        context: String,
        /// The Dockerfile's path from the context (`Dockerfile` when left out); it may
        /// lie outside the context.
        #[serde(default)]
        dockerfile: Option<String>,
        /// Build arguments.
        #[serde(default)]
        args: Option<KeyValues>,
    },
}

/// One `depends_on` entry in long form.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DependsOnLong {
    /// `service_started` (default), `service_healthy` or `service_completed_successfully`.
    #[serde(default)]
    pub condition: Option<String>,
    /// Compose v2's "restart with the dependency"; racy-matrix always does (docs/formats.md#recreated-services).
    #[serde(default)]
    pub restart: bool,
    /// Ignored (compose: whether the dependency must exist).
    #[serde(default)]
    pub required: Option<bool>,
}

/// Compose `depends_on`: a list of names or a mapping.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DependsOn {
    /// Names only; condition `service_started`.
    List(Vec<String>),
    /// Name → condition.
    Map(BTreeMap<String, DependsOnLong>),
}

/// What a service waits for before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The dependency's container runs.
    Started,
    /// The dependency answers its readiness probe.
    Healthy,
    /// The dependency exited with status 0.
    Completed,
}

/// Compose `healthcheck`, as written: given to the engine, and run by racy-matrix itself
/// to see the service ready (both read it through [`Healthcheck::interpret`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]`, `["NONE"]` or a shell string (none: the
    /// image's own check, which racy-matrix does not run).
    #[serde(default)]
    pub test: Option<StrOrList>,
    /// `true` turns the check off (the image's too).
    #[serde(default)]
    pub disable: Option<bool>,
    /// Interval between checks, e.g. `2s`.
    #[serde(default)]
    pub interval: Option<String>,
    /// Timeout of one check.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Failures before unhealthy.
    #[serde(default)]
    pub retries: Option<i64>,
    /// Grace period after start.
    #[serde(default)]
    pub start_period: Option<String>,
}

/// Compose `deploy`: `replicas`, and `resources.limits.memory` as a memory limit.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Deploy {
    /// Number of containers of the service.
    #[serde(default)]
    pub replicas: Option<Scalar>,
    /// Resource limits (only the memory limit is read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// Compose `deploy.resources`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    /// `limits.memory`, e.g. `512M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// Compose `deploy.resources.limits`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    /// Memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Scalar>,
}

/// Compose `env_file`: one path, or a list of paths or `{path, required}` entries (read
/// when the stack loads and folded into `environment`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum EnvFiles {
    /// One file.
    One(String),
    /// Several, in order (a later file's value wins).
    List(Vec<EnvFileEntry>),
}

/// One `env_file` entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum EnvFileEntry {
    /// A path, relative to the compose file.
    Path(String),
    /// A path that may be missing when `required: false`.
    Long {
        /// The file.
        path: String,
        /// Whether a missing file is an error (default true).
        #[serde(default)]
        required: Option<bool>,
    },
}

impl EnvFiles {
    /// (path, required) of each file, in order.
    pub fn entries(&self) -> Vec<(String, bool)> {
        match self {
            EnvFiles::One(p) => vec![(p.clone(), true)],
            EnvFiles::List(l) => l
                .iter()
                .map(|e| match e {
                    EnvFileEntry::Path(p) => (p.clone(), true),
                    EnvFileEntry::Long { path, required } => {
                        (path.clone(), required.unwrap_or(true))
                    }
                })
                .collect(),
        }
    }
}

/// Compose service `networks`: names, or names with their settings (only `aliases` is
/// read). Every service of a stack instance joins its one network, under these aliases.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Networks {
    /// Network names.
    List(Vec<String>),
    /// Network name → settings.
    Map(BTreeMap<String, Option<NetworkAttach>>),
}

/// A service's settings on one network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NetworkAttach {
    /// Further DNS names of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
}

impl Networks {
    /// The networks named.
    pub fn names(&self) -> Vec<String> {
        match self {
            Networks::List(l) => l.clone(),
            Networks::Map(m) => m.keys().cloned().collect(),
        }
    }

    /// The aliases given on any of them.
    pub fn aliases(&self) -> Vec<String> {
        match self {
            Networks::List(_) => vec![],
            Networks::Map(m) => m
                .values()
                .flatten()
                .flat_map(|a| a.aliases.clone().unwrap_or_default())
                .collect(),
        }
    }
}

/// A `volumes` entry of a service: the short form `SOURCE:TARGET[:ro]`, or the long form.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum VolumeEntry {
    /// `name:/path`, `./dir:/path:ro`, ...
    Short(String),
    /// `{type: volume|bind, source, target, read_only}`.
    Long {
        /// `volume` or `bind`.
        #[serde(rename = "type")]
        kind: String,
        /// Volume name or host path.
        #[serde(default)]
        source: Option<String>,
        /// Path in the container.
        target: String,
        /// Mounted read-only.
        #[serde(default)]
        read_only: Option<bool>,
    },
}

/// What a service mounts, read from its `volumes` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// A named volume of the stack, or a directory of the host (a bind mount).
    pub source: MountSource,
    /// Path in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Where a mount comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountSource {
    /// A named volume (top-level `volumes`), one per stack instance.
    Volume(String),
    /// A host path as written (relative paths are resolved against the compose file).
    Bind(String),
}

impl VolumeEntry {
    /// What it mounts.
    pub fn mount(&self) -> Result<MountEntry> {
        match self {
            VolumeEntry::Short(m) => parse_mount(m),
            VolumeEntry::Long {
                kind,
                source,
                target,
                read_only,
            } => {
                let source = source.clone().unwrap_or_default();
                let source = match kind.as_str() {
                    "volume" if !source.is_empty() => MountSource::Volume(source),
                    "bind" if !source.is_empty() => MountSource::Bind(source),
                    "volume" | "bind" => bail!("volume entry of type {kind} has no source"),
                    other => bail!(
                        "volume type '{other}' is not supported: write a named volume (type: volume) or a bind mount (type: bind)"
                    ),
                };
                if !target.starts_with('/') {
                    bail!("volume target '{target}': the path in the container must be absolute");
                }
                Ok(MountEntry {
                    source,
                    target: target.clone(),
                    read_only: read_only.unwrap_or(false),
                })
            }
        }
    }
}

/// One compose service, as written (before interpolation). Keys it does not hold are
/// classified when the file loads (`keys`): ignored with a note, or refused.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Service {
    /// How to build its image.
    #[serde(default)]
    pub build: Option<Build>,
    /// Image to run when there is no `build`.
    #[serde(default)]
    pub image: Option<String>,
    /// Command override.
    #[serde(default)]
    pub command: Option<StrOrList>,
    /// Entrypoint override.
    #[serde(default)]
    pub entrypoint: Option<StrOrList>,
    /// Environment variables.
    #[serde(default)]
    pub environment: Option<KeyValues>,
    /// Environment files (folded into `environment` when the stack loads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_file: Option<EnvFiles>,
    /// Start-up dependencies.
    #[serde(default)]
    pub depends_on: Option<DependsOn>,
    /// Compose profiles: the service starts only for a run that needs one of them (an
    /// endpoint's `profiles` in x-racy), or with `up`, which starts every service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<String>>,
    /// Health check.
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// Published ports (any form); racy-matrix publishes only the target and the
    /// database, on 127.0.0.1 with a port the engine picks.
    #[serde(default)]
    pub ports: Option<Vec<serde_json::Value>>,
    /// Ports exposed to the other services (they reach every port on the stack's network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<Vec<Scalar>>,
    /// Named volumes and bind mounts, short or long syntax.
    #[serde(default)]
    pub volumes: Option<Vec<VolumeEntry>>,
    /// Replicas.
    #[serde(default)]
    pub deploy: Option<Deploy>,
    /// Memory limit, e.g. `512m`.
    #[serde(default)]
    pub mem_limit: Option<String>,
    /// User to run as.
    #[serde(default)]
    pub user: Option<String>,
    /// Capabilities to drop (e.g. `[ALL]`).
    #[serde(default)]
    pub cap_drop: Option<Vec<String>>,
    /// Capabilities to add back.
    #[serde(default)]
    pub cap_add: Option<Vec<String>>,
    /// Labels, kept beside racy-matrix's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<KeyValues>,
    /// Working directory of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Networks (every service joins the stack instance's one network; aliases are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Networks>,
    /// Allocate a terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Keep stdin open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_open: Option<bool>,
    /// Run an init process as PID 1 (racy-matrix's default: yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
}

impl Service {
    /// How many containers of this service run (`deploy.replicas`, 1 when unset); call on
    /// an interpolated service.
    pub fn replicas(&self) -> Result<u32> {
        let Some(r) = self.deploy.as_ref().and_then(|d| d.replicas.as_ref()) else {
            return Ok(1);
        };
        parse_replicas(&r.to_string())
    }

    /// What it mounts.
    pub fn mounts(&self) -> Result<Vec<MountEntry>> {
        self.volumes
            .iter()
            .flatten()
            .map(VolumeEntry::mount)
            .collect()
    }

    /// Its memory limit: `mem_limit`, else `deploy.resources.limits.memory`.
    pub fn memory_limit(&self) -> Option<String> {
        self.mem_limit.clone().or_else(|| {
            let limits = self.deploy.as_ref()?.resources.as_ref()?.limits.as_ref()?;
            limits.memory.as_ref().map(ToString::to_string)
        })
    }

    /// The engine's description of its container `name` (call on an interpolated
    /// service), placed as `at` says; the memory limit is [`DEFAULT_MEMORY`] when the
    /// service sets none.
    pub fn container_spec(&self, name: &str, at: &Placement) -> Result<ContainerSpec> {
        let healthcheck = self.health()?;
        let mut mounts = Vec::new();
        for m in self.mounts()? {
            let source = match &m.source {
                MountSource::Volume(vol) => MountSource::Volume(
                    at.volumes
                        .get(vol)
                        .ok_or_else(|| anyhow!("volume '{vol}' was not created"))?
                        .clone(),
                ),
                // made absolute when the stack loaded
                MountSource::Bind(path) => MountSource::Bind(path.clone()),
            };
            mounts.push(MountEntry { source, ..m });
        }
        let mut labels = self
            .labels
            .as_ref()
            .map(|l| l.pairs().into_iter().collect::<HashMap<_, _>>())
            .unwrap_or_default();
        labels.extend(at.labels.clone());
        let mut aliases = vec![at.alias.clone()];
        aliases.extend(self.networks.iter().flat_map(Networks::aliases));
        Ok(ContainerSpec {
            name: name.to_string(),
            image: at.image.clone(),
            cmd: self.command.as_ref().map(|c| c.words()),
            entrypoint: self.entrypoint.as_ref().map(|c| c.words()),
            env: self
                .environment
                .as_ref()
                .map(|e| {
                    e.pairs()
                        .into_iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect()
                })
                .unwrap_or_default(),
            labels,
            network: at.network.clone(),
            aliases,
            publish: at.publish.clone(),
            healthcheck,
            memory: Some(match self.memory_limit() {
                Some(m) => parse_bytes(&m)?,
                None => DEFAULT_MEMORY,
            }),
            user: self.user.clone(),
            cap_drop: self.cap_drop.clone(),
            cap_add: self.cap_add.clone(),
            mounts,
            working_dir: self.working_dir.clone(),
            tty: self.tty.unwrap_or(false),
            open_stdin: self.stdin_open.unwrap_or(false),
            init: self.init.unwrap_or(true),
        })
    }

    /// Its health check, interpreted (call on an interpolated service); `None` when it
    /// has no `healthcheck`.
    pub fn health(&self) -> Result<Option<Health>> {
        self.healthcheck
            .as_ref()
            .map(Healthcheck::interpret)
            .transpose()
    }
}

/// Where a deployment puts the containers of a service: what the stack file leaves to it.
#[derive(Clone, Debug)]
pub struct Placement<'a> {
    /// Image to run (built or found for the service).
    pub image: String,
    /// Labels every container carries.
    pub labels: HashMap<String, String>,
    /// Network to join.
    pub network: String,
    /// DNS alias on that network (the service's name).
    pub alias: String,
    /// Container ports published on 127.0.0.1.
    pub publish: Vec<u16>,
    /// Engine volume name by the stack's volume name.
    pub volumes: &'a BTreeMap<String, String>,
}

/// What a health check runs: compose's `test`, read once for both the engine and the
/// readiness probe racy-matrix runs itself, so that the two never disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthTest {
    /// Nothing: `[NONE]`, or a list that names nothing to run (empty, `[CMD]` alone, or a
    /// first word other than CMD, CMD-SHELL and NONE).
    Disabled,
    /// A program and its arguments, run without a shell: `[CMD, program, args...]`.
    Command(Vec<String>),
    /// A command line for the shell: a string, or `[CMD-SHELL, line]` (further words are
    /// joined to the line with spaces).
    Shell(String),
}

impl HealthTest {
    /// Reads compose's `test`.
    pub fn of(test: &StrOrList) -> HealthTest {
        let words = match test {
            StrOrList::One(line) => return HealthTest::Shell(line.clone()),
            StrOrList::List(_) => test.words(),
        };
        match words.split_first() {
            Some((kind, args)) if kind == "CMD" && !args.is_empty() => {
                HealthTest::Command(args.to_vec())
            }
            Some((kind, args)) if kind == "CMD-SHELL" => HealthTest::Shell(args.join(" ")),
            _ => HealthTest::Disabled,
        }
    }

    /// The engine's form of the test: `[NONE]`, `[CMD, ...]` or `[CMD-SHELL, line]`.
    pub fn engine_test(&self) -> Vec<String> {
        match self {
            HealthTest::Disabled => vec!["NONE".into()],
            HealthTest::Command(argv) => std::iter::once("CMD".to_string())
                .chain(argv.iter().cloned())
                .collect(),
            HealthTest::Shell(line) => vec!["CMD-SHELL".into(), line.clone()],
        }
    }

    /// The command racy-matrix runs in the container to see it ready, a shell line
    /// through `/bin/sh -c`; `None` when there is nothing to run.
    pub fn probe_command(&self) -> Option<Vec<String>> {
        match self {
            HealthTest::Disabled => None,
            HealthTest::Command(argv) => Some(argv.clone()),
            HealthTest::Shell(line) => Some(vec!["/bin/sh".into(), "-c".into(), line.clone()]),
        }
    }
}

/// A health check, interpreted: what it runs, and the engine's timings (unset ones take
/// the engine's defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// What it runs.
    pub test: HealthTest,
    /// Nanoseconds between two checks.
    pub interval_ns: Option<i64>,
    /// Nanoseconds one check may take.
    pub timeout_ns: Option<i64>,
    /// Nanoseconds after start during which failures do not count.
    pub start_period_ns: Option<i64>,
    /// Failures in a row before the container counts as unhealthy.
    pub retries: Option<i64>,
}

impl Healthcheck {
    /// What the check runs and its timings; an error names a timing that is no duration.
    pub fn interpret(&self) -> Result<Health> {
        let ns = |d: &Option<String>| d.as_deref().map(parse_duration_ns).transpose();
        let test = match (&self.test, self.disable) {
            (_, Some(true)) | (None, _) => HealthTest::Disabled,
            (Some(t), _) => HealthTest::of(t),
        };
        Ok(Health {
            test,
            interval_ns: ns(&self.interval)?,
            timeout_ns: ns(&self.timeout)?,
            start_period_ns: ns(&self.start_period)?,
            retries: self.retries,
        })
    }
}

/// What to run in one container, before the engine's form of it (the engine module
/// turns it into the Docker API's).
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command (None = image default).
    pub cmd: Option<Vec<String>>,
    /// Entrypoint (None = image default).
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` environment.
    pub env: Vec<String>,
    /// Labels (the run label is added by the caller).
    pub labels: HashMap<String, String>,
    /// Network to join.
    pub network: String,
    /// DNS aliases on that network.
    pub aliases: Vec<String>,
    /// Container ports published on 127.0.0.1 with a random host port.
    pub publish: Vec<u16>,
    /// Engine health check.
    pub healthcheck: Option<Health>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// User to run as.
    pub user: Option<String>,
    /// Capabilities dropped.
    pub cap_drop: Option<Vec<String>>,
    /// Capabilities added back.
    pub cap_add: Option<Vec<String>>,
    /// Named volumes (by engine name) and bind mounts (absolute host paths).
    pub mounts: Vec<MountEntry>,
    /// Working directory (None = the image's).
    pub working_dir: Option<String>,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub open_stdin: bool,
    /// Run an init process as PID 1.
    pub init: bool,
}

/// Parses a short-syntax volume entry `SOURCE:/path[:ro|rw]`: a named volume, or a bind
/// mount when the source is a path (`./src`, `/abs`, `~/dir`).
pub fn parse_mount(m: &str) -> Result<MountEntry> {
    let parts: Vec<&str> = m.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] if t.starts_with('/') => bail!(
            "volume '{m}' is an anonymous volume: name it (NAME:{t}) and declare NAME under the top-level `volumes`"
        ),
        [s, t] => (*s, *t, "rw"),
        [s, t, mode] => (*s, *t, *mode),
        _ => bail!("volume '{m}': expected NAME:/PATH, ./DIR:/PATH or either with :ro"),
    };
    if source.is_empty() {
        bail!("volume '{m}' has no source");
    }
    if !target.starts_with('/') {
        bail!("volume '{m}': the path in the container must be absolute");
    }
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        other => {
            // z, Z, cached, delegated... only say how the mount is shared
            let opts: Vec<&str> = other.split(',').collect();
            if opts.iter().all(|o| {
                matches!(
                    *o,
                    "z" | "Z" | "cached" | "delegated" | "consistent" | "ro" | "rw"
                )
            }) {
                opts.contains(&"ro")
            } else {
                bail!("volume '{m}': unknown mode '{other}' (ro or rw)")
            }
        }
    };
    let source = if source.starts_with(['.', '/', '~']) {
        MountSource::Bind(source.to_string())
    } else {
        MountSource::Volume(source.to_string())
    };
    Ok(MountEntry {
        source,
        target: target.to_string(),
        read_only,
    })
}

/// Parses a compose byte size (`512m`, `1g`, `1GB`, `1073741824`): a positive number with
/// an optional unit b, k, m or g.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)
        .ok_or_else(|| anyhow!("bad memory size '{s}'"))?;
    Ok((n * mult as f64) as i64)
}

/// Parses a replica count: a whole number from 1 to [`MAX_REPLICAS`].
pub fn parse_replicas(s: &str) -> Result<u32> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_REPLICAS).contains(&n) => Ok(n),
        _ => bail!("deploy.replicas must be a whole number from 1 to {MAX_REPLICAS}, got '{s}'"),
    }
}

/// Parses a compose duration (`1s`, `500ms`, `1m30s`; a bare number is seconds) to
/// nanoseconds.
pub fn parse_duration_ns(s: &str) -> Result<i64> {
    let mut total: f64 = 0.0;
    let mut num = String::new();
    let mut chars = s.trim().chars().peekable();
    if s.trim().is_empty() {
        bail!("empty duration");
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let v: f64 = num.parse().map_err(|_| anyhow!("bad duration '{s}'"))?;
        num.clear();
        total += v * match unit.as_str() {
            "ns" => 1.0,
            "us" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => bail!("bad duration unit '{unit}' in '{s}'"),
        };
    }
    if !num.is_empty() {
        let v: f64 = num.parse().map_err(|_| anyhow!("bad duration '{s}'"))?;
        total += v * 1e9;
    }
    Ok(total as i64)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1GB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        for bad in ["lots", "", "m", "-5m", "0", "NaNm", "infg", "1t"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replica_counts() {
        assert_eq!(parse_replicas(" 3 ").unwrap(), 3);
        for bad in ["-3", "0", "65", "2.5", "two", ""] {
            assert!(parse_replicas(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("1s").unwrap(), 1_000_000_000);
        assert_eq!(parse_duration_ns("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert!(parse_duration_ns("3 parsecs").is_err());
        assert!(parse_duration_ns("").is_err());
    }

    pub(crate) fn volume(name: &str, target: &str, read_only: bool) -> MountEntry {
        MountEntry {
            source: MountSource::Volume(name.into()),
            target: target.into(),
            read_only,
        }
    }

    fn list(words: &[&str]) -> StrOrList {
        StrOrList::List(words.iter().map(|w| Scalar::Str(w.to_string())).collect())
    }

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn health_tests_mean_the_same_to_the_engine_and_the_probe() {
        // a program without a shell
        let t = HealthTest::of(&StrOrList::List(vec![
            Scalar::Str("CMD".into()),
            Scalar::Str("sleep".into()),
            Scalar::Int(1),
        ]));
        assert_eq!(t, HealthTest::Command(strings(&["sleep", "1"])));
        assert_eq!(t.engine_test(), strings(&["CMD", "sleep", "1"]));
        assert_eq!(t.probe_command(), Some(strings(&["sleep", "1"])));
        // a shell line, written as a string or after CMD-SHELL (whose words are joined)
        let line = "curl -f localhost || exit 1";
        for test in [
            StrOrList::One(line.into()),
            list(&["CMD-SHELL", line]),
            list(&["CMD-SHELL", "curl -f", "localhost || exit 1"]),
        ] {
            let t = HealthTest::of(&test);
            assert_eq!(t, HealthTest::Shell(line.into()), "{test:?}");
            assert_eq!(t.engine_test(), strings(&["CMD-SHELL", line]));
            assert_eq!(t.probe_command(), Some(strings(&["/bin/sh", "-c", line])));
        }
        // nothing to run: the engine is told so, and the probe runs nothing
        for test in [
            list(&["NONE"]),
            list(&[]),
            list(&["CMD"]),
            list(&["curl", "-f", "localhost"]),
        ] {
            let t = HealthTest::of(&test);
            assert_eq!(t, HealthTest::Disabled, "{test:?}");
            assert_eq!(t.engine_test(), strings(&["NONE"]));
            assert_eq!(t.probe_command(), None);
        }
    }

    #[test]
    fn a_disabled_or_testless_check_runs_nothing() {
        let check = |test: Option<StrOrList>, disable| Healthcheck {
            test,
            disable,
            interval: None,
            timeout: None,
            retries: None,
            start_period: None,
        };
        let shell = Some(StrOrList::One("pg_isready".into()));
        for (test, disable) in [
            (shell.clone(), Some(true)),
            (None, None),
            (None, Some(false)),
        ] {
            let h = check(test, disable).interpret().unwrap();
            assert_eq!(h.test, HealthTest::Disabled);
        }
        let h = check(shell, Some(false)).interpret().unwrap();
        assert_eq!(h.test, HealthTest::Shell("pg_isready".into()));
    }

    #[test]
    fn health_timings_are_read_once() {
        let check = Healthcheck {
            test: Some(list(&["CMD", "true"])),
            disable: None,
            interval: Some("1s".into()),
            timeout: Some("1m30s".into()),
            retries: Some(60),
            start_period: None,
        };
        let health = check.interpret().unwrap();
        assert_eq!(
            health,
            Health {
                test: HealthTest::of(&list(&["CMD", "true"])),
                interval_ns: Some(1_000_000_000),
                timeout_ns: Some(90_000_000_000),
                retries: Some(60),
                start_period_ns: None,
            }
        );
        assert_eq!(health.test.engine_test(), strings(&["CMD", "true"]));
        let soon = Healthcheck {
            start_period: Some("soon".into()),
            ..check
        };
        let e = soon.interpret().unwrap_err().to_string();
        assert!(e.contains("'soon'"), "{e}");
    }

    /// A service with every field the spec reads, and the volumes its deployment made.
    fn app() -> (Service, BTreeMap<String, String>) {
        let service = serde_json::from_value(serde_json::json!({
            "image": "app",
            "command": ["serve", "--workers", 3],
            "environment": ["MODE=rc", "EMPTY"],
            "volumes": ["shared:/shared", "data:/data:ro"],
            "healthcheck": {"test": "true", "interval": "2s"},
            "mem_limit": "512m",
            "cap_drop": ["ALL"],
        }))
        .unwrap();
        let volumes = BTreeMap::from([
            ("shared".to_string(), "net-shared".to_string()),
            ("data".to_string(), "net-data".to_string()),
        ]);
        (service, volumes)
    }

    fn placement(volumes: &BTreeMap<String, String>) -> Placement<'_> {
        Placement {
            image: "app:1".into(),
            labels: HashMap::from([("k".to_string(), "v".to_string())]),
            network: "net".into(),
            alias: "app".into(),
            publish: vec![8000],
            volumes,
        }
    }

    #[test]
    fn a_service_becomes_its_container_spec() {
        let (service, volumes) = app();
        let spec = service
            .container_spec("app-1", &placement(&volumes))
            .unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.image.as_str()),
            ("app-1", "app:1")
        );
        assert_eq!(spec.cmd, Some(strings(&["serve", "--workers", "3"])));
        assert_eq!(spec.entrypoint, None);
        assert_eq!(spec.env, strings(&["EMPTY=", "MODE=rc"]));
        assert_eq!(
            (spec.aliases, spec.publish),
            (strings(&["app"]), vec![8000])
        );
        assert_eq!(spec.memory, Some(512 << 20));
        assert_eq!(spec.cap_drop, Some(strings(&["ALL"])));
        assert_eq!(
            spec.mounts,
            vec![
                volume("net-shared", "/shared", false),
                volume("net-data", "/data", true)
            ]
        );
        let health = spec.healthcheck.unwrap();
        assert_eq!(health.test.engine_test(), strings(&["CMD-SHELL", "true"]));
        assert_eq!(health.interval_ns, Some(2_000_000_000));
    }

    #[test]
    fn what_a_service_leaves_out_takes_the_defaults() {
        let (service, volumes) = app();
        let bare = Service {
            mem_limit: None,
            healthcheck: None,
            volumes: None,
            ..service.clone()
        };
        let spec = bare.container_spec("app-2", &placement(&volumes)).unwrap();
        assert_eq!(spec.memory, Some(DEFAULT_MEMORY));
        assert!(spec.healthcheck.is_none() && spec.mounts.is_empty());
        // a volume the deployment did not create is refused
        let few = BTreeMap::from([("shared".to_string(), "net-shared".to_string())]);
        let e = service
            .container_spec("app-3", &placement(&few))
            .unwrap_err();
        assert_eq!(e.to_string(), "volume 'data' was not created");
    }
}
