//! The one place that talks to the Docker Engine (bollard): connection and version
//! negotiation, networks, containers, images, logs, labels and cleanup.

use crate::deploy::progress::{Progress, Step};
use crate::input::stack::{ContainerSpec, Health, MountEntry, MountSource};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig, Mount,
    MountType, NetworkCreateRequest, NetworkingConfig, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use futures_util::StreamExt;

/// Label every object racy-matrix creates carries; its value is the run id.
pub const RUN_LABEL: &str = "racy-matrix.run";
/// Label naming the stack of a container.
pub const STACK_LABEL: &str = "racy-matrix.stack";
/// Label naming the compose service of a container.
pub const SERVICE_LABEL: &str = "racy-matrix.service";
/// Label holding the pid of the racy-matrix process that owns the object.
pub const PID_LABEL: &str = "racy-matrix.pid";
/// Label holding the host name of the machine that owns the object.
pub const HOST_LABEL: &str = "racy-matrix.host";
/// Label: when the process that made the object started (see [`process_started`]).
pub const STARTED_LABEL: &str = "racy-matrix.started";
/// Label of the objects of a run whose stacks stay up after it (`run --keep-up`).
pub const KEEP_LABEL: &str = "racy-matrix.keep";

/// The oldest Engine API racy-matrix speaks.
const MIN_API: (u32, u32) = (1, 41);

/// A connection to the Docker Engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    /// The negotiated API version, e.g. "1.41".
    pub api_version: String,
    /// Creations (networks, volumes, containers) sent to the daemon and not yet answered.
    creating: Arc<Creating>,
    /// Whether the engine runs on this host (its socket is local, not `tcp://`/`ssh://`).
    pub local: bool,
    /// How requests reach the stacks this engine runs.
    pub route: crate::input::route::RouteChoice,
    /// Where it was reached: the URL given, or [`LOCAL_ENGINE`] for the default socket.
    pub url: String,
}

