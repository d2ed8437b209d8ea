//! The database images carry the lab's schema (stacks/images/*/schema.sql), so a new
//! database is ready without migrating. The stack's `migrate` service still runs; this
//! test fails once a migration is added and the dumps are not made again.

mod common;

use racy_matrix::engine::Engine;

#[tokio::test]
async fn baked_schemas_match_the_migrations() {
    if !common::engine_available().await {
        return;
    }
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
                    Some(id) => engine.logs_tail(&id, 50).await,
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
