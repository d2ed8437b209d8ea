//! Which compose keys racy-matrix honours, which it ignores (with a note, once), and which
//! it refuses (with a located error saying what to write instead), read from the file
//! with the location of every key so that nothing reaches the user as a raw serde message.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::input::source::{InputError, Source, referenced};

/// A YAML tree that keeps where each mapping key is written.
#[derive(Debug)]
pub(super) enum Node {
    /// A mapping: its keys, where they are, and their values.
    Map(Vec<(Spanned<String>, Node)>),
    /// A sequence (its elements are read past).
    Seq,
    /// Anything else.
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    out.push((k, map.next_value::<Node>()?));
                }
                Ok(Node::Map(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                while seq.next_element::<Node>()?.is_some() {}
                Ok(Node::Seq)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Node, D2::Error> {
                Node::deserialize(d)
            }
        }
        d.deserialize_any(V)
    }
}

/// What racy-matrix does with a service key.
enum Verdict {
    /// Read and honoured.
    Honoured,
    /// Read past, with the note said once.
    Ignored(&'static str),
    /// Refused, with what to write instead.
    Refused(&'static str),
}

fn service_key(key: &str) -> Verdict {
    use Verdict::*;
    match key {
        "build" | "image" | "command" | "entrypoint" | "environment" | "env_file"
        | "depends_on" | "healthcheck" | "ports" | "expose" | "volumes" | "deploy"
        | "mem_limit" | "user" | "cap_drop" | "cap_add" | "labels" | "working_dir" | "networks"
        | "tty" | "stdin_open" | "init" | "profiles" => Honoured,
        "container_name" => Ignored(
            "racy-matrix names containers per run (racy-<run>-<service>-<n>), so that runs and replicas never collide",
        ),
        "restart" => Ignored(
            "racy-matrix never restarts a service itself: a container that restarts during a cell fails that cell",
        ),
        "hostname" | "domainname" => {
            Ignored("services reach each other by service name on the stack's network")
        }
        "logging" | "stop_signal" | "stop_grace_period" | "pull_policy" | "platform"
        | "mem_reservation" | "cpus" | "cpu_shares" | "cpuset" | "ulimits" | "shm_size"
        | "oom_score_adj" | "security_opt" | "read_only" | "tmpfs" | "sysctls" | "dns"
        | "dns_search" | "extra_hosts" | "stop_timeout" => Ignored(
            "it does not change what a burst measures; racy-matrix runs the container with its own defaults",
        ),
        "privileged" => Refused(
            "racy-matrix runs every service unprivileged: give it the capabilities it needs with cap_add instead",
        ),
        "network_mode" | "pid" | "ipc" | "userns_mode" | "cgroup_parent" => Refused(
            "every service of a stack instance shares one private network and no host namespace: remove it",
        ),
        "links" | "external_links" => Refused(
            "services reach each other by service name on the stack's network: remove it (depends_on says the start order)",
        ),
        "extends" => Refused("write the extended service's settings into the service itself"),
        "scale" => Refused("write deploy.replicas (racy-matrix reads that)"),
        "secrets" | "configs" => {
            Refused("pass the value through environment or env_file, or a bind mount of the file")
        }
        "devices" | "device_cgroup_rules" | "gpus" | "runtime" | "isolation" | "volumes_from" => {
            Refused("racy-matrix cannot provide it to a stack instance: remove it")
        }
        _ => Refused(
            "racy-matrix does not know this key, so it cannot tell what it would change: remove it, or name it x-... to keep it as an extension",
        ),
    }
}

/// Top-level keys: `name`, `version`, `services`, `volumes`, `networks`, `x-*`; in a
/// racy.yaml also `compose`.
fn top_key(key: &str, racy: bool) -> Verdict {
    use Verdict::*;
    match key {
        "services" | "volumes" | "networks" | "name" => Honoured,
        "compose" if racy => Honoured,
        "version" => Ignored("it is obsolete in the compose spec"),
        "secrets" | "configs" => {
            Refused("pass the value through environment or env_file, or a bind mount of the file")
        }
        "include" => Refused(
            "name the included files in racy.yaml's `compose:` list instead (they are merged in order)",
        ),
        _ => Refused("racy-matrix does not know this top-level key: remove it, or name it x-..."),
    }
}

/// Keys under a service's `healthcheck`, `build` and long-form `depends_on` entries.
fn nested_ok(parent: &str, key: &str) -> bool {
    match parent {
        "healthcheck" => matches!(
            key,
            "test"
                | "interval"
                | "timeout"
                | "retries"
                | "start_period"
                | "start_interval"
                | "disable"
        ),
        "build" => matches!(key, "context" | "dockerfile" | "args"),
        _ => true,
    }
}

/// Checks the keys of one file (a compose file, or a racy.yaml when `racy`); returns the
/// notes for ignored keys (one per key name, with the first place it is written), or the
/// error of the first refused key.
pub(super) fn check(src: Source, racy: bool) -> Result<Vec<String>, InputError> {
    let root: Node = crate::input::source::parse_yaml(src.text, src.file)?;
    let Node::Map(top) = root else {
        return Err(src.whole("a compose file is a mapping with a `services` key"));
    };
    let mut notes = Vec::new();
    let mut said = BTreeSet::new();
    let mut note = |key: &Spanned<String>, path: String, why: &str| {
        if said.insert(key.value.clone()) {
            let (line, column) = referenced(key);
            notes.push(format!(
                "{}:{line}:{column}: {path} is ignored: {why}",
                src.file.display()
            ));
        }
    };
    for (k, v) in &top {
        if k.value.starts_with("x-") {
            continue;
        }
        match top_key(&k.value, racy) {
            Verdict::Honoured => {}
            Verdict::Ignored(why) => note(k, k.value.clone(), why),
            Verdict::Refused(fix) => return Err(refused(src, k, &k.value, fix)),
        }
        if k.value == "services"
            && let Node::Map(services) = v
        {
            for (svc, body) in services {
                let Node::Map(keys) = body else { continue };
                for (key, value) in keys {
                    if key.value.starts_with("x-") {
                        continue;
                    }
                    let path = format!("services.{}.{}", svc.value, key.value);
                    match service_key(&key.value) {
                        Verdict::Honoured => nested(src, &path, &key.value, value)?,
                        Verdict::Ignored(why) => note(key, path, why),
                        Verdict::Refused(fix) => return Err(refused(src, key, &path, fix)),
                    }
                }
            }
        }
    }
    Ok(notes)
}

fn nested(src: Source, path: &str, parent: &str, value: &Node) -> Result<(), InputError> {
    let Node::Map(keys) = value else {
        return Ok(());
    };
    for (k, _) in keys {
        if !k.value.starts_with("x-") && !nested_ok(parent, &k.value) {
            let fix = match parent {
                "build" => "racy-matrix builds with context, dockerfile and args only: remove it",
                _ => "remove it",
            };
            return Err(refused(src, k, &format!("{path}.{}", k.value), fix));
        }
    }
    Ok(())
}

fn refused(src: Source, key: &Spanned<String>, path: &str, fix: &str) -> InputError {
    src.at(key, format!("{path} is not supported: {fix}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn run(text: &str) -> Result<Vec<String>, InputError> {
        check(
            Source {
                file: Path::new("app/docker-compose.yml"),
                text,
            },
            false,
        )
    }

    #[test]
    fn real_world_keys_load_and_the_ignored_ones_say_so_once() {
        let notes = run(
            "version: \"3.8\"\nname: shop\nx-common: &c {a: 1}\nservices:\n  web:\n    image: w\n    container_name: shop-web\n    restart: unless-stopped\n    expose: [\"8000\"]\n    env_file: .env\n    x-note: hi\n    healthcheck: {test: curl -f localhost, disable: false}\n  db:\n    image: d\n    restart: always\n",
        )
        .unwrap();
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].starts_with("app/docker-compose.yml:1:1: version is ignored"));
        assert!(notes[1].starts_with(
            "app/docker-compose.yml:7:5: services.web.container_name is ignored: racy-matrix names"
        ));
        assert!(notes[2].contains(":8:5: services.web.restart is ignored"));
    }

    #[test]
    fn refused_keys_are_located_and_say_what_to_write() {
        let e = run("services:\n  web:\n    image: w\n    network_mode: host\n").unwrap_err();
        assert_eq!((e.line, e.column), (4, 5), "{e}");
        assert!(
            e.message
                .starts_with("services.web.network_mode is not supported: every service")
        );
        let e = run("services:\n  web:\n    image: w\n    scale: 3\n").unwrap_err();
        assert!(e.message.contains("write deploy.replicas"), "{e}");
        let e = run("services:\n  web:\n    image: w\n    frobnicate: 1\n").unwrap_err();
        assert!(e.message.contains("does not know this key"), "{e}");
        let e = run("services:\n  w:\n    build: {context: ., target: dev}\n").unwrap_err();
        assert_eq!((e.line, e.column), (3, 25), "{e}");
        assert!(
            e.message
                .starts_with("services.w.build.target is not supported"),
            "{e}"
        );
        let e = run("secrets: {}\nservices: {}\n").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1), "{e}");
    }
}