/// A command running in a container with its input and output attached
/// ([`Engine::exec_attached`]).
pub struct AttachedExec {
    /// Its standard output, chunk by chunk.
    pub output:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>,
    /// Its standard input.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// How a run names the engine of the default local socket.
pub const LOCAL_ENGINE: &str = "local";

/// Counts creations in flight. A creation runs as its own task, so that cancelling the
/// caller (Ctrl-C while a stack starts) does not lose track of an object the daemon is
/// still making: removal waits for these first, then lists what carries the label.
#[derive(Debug, Default)]
struct Creating {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Held by one creation; the count drops when the creation is answered, or fails.
struct CreatingGuard(Arc<Creating>);

impl Drop for CreatingGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Where a container's port is reached (see [`Engine::whereabouts`]).
#[derive(Clone, Copy, Debug)]
pub struct Whereabouts {
    /// The host port on 127.0.0.1.
    pub published: Option<u16>,
    /// The container's address on the network.
    pub address: Option<std::net::IpAddr>,
    /// The network's gateway.
    pub gateway: Option<std::net::IpAddr>,
}

/// A health check as the engine takes it.
fn health_config(h: &Health) -> HealthConfig {
    HealthConfig {
        test: Some(h.test.engine_test()),
        interval: h.interval_ns,
        timeout: h.timeout_ns,
        retries: h.retries,
        start_period: h.start_period_ns,
        start_interval: None,
    }
}

/// The engine's form of a container's mounts (`None` for none).
fn engine_mounts(mounts: &[MountEntry]) -> Option<Vec<Mount>> {
    (!mounts.is_empty()).then(|| {
        mounts
            .iter()
            .map(|m| {
                let (typ, source) = match &m.source {
                    MountSource::Volume(v) => (MountType::VOLUME, v),
                    MountSource::Bind(p) => (MountType::BIND, p),
                };
                Mount {
                    typ: Some(typ),
                    source: Some(source.clone()),
                    target: Some(m.target.clone()),
                    read_only: Some(m.read_only),
                    ..Default::default()
                }
            })
            .collect()
    })
}

/// What a command run inside a container printed, and how it ended.
#[derive(Clone, Debug, Default)]
pub struct ExecOutput {
    /// Exit code (None if the engine did not report one).
    pub exit_code: Option<i64>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// State of a container as the engine reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerState {
    /// The container runs.
    pub running: bool,
    /// Exit code once it stopped.
    pub exit_code: Option<i64>,
    /// Engine health status, when the container has a health check.
    pub health: Option<String>,
    /// The kernel killed it for exceeding its memory limit.
    pub oom_killed: bool,
    /// How many times the engine restarted it (its restart policy).
    pub restart_count: i64,
}

/// A kind of object racy-matrix creates and labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// A container.
    Container,
    /// A network.
    Network,
    /// A named volume.
    Volume,
}

impl Object {
    /// Every kind, in the order a removal goes (containers first: they hold the others).
    pub const ALL: [Object; 3] = [Object::Container, Object::Network, Object::Volume];
}

/// Whether an engine error says the object does not exist (HTTP 404).
fn is_missing(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Whether `DOCKER_HOST` (unset: the default socket) names an engine on this host: a
/// socket, or tcp to a loopback address. (A remote engine's networks may use the same
/// addresses as this host's, so only a local one is taken at its word.)
fn is_local_host(docker_host: Option<&str>) -> bool {
    let Some(h) = docker_host.map(str::trim).filter(|h| !h.is_empty()) else {
        return true;
    };
    if h.starts_with("unix://") || h.starts_with("npipe://") {
        return true;
    }
    let Some(rest) = h.strip_prefix("tcp://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A removal's result where an object already gone counts as removed.
fn gone_is_fine(r: Result<(), bollard::errors::Error>) -> Result<(), bollard::errors::Error> {
    match r {
        Err(e) if is_missing(&e) => Ok(()),
        other => other,
    }
}

impl Engine {
    /// Connects to the engine `DOCKER_HOST` names (unset: the local socket) and negotiates
    /// the API version; fails with one clear message when the daemon is missing, dead or
    /// too old.
    pub async fn connect() -> Result<Engine> {
        Engine::connect_to(None).await
    }

    /// Connects to the engine at `url` (`unix://`, `tcp://` — with TLS when
    /// `DOCKER_TLS_VERIFY` is set, certificates from `DOCKER_CERT_PATH` — or `ssh://`), or
    /// to the one `DOCKER_HOST` names when `url` is `None`.
    pub async fn connect_to(url: Option<&str>) -> Result<Engine> {
        let from_env = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty());
        let named = url.map(str::to_string).or(from_env);
        let docker = match &named {
            Some(u) => Docker::connect_with_host(u).with_context(|| {
                format!("cannot use the Docker Engine at {u} (unix://, tcp:// or ssh:// URLs work)")
            })?,
            None => Docker::connect_with_local_defaults().context(
                "cannot reach the Docker Engine (is it installed and is DOCKER_HOST right?)",
            )?,
        };
        let which = named
            .as_deref()
            .map_or("the Docker Engine".to_string(), |u| {
                format!("the Docker Engine at {u}")
            });
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| anyhow!("{which} did not answer within 10 s"))?
            .with_context(|| {
                format!("{which} does not answer: is the daemon running? (try `docker info`)")
            })?;
        let version = docker
            .version()
            .await
            .with_context(|| format!("{which} does not answer: is the daemon running?"))?;
        let api = version.api_version.unwrap_or_default();
        let parsed: Vec<u32> = api.split('.').filter_map(|p| p.parse().ok()).collect();
        if parsed.len() < 2 || (parsed[0], parsed[1]) < MIN_API {
            bail!(
                "the Docker Engine speaks API {api}; racy-matrix needs {}.{} or newer",
                MIN_API.0,
                MIN_API.1
            );
        }
        let api_version = docker.client_version().to_string();
        Ok(Engine {
            docker,
            api_version,
            creating: Arc::default(),
            local: is_local_host(named.as_deref()),
            url: named.unwrap_or_else(|| LOCAL_ENGINE.to_string()),
            route: Default::default(),
        })
    }

    /// Checks that the engine answers, waiting up to `patience` for a daemon that is
    /// restarting.
    pub async fn ping(&self, patience: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match self.docker.ping().await {
                Ok(_) => return Ok(()),
                Err(e) if std::time::Instant::now() >= deadline => {
                    return Err(e).context("the Docker Engine stopped answering");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Whether an image with this reference exists locally.
    pub async fn image_exists(&self, reference: &str) -> Result<bool> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(e).context("inspecting image"),
        }
    }

    /// Copies image `tag` from this engine to `to` (as `docker save | docker load`), unless
    /// `to` has it already or this engine does not (the other engine may pull it itself).
    /// Images are tagged by their content, so a tag found is the image wanted.
    pub async fn copy_image(
        &self,
        to: &Engine,
        tag: &str,
        progress: &mut Progress<'_>,
    ) -> Result<()> {
        if to.image_exists(tag).await? || !self.image_exists(tag).await? {
            return Ok(());
        }
        progress(Step::Copying {
            image: tag,
            to: &to.url,
        });
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(16);
        let (src, name) = (self.docker.clone(), tag.to_string());
        let export = tokio::spawn(async move {
            let mut chunks = std::pin::pin!(src.export_image(&name));
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(std::io::Error::other);
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let opts = bollard::query_parameters::ImportImageOptionsBuilder::default()
            .quiet(true)
            .build();
        let mut loaded = std::pin::pin!(to.docker.import_image_stream(opts, body, None));
        let mut outcome = Ok(());
        while let Some(info) = loaded.next().await {
            match info {
                Ok(bollard::models::BuildInfo {
                    error_detail: Some(d),
                    ..
                }) => outcome = Err(anyhow!("{}", d.message.unwrap_or_default())),
                Ok(_) => {}
                Err(e) => outcome = Err(e.into()),
            }
        }
        let _ = export.await;
        outcome.with_context(|| format!("copying image {tag} to the engine at {}", to.url))?;
        if !to.image_exists(tag).await? {
            bail!(
                "copying image {tag} to the engine at {}: it is not there afterwards",
                to.url
            );
        }
        Ok(())
    }

    /// Tries to pull an image within `limit`; false when it cannot be had.
    pub async fn try_pull(&self, reference: &str, limit: Duration) -> bool {
        let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
        let opts = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let pull = async {
            let mut s = self.docker.create_image(Some(opts), None, None);
            while let Some(item) = s.next().await {
                item?;
            }
            Ok::<_, bollard::errors::Error>(())
        };
        matches!(tokio::time::timeout(limit, pull).await, Ok(Ok(())))
    }

    /// Imports a root file system tarball as image `repo:tag` (what `docker import` does).
    pub async fn import_rootfs(&self, tarball: Vec<u8>, repo: &str, tag: &str) -> Result<()> {
        let opts = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .build();
        let mut s =
            self.docker
                .create_image(Some(opts), Some(bollard::body_full(tarball.into())), None);
        while let Some(item) = s.next().await {
            item.context("importing the base image")?;
        }
        Ok(())
    }

    /// Builds an image from a tar of its context; `progress` gets each output line.
    pub async fn build_image(
        &self,
        context_tar: Vec<u8>,
        dockerfile: &str,
        tag: &str,
        args: HashMap<String, String>,
        labels: HashMap<String, String>,
        progress: &mut Progress<'_>,
    ) -> Result<()> {
        let opts = BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile)
            .t(tag)
            .rm(true)
            .forcerm(true)
            .buildargs(&args)
            .labels(&labels)
            .build();
        let mut s =
            self.docker
                .build_image(opts, None, Some(bollard::body_full(context_tar.into())));
        let mut tail: Vec<String> = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(info) => {
                    if let Some(line) = info.stream.as_deref().or(info.status.as_deref()) {
                        for l in line.lines().filter(|l| !l.trim().is_empty()) {
                            progress(Step::Building {
                                service: None,
                                line: l.trim_end(),
                            });
                            tail.push(l.to_string());
                            if tail.len() > 15 {
                                tail.remove(0);
                            }
                        }
                    }
                    if let Some(err) = info.error_detail.and_then(|d| d.message) {
                        bail!(
                            "building {tag} failed: {err}\n--- last build output ---\n{}",
                            tail.join("\n")
                        );
                    }
                }
                Err(e) => bail!(
                    "building {tag} failed: {e}\n--- last build output ---\n{}",
                    tail.join("\n")
                ),
            }
        }
        if !self.image_exists(tag).await? {
            bail!("building {tag} ended without an image");
        }
        Ok(())
    }

    /// Creates a labelled bridge network named `name`.
    pub async fn create_network(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        let docker = self.docker.clone();
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels),
            ..Default::default()
        };
        self.creation(async move { docker.create_network(request).await.map(|_| ()) })
            .await
            .with_context(|| format!("creating network {name}"))
    }

