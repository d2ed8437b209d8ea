//! The endpoints a stack's compose file lists (`x-racy.endpoints`) are the lab's own: the
//! app's registry, printed by `manage.py racy_endpoints` in the image the stacks build,
//! names each with the same path, method and check, and every endpoint the registry runs
//! on a stack's database engine is in that stack's list. The two cannot drift apart.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder};
use futures_util::StreamExt;
use racy_matrix::harness::Engine;
use racy_matrix::harness::{Build, Stack};
use serde::Deserialize;

/// One endpoint as the registry prints it.
#[derive(Debug, Deserialize)]
struct Registered {
    name: String,
    path: String,
    method: String,
    check: String,
    countermeasure: String,
    engines: Vec<String>,
}

const STACKS: [&str; 3] = ["django-mysql", "django-postgres", "django-sqlite"];

#[tokio::test]
async fn compose_endpoints_match_the_registry() {
    if !common::engine_available().await {
        return;
    }
    let engine = Engine::connect().await.unwrap();
    let base = racy_matrix::harness::ensure_base(&engine, &mut |_| {})
        .await
        .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks");
    // registries by image tag: the stacks build the app from one context
    let mut registries: BTreeMap<String, Vec<Registered>> = BTreeMap::new();
    let mut problems = Vec::new();
    for name in STACKS {
        let stack = Stack::load(&root.join(name)).unwrap();
        let tag = app_image(&engine, &stack, &base).await;
        if !registries.contains_key(&tag) {
            let printed = registry(&engine, &tag).await;
            registries.insert(tag.clone(), printed);
        }
        problems.extend(differences(&stack, &registries[&tag]));
    }
    assert!(
        problems.is_empty(),
        "the stacks' x-racy.endpoints and the app's registry (demo/registry.py) disagree:\n{}",
        problems.join("\n")
    );
}

/// The image of the stack's `app` service, built as racy-matrix builds it (or found).
async fn app_image(engine: &Engine, stack: &Stack, base: &str) -> String {
    let vars = BTreeMap::from([("BASE_IMAGE".to_string(), base.to_string())]);
    let app = stack.service("app", &vars).unwrap();
    let Some(Build::Long { context, args, .. }) = &app.build else {
        panic!(
            "{}: the app service builds from a context with args",
            stack.name
        );
    };
    let args = args.as_ref().map(|a| a.pairs()).unwrap_or_default();
    let dir = stack.dir().join(context);
    racy_matrix::harness::ensure_built(engine, &dir, None, &args, &mut |_| {})
        .await
        .unwrap()
        .0
}

/// What `python3 manage.py racy_endpoints` prints in a container of `image` with no
/// network: the registry needs no database.
async fn registry(engine: &Engine, image: &str) -> Vec<Registered> {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let name = format!("racy-test-endpoints-{}", std::process::id());
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(
            ["python3", "manage.py", "racy_endpoints"]
                .map(String::from)
                .to_vec(),
        ),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            cap_drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    let id = docker.create_container(Some(opts), body).await.unwrap().id;
    let output = tokio::time::timeout(Duration::from_secs(120), run(&docker, &id)).await;
    // removed before any verdict, so that a failure leaves nothing behind
    engine.remove_container(&id).await.unwrap();
    let (code, stdout, stderr) = output
        .expect("racy_endpoints finished within 2 minutes")
        .unwrap();
    assert_eq!(code, 0, "racy_endpoints failed:\n{stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("racy_endpoints printed no endpoint list ({e}):\n{stdout}"))
}

/// Starts the container, waits for it to stop, and returns its exit code and output.
async fn run(docker: &bollard::Docker, id: &str) -> anyhow::Result<(i64, String, String)> {
    docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await?;
    let code = match docker
        .wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>)
        .next()
        .await
    {
        Some(Ok(r)) => r.status_code,
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        Some(Err(e)) => return Err(e.into()),
        None => anyhow::bail!("the engine did not say how the container ended"),
    };
    let opts = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = docker.logs(id, Some(opts));
    let (mut stdout, mut stderr) = (String::new(), String::new());
    while let Some(chunk) = logs.next().await {
        match chunk? {
            bollard::container::LogOutput::StdErr { message } => {
                stderr.push_str(&String::from_utf8_lossy(&message))
            }
            other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
        }
    }
    Ok((code, stdout, stderr))
}

/// Where the stack's endpoint list and the registry disagree, one line each.
fn differences(stack: &Stack, registry: &[Registered]) -> Vec<String> {
    let engine = serde_json::to_value(stack.driver.database.engine).unwrap();
    let engine = engine.as_str().unwrap();
    let by_name: BTreeMap<&str, &Registered> =
        registry.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut problems = Vec::new();
    if by_name.len() != registry.len() {
        problems.push("the registry names an endpoint twice".to_string());
    }
    for (name, listed) in &stack.driver.endpoints {
        let Some(r) = by_name.get(name.as_str()) else {
            problems.push(format!("{}: {name} is not in the registry", stack.name));
            continue;
        };
        let compose = (&listed.path, &listed.method, listed.check.name());
        let app = (&r.path, &r.method, r.check.as_str());
        if compose != app {
            problems.push(format!(
                "{}: {name} has (path, method, check) {compose:?} here, {app:?} in the app",
                stack.name
            ));
        }
    }
    let listed: BTreeSet<&str> = stack.driver.endpoints.keys().map(String::as_str).collect();
    for r in registry {
        assert!(
            !r.countermeasure.trim().is_empty() && !r.engines.is_empty(),
            "{} is registered without a countermeasure or engines",
            r.name
        );
        let runs_here = r.engines.iter().any(|e| e == engine);
        if runs_here != listed.contains(r.name.as_str()) {
            problems.push(format!(
                "{}: the registry gives {} the engines {:?}, but the {engine} stack {} it",
                stack.name,
                r.name,
                r.engines,
                if runs_here { "does not list" } else { "lists" }
            ));
        }
    }
    problems
}
