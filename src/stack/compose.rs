//! Compose services as racy-matrix reads them: the subset of the compose spec a stack
//! file's `services` may use, what their values mean (durations, byte sizes, replica
//! counts, volume mounts, the health check), and a service turned into the engine's
//! description of its container.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Result, anyhow, bail};
use bollard::models::HealthConfig;
use serde::{Deserialize, Serialize};

use crate::engine::ContainerSpec;

/// The most containers one service may run.
pub const MAX_REPLICAS: u32 = 64;
/// Memory limit for services that set none.
pub const DEFAULT_MEMORY: i64 = 1 << 30;

pub use crate::input::Scalar;

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
            StrOrList::One(s) => s.split_whitespace().map(str::to_string).collect(),
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
        /// Dockerfile path inside the context.
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
    /// Compose v2's "restart with the dependency"; racy-matrix always does (DESIGN §3).
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
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or a shell string.
    pub test: StrOrList,
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

/// Compose `deploy` (only `replicas` is read).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Deploy {
    /// Number of containers of the service.
    #[serde(default)]
    pub replicas: Option<Scalar>,
}

/// One compose service, as written (before interpolation).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
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
    /// Start-up dependencies.
    #[serde(default)]
    pub depends_on: Option<DependsOn>,
    /// Health check.
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// Published ports; racy-matrix publishes only the target and the database, on 127.0.0.1.
    #[serde(default)]
    pub ports: Option<Vec<Scalar>>,
    /// Named volumes, short syntax `name:/path` or `name:/path:ro` (no bind mounts).
    #[serde(default)]
    pub volumes: Option<Vec<String>>,
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

    /// The named volumes it mounts: (volume, path in the container, read-only).
    pub fn mounts(&self) -> Result<Vec<(String, String, bool)>> {
        self.volumes
            .iter()
            .flatten()
            .map(|m| parse_mount(m))
            .collect()
    }

    /// The engine's description of its container `name` (call on an interpolated
    /// service), placed as `at` says; the memory limit is [`DEFAULT_MEMORY`] when the
    /// service sets none.
    pub fn container_spec(&self, name: &str, at: &Placement) -> Result<ContainerSpec> {
        let healthcheck = self.health()?.map(|h| h.engine_config());
        let mut mounts = Vec::new();
        for (vol, path, read_only) in self.mounts()? {
            let volume = at
                .volumes
                .get(&vol)
                .ok_or_else(|| anyhow!("volume '{vol}' was not created"))?;
            mounts.push((volume.clone(), path, read_only));
        }
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
            labels: at.labels.clone(),
            network: at.network.clone(),
            aliases: vec![at.alias.clone()],
            publish: at.publish.clone(),
            healthcheck,
            memory: Some(match &self.mem_limit {
                Some(m) => parse_bytes(m)?,
                None => DEFAULT_MEMORY,
            }),
            user: self.user.clone(),
            cap_drop: self.cap_drop.clone(),
            cap_add: self.cap_add.clone(),
            mounts,
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
        Ok(Health {
            test: HealthTest::of(&self.test),
            interval_ns: ns(&self.interval)?,
            timeout_ns: ns(&self.timeout)?,
            start_period_ns: ns(&self.start_period)?,
            retries: self.retries,
        })
    }
}

impl Health {
    /// The check as the engine takes it.
    pub fn engine_config(&self) -> HealthConfig {
        HealthConfig {
            test: Some(self.test.engine_test()),
            interval: self.interval_ns,
            timeout: self.timeout_ns,
            retries: self.retries,
            start_period: self.start_period_ns,
            start_interval: None,
        }
    }
}

/// Parses a short-syntax volume entry `name:/path[:ro|rw]`; bind mounts are refused.
pub fn parse_mount(m: &str) -> Result<(String, String, bool)> {
    let parts: Vec<&str> = m.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [s, t] => (*s, *t, "rw"),
        [s, t, mode] => (*s, *t, *mode),
        _ => bail!("volume '{m}': expected NAME:/PATH or NAME:/PATH:ro"),
    };
    if source.is_empty()
        || source.starts_with('.')
        || source.starts_with('/')
        || source.starts_with('~')
    {
        bail!("volume '{m}': only named volumes are supported, not bind mounts");
    }
    if !target.starts_with('/') {
        bail!("volume '{m}': the path in the container must be absolute");
    }
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        other => bail!("volume '{m}': unknown mode '{other}' (ro or rw)"),
    };
    Ok((source.to_string(), target.to_string(), read_only))
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
mod tests {
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
    fn health_timings_are_read_once() {
        let check = Healthcheck {
            test: list(&["CMD", "true"]),
            interval: Some("1s".into()),
            timeout: Some("1m30s".into()),
            retries: Some(60),
            start_period: None,
        };
        let health = check.interpret().unwrap();
        assert_eq!(
            health.engine_config(),
            HealthConfig {
                test: Some(strings(&["CMD", "true"])),
                interval: Some(1_000_000_000),
                timeout: Some(90_000_000_000),
                retries: Some(60),
                start_period: None,
                start_interval: None,
            }
        );
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
                ("net-shared".into(), "/shared".into(), false),
                ("net-data".into(), "/data".into(), true)
            ]
        );
        let health = spec.healthcheck.unwrap();
        assert_eq!(health.test, Some(strings(&["CMD-SHELL", "true"])));
        assert_eq!(health.interval, Some(2_000_000_000));
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