    /// Runs one creation to its end even if the caller is cancelled meanwhile, counted
    /// in `creating` until the daemon has answered.
    async fn creation<T: Send + 'static>(
        &self,
        call: impl std::future::Future<Output = Result<T, bollard::errors::Error>> + Send + 'static,
    ) -> Result<T> {
        self.creating.count.fetch_add(1, Ordering::SeqCst);
        let guard = CreatingGuard(self.creating.clone());
        let task = tokio::spawn(async move {
            let out = call.await;
            drop(guard);
            out
        });
        Ok(task.await.context("a creation task failed")??)
    }

    /// Waits (at most `limit`) until every creation sent to the daemon has been answered,
    /// so that a listing by label sees all of them.
    pub async fn creations_settled(&self, limit: Duration) {
        let wait = async {
            loop {
                let idle = self.creating.idle.notified();
                if self.creating.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }

    /// Creates and starts a container; returns its id.
    pub async fn run_container(&self, spec: &ContainerSpec) -> Result<String> {
        let mut bindings = HashMap::new();
        let mut exposed = Vec::new();
        for port in &spec.publish {
            let key = format!("{port}/tcp");
            exposed.push(key.clone());
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            );
        }
        let mut endpoints = HashMap::new();
        endpoints.insert(
            spec.network.clone(),
            EndpointSettings {
                aliases: Some(spec.aliases.clone()),
                ..Default::default()
            },
        );
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.cmd.clone(),
            entrypoint: spec.entrypoint.clone(),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone()),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            healthcheck: spec.healthcheck.as_ref().map(health_config),
            user: spec.user.clone(),
            working_dir: spec.working_dir.clone(),
            tty: Some(spec.tty),
            open_stdin: Some(spec.open_stdin),
            host_config: Some(HostConfig {
                network_mode: Some(spec.network.clone()),
                port_bindings: Some(bindings),
                memory: spec.memory,
                init: Some(spec.init),
                privileged: Some(false),
                cap_drop: spec.cap_drop.clone(),
                cap_add: spec.cap_add.clone(),
                security_opt: Some(vec!["no-new-privileges".into()]),
                mounts: engine_mounts(&spec.mounts),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(endpoints),
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let docker = self.docker.clone();
        let created = self
            .creation(async move { docker.create_container(Some(opts), body).await })
            .await
            .with_context(|| format!("creating container {} from {}", spec.name, spec.image))?;
        self.docker
            .start_container(
                &created.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .with_context(|| format!("starting container {}", spec.name))?;
        Ok(created.id)
    }

    /// Where a container's `port` is reached: the host port (on 127.0.0.1) it is
    /// published on, the container's address on `network`, and that network's gateway
    /// (each `None` where the engine reports none).
    pub async fn whereabouts(&self, id: &str, port: u16, network: &str) -> Result<Whereabouts> {
        let info = self
            .docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await?;
        let settings = info.network_settings.unwrap_or_default();
        let key = format!("{port}/tcp");
        let published = settings
            .ports
            .and_then(|p| p.get(&key).cloned().flatten())
            .and_then(|b| {
                b.into_iter()
                    .find_map(|b| b.host_port.and_then(|p| p.parse().ok()))
            });
        let on = settings.networks.and_then(|mut n| n.remove(network));
        let ip = |s: Option<String>| s.and_then(|s| s.parse().ok());
        let (address, gateway) = match on {
            Some(e) => (ip(e.ip_address), ip(e.gateway)),
            None => (None, None),
        };
        Ok(Whereabouts {
            published,
            address,
            gateway,
        })
    }

    /// Removes the images of `repo` (e.g. `racy-matrix/racer`) other than the tag `keep`;
    /// one still used by a container stays (the engine refuses), which is fine.
    pub async fn remove_other_tags(&self, repo: &str, keep: &str) -> Result<()> {
        let filters = HashMap::from([("reference".to_string(), vec![repo.to_string()])]);
        let images = self
            .docker
            .list_images(Some(bollard::query_parameters::ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await?;
        for tag in images.into_iter().flat_map(|i| i.repo_tags) {
            if tag != keep && tag.starts_with(&format!("{repo}:")) {
                let _ = self
                    .docker
                    .remove_image(
                        &tag,
                        None::<bollard::query_parameters::RemoveImageOptions>,
                        None,
                    )
                    .await;
            }
        }
        Ok(())
    }

    /// Running state, exit code and health of a container.
    pub async fn state(&self, id: &str) -> Result<ContainerState> {
        let info = self
            .docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await?;
        let st = info.state.unwrap_or_default();
        Ok(ContainerState {
            running: st.running.unwrap_or(false),
            exit_code: if st.running.unwrap_or(false) {
                None
            } else {
                st.exit_code
            },
            health: st
                .health
                .and_then(|h| h.status)
                .filter(|s| *s != HealthStatusEnum::EMPTY)
                .map(|s| s.to_string()),
            oom_killed: st.oom_killed.unwrap_or(false),
            restart_count: info.restart_count.unwrap_or(0),
        })
    }

    /// The last `n` lines a container wrote to stdout and stderr.
    pub async fn logs_tail(&self, id: &str, n: usize) -> String {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&n.to_string())
            .build();
        let mut s = self.docker.logs(id, Some(opts));
        let mut out = String::new();
        while let Some(Ok(chunk)) = s.next().await {
            out.push_str(&chunk.to_string());
        }
        out
    }

    /// Removes a container and its anonymous volumes, whatever its state.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        gone_is_fine(self.docker.remove_container(id, Some(opts)).await)
            .with_context(|| format!("removing container {id}"))
    }

    /// Objects of one kind carrying a label filter (`key` or `key=value`): each one's
    /// id (containers) or name (networks, volumes) with its labels.
    pub async fn labelled(
        &self,
        kind: Object,
        filter: &str,
    ) -> Result<Vec<(String, HashMap<String, String>)>> {
        let filters = HashMap::from([("label", vec![filter])]);
        Ok(match kind {
            Object::Container => {
                let opts = ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build();
                let list = self.docker.list_containers(Some(opts)).await?;
                list.into_iter()
                    .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
                    .collect()
            }
            Object::Network => {
                let opts = ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build();
                let list = self.docker.list_networks(Some(opts)).await?;
                list.into_iter()
                    .filter_map(|n| Some((n.name?, n.labels.unwrap_or_default())))
                    .collect()
            }
            Object::Volume => {
                let opts = ListVolumesOptionsBuilder::default()
                    .filters(&filters)
                    .build();
                let list = self.docker.list_volumes(Some(opts)).await?;
                list.volumes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| (v.name, v.labels))
                    .collect()
            }
        })
    }

    /// Objects of every kind carrying a label filter, with their labels.
    pub async fn labelled_all(
        &self,
        filter: &str,
    ) -> Result<Vec<(String, HashMap<String, String>)>> {
        let mut all = Vec::new();
        for kind in Object::ALL {
            all.extend(self.labelled(kind, filter).await?);
        }
        Ok(all)
    }

    /// The host interface of a bridge network: the name the network gives its bridge, else
    /// Docker's `br-` and the first 12 characters of its id (where a packet capture of the
    /// stack's own traffic listens).
    pub async fn bridge_interface(&self, network: &str) -> Result<String> {
        let net = self
            .docker
            .inspect_network(network, None)
            .await
            .with_context(|| format!("inspecting network {network}"))?;
        if let Some(name) = net
            .options
            .as_ref()
            .and_then(|o| o.get("com.docker.network.bridge.name"))
        {
            return Ok(name.clone());
        }
        let id = net
            .id
            .ok_or_else(|| anyhow!("the engine reports no id for network {network}"))?;
        Ok(format!("br-{}", id.get(..12).unwrap_or(&id)))
    }

    /// Removes a network; missing is fine.
    pub async fn remove_network(&self, name: &str) -> Result<()> {
        gone_is_fine(self.docker.remove_network(name).await)
            .with_context(|| format!("removing network {name}"))
    }

    /// Removes every container, network and volume whose labels match `filter`; returns
    /// how many containers and networks went.
    pub async fn remove_labelled(&self, filter: &str) -> Result<(usize, usize)> {
        self.creations_settled(Duration::from_secs(30)).await;
        let containers = self.labelled(Object::Container, filter).await?;
        let removals = containers.iter().map(|(id, _)| self.remove_container(id));
        for r in futures_util::future::join_all(removals).await {
            r?;
        }
        let networks = self.labelled(Object::Network, filter).await?;
        for (name, _) in &networks {
            self.remove_network(name).await?;
        }
        for (name, _) in self.labelled(Object::Volume, filter).await? {
            self.remove_volume(&name).await?;
        }
        Ok((containers.len(), networks.len()))
    }

    /// Creates a named volume with these labels.
    pub async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        let docker = self.docker.clone();
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        self.creation(async move { docker.create_volume(request).await.map(|_| ()) })
            .await
            .with_context(|| format!("creating volume {name}"))
    }

    /// Removes a volume; missing is fine.
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let opts = RemoveVolumeOptionsBuilder::default().force(true).build();
        gone_is_fine(self.docker.remove_volume(name, Some(opts)).await)
            .with_context(|| format!("removing volume {name}"))
    }

    /// Runs a command inside a running container (as its user) and collects its output,
    /// giving up after `limit`.
    pub async fn exec(&self, id: &str, cmd: &[String], limit: Duration) -> Result<ExecOutput> {
        let run = async {
            let created = self
                .docker
                .create_exec(
                    id,
                    CreateExecOptions {
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        cmd: Some(cmd.to_vec()),
                        ..Default::default()
                    },
                )
                .await?;
            let mut out = ExecOutput::default();
            if let StartExecResults::Attached { mut output, .. } =
                self.docker.start_exec(&created.id, None).await?
            {
                while let Some(chunk) = output.next().await {
                    match chunk? {
                        bollard::container::LogOutput::StdErr { message } => {
                            out.stderr.push_str(&String::from_utf8_lossy(&message))
                        }
                        other => out
                            .stdout
                            .push_str(&String::from_utf8_lossy(&other.into_bytes())),
                    }
                }
            }
            out.exit_code = self.docker.inspect_exec(&created.id).await?.exit_code;
            Ok::<_, bollard::errors::Error>(out)
        };
        tokio::time::timeout(limit, run)
            .await
            .map_err(|_| anyhow!("`{}` did not finish within {limit:?}", cmd.join(" ")))?
            .with_context(|| format!("running `{}` in container {id}", cmd.join(" ")))
    }

    /// Starts a command inside a running container with its standard input attached, and
    /// returns its output (standard output only; standard error is dropped) and its input.
    /// Both are streams over the engine's API connection, so they work wherever the
    /// engine is (the tunnels of a remote engine go through them).
    pub async fn exec_attached(&self, id: &str, cmd: &[String]) -> Result<AttachedExec> {
        let created = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(cmd.to_vec()),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("running `{}` in container {id}", cmd.join(" ")))?;
        match self
            .docker
            .start_exec(&created.id, None)
            .await
            .with_context(|| format!("starting `{}` in container {id}", cmd.join(" ")))?
        {
            StartExecResults::Attached { output, input } => {
                let output = output.filter_map(|chunk| async move {
                    match chunk {
                        Ok(bollard::container::LogOutput::StdOut { message }) => Some(Ok(message)),
                        Ok(_) => None,
                        Err(e) => Some(Err(std::io::Error::other(e))),
                    }
                });
                Ok(AttachedExec {
                    output: Box::pin(output),
                    input,
                })
            }
            StartExecResults::Detached => bail!("the engine did not attach to `{}`", cmd.join(" ")),
        }
    }

    /// Removes the containers and networks of runs whose racy-matrix process died (killed,
    /// crashed) on this host; returns the run ids it cleaned. Live runs, runs of other
    /// hosts and `up` stacks are left alone.
    pub async fn reap_orphans(&self) -> Result<Vec<String>> {
        let host = host_name();
        let mut runs: Vec<String> = self
            .labelled_all(RUN_LABEL)
            .await?
            .into_iter()
            .filter(|(_, l)| is_orphan(l, &host, &run_process_alive))
            .filter_map(|(_, l)| l.get(RUN_LABEL).cloned())
            .collect();
        runs.sort();
        runs.dedup();
        for run in &runs {
            self.remove_labelled(&format!("{RUN_LABEL}={run}")).await?;
        }
        Ok(runs)
    }
}

