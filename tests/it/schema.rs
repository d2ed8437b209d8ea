//! The database images carry the lab's schema (stacks/images/*/schema.sql), so a new
//! database is ready without migrating. The stack's `migrate` service still runs; this
//! test fails once a migration is added and the dumps are not made again.

use crate::common;

use racy_matrix::harness::Engine;

#[tokio::test]
async fn baked_schemas_match_the_migrations() {
    if !common::engine_available().await {
        return;
    }
    // `down` removes every `up` stack, not only this test's
    let _engine = common::exclusive().await;
    let engine = Engine::connect().await.unwrap();
    for stack in ["django-postgres", "django-mysql"] {
        let up = common::racy(&["up", stack]);
        let stdout = String::from_utf8_lossy(&up.stdout).to_string();
        let logs = match stdout
            .split("(run ")
            .nth(1)
            .and_then(|s| s.split(')').next())
        {
            Some(run) if up.status.success() => {
                let migrate = common::containers(&[
                    format!("racy-matrix.run={run}"),
                    "racy-matrix.service=migrate".to_string(),
                ])
                .await;
                match migrate.first().and_then(|c| c.id.clone()) {
                    Some(id) => {
                        // `up` returns once every service is ready, and a one-shot job
                        // nothing waits for is ready while it runs: read its logs once
                        // it has exited
                        exited(&engine, &id).await;
                        engine.logs_tail(&id, 50).await
                    }
                    None => String::from("no migrate container"),
                }
            }
            _ => format!("up failed: {}", String::from_utf8_lossy(&up.stderr)),
        };
        let down = common::racy(&["down"]);
        assert!(down.status.success());
        assert!(
            logs.contains("No migrations to apply"),
            "{stack}: the schema baked into the database image lacks migrations; run \
             stacks/images/dump-schemas.sh. migrate said:\n{logs}"
        );
    }
}

/// Waits until the container has exited (at most a minute: `migrate` takes seconds).
async fn exited(engine: &Engine, id: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while engine.state(id).await.is_ok_and(|s| s.running) {
        assert!(
            std::time::Instant::now() < deadline,
            "migrate still runs after a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