/// Whether objects with these labels belong to a run whose process is gone: made on this
/// host (`host`) by a process `alive` says is dead (given its pid and, when labelled, its
/// start time). Runs of `up` (ids starting `up-`) and of `run --keep-up` end on purpose
/// while their stack stays, so they are never orphans.
pub fn is_orphan(
    labels: &HashMap<String, String>,
    host: &str,
    alive: &dyn Fn(u32, Option<&str>) -> bool,
) -> bool {
    let Some(run) = labels.get(RUN_LABEL) else {
        return false;
    };
    if run.starts_with("up-")
        || labels.contains_key(KEEP_LABEL)
        || labels.get(HOST_LABEL).map(String::as_str) != Some(host)
    {
        return false;
    }
    match labels.get(PID_LABEL).and_then(|p| p.parse::<u32>().ok()) {
        Some(pid) => !alive(
            pid,
            labels
                .get(STARTED_LABEL)
                .map(String::as_str)
                .filter(|s| !s.is_empty()),
        ),
        None => false,
    }
}

/// When a process started, in clock ticks since boot (field 22 of `/proc/PID/stat`):
/// with the pid, it names one process for as long as the machine runs, whatever its
/// program is called (a benchmark or a test binary as well as racy-matrix).
pub fn process_started(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the program name, in parentheses, may itself hold spaces and parentheses
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19).map(str::to_string)
}

/// Whether the process that made a run still runs on this host: the process with this
/// pid and, when the run recorded one, this start time (a reused pid then does not
/// count); without a start time (objects of older versions), a process with this pid
/// whose command line names racy-matrix.
pub fn run_process_alive(pid: u32, started: Option<&str>) -> bool {
    if let Some(started) = started {
        return process_started(pid).as_deref() == Some(started);
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("racy-matrix") || c.contains("racy_matrix")
        })
        .unwrap_or(false)
}

/// This host's name, as the host label records it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_socket_on_this_host_is_a_local_engine() {
        assert!(is_local_host(None));
        assert!(is_local_host(Some("unix:///run/user/1000/docker.sock")));
        assert!(!is_local_host(Some("tcp://10.0.0.5:2376")));
        assert!(is_local_host(Some("tcp://127.0.0.1:2375")));
        assert!(is_local_host(Some("tcp://localhost:2375")));
        assert!(is_local_host(Some("tcp://[::1]:2375")));
        assert!(!is_local_host(Some("ssh://me@build-box")));
    }

    #[test]
    fn orphans_are_dead_runs_of_this_host() {
        let labels = |run: &str, host: &str, pid: &str| {
            HashMap::from([
                (RUN_LABEL.to_string(), run.to_string()),
                (HOST_LABEL.to_string(), host.to_string()),
                (PID_LABEL.to_string(), pid.to_string()),
            ])
        };
        let alive = |pid: u32, _: Option<&str>| pid == 10;
        assert!(is_orphan(&labels("r1", "h", "11"), "h", &alive));
        assert!(
            !is_orphan(&labels("r1", "h", "10"), "h", &alive),
            "live run"
        );
        assert!(
            !is_orphan(&labels("r1", "other", "11"), "h", &alive),
            "other host"
        );
        assert!(
            !is_orphan(&labels("up-r1", "h", "11"), "h", &alive),
            "up stacks stay"
        );
        let mut kept = labels("r1", "h", "11");
        kept.insert(KEEP_LABEL.to_string(), "true".to_string());
        assert!(!is_orphan(&kept, "h", &alive), "--keep-up stacks stay");
        assert!(
            !is_orphan(&labels("r1", "h", "x"), "h", &alive),
            "no pid: not ours to judge"
        );
        assert!(!is_orphan(&HashMap::new(), "h", &alive));
        // the start time is what tells a live run from a reused pid
        let me = std::process::id();
        let started = process_started(me).expect("this process has a start time");
        assert!(started.parse::<u64>().is_ok(), "{started}");
        let mut ours = labels("r1", "h", &me.to_string());
        ours.insert(STARTED_LABEL.to_string(), started.clone());
        assert!(
            !is_orphan(&ours, "h", &run_process_alive),
            "this test binary's run is live"
        );
        let mut reused = ours.clone();
        reused.insert(STARTED_LABEL.to_string(), "1".to_string());
        assert!(
            is_orphan(&reused, "h", &run_process_alive),
            "same pid, other process"
        );
        assert!(
            run_process_alive(me, None),
            "without a start time: a racy-matrix command line (this test binary's)"
        );
        assert!(!run_process_alive(u32::MAX, Some(&started)));
    }
}
