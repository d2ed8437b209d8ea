//! SQL against a stack's database (sqlx, any driver): readiness, reset and observation.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
// The reset and observe SQL come from the stack file the user chose to run.
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::measure::{Check, Observation};
use crate::stack::{Engine, Observe};

/// A connection pool to one stack's database, with the stack's reset and observe SQL.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    reset: Vec<String>,
    observe: Observe,
}

/// The connection URL of a database published on 127.0.0.1.
pub fn url(engine: Engine, user: &str, password: &str, port: u16, name: &str) -> String {
    let scheme = match engine {
        Engine::Mysql => "mysql",
        Engine::Postgres => "postgres",
    };
    format!(
        "{scheme}://{}:{}@127.0.0.1:{port}/{}",
        pct(user),
        pct(password),
        pct(name)
    )
}

/// The URL with its password replaced by `****`, for printing.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    match (rest.find(':'), rest.find('@')) {
        (Some(colon), Some(at)) if colon < at => {
            format!(
                "{}{}:****{}",
                &url[..scheme_end + 3],
                &rest[..colon],
                &rest[at..]
            )
        }
        _ => url.to_string(),
    }
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `SELECT 1` on a fresh connection: the database really answers SQL.
pub async fn ping(url: &str) -> Result<()> {
    install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(url)
        .await?;
    let one: i64 = sqlx::query("SELECT 1").fetch_one(&pool).await?.try_get(0)?;
    pool.close().await;
    anyhow::ensure!(one == 1, "SELECT 1 returned {one}");
    Ok(())
}

impl Db {
    /// Connects (the database must already answer).
    pub async fn connect(url: &str, reset: Vec<String>, observe: Observe) -> Result<Db> {
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .context("connecting to the stack's database")?;
        Ok(Db {
            pool,
            reset,
            observe,
        })
    }

    /// Runs the reset statements in order.
    pub async fn reset(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        for stmt in &self.reset {
            sqlx::raw_sql(AssertSqlSafe(stmt.as_str()))
                .execute(&mut *conn)
                .await
                .with_context(|| format!("reset statement failed: {stmt}"))?;
        }
        Ok(())
    }

    /// Reads the counter and the ledger, and the columns of `check`'s own query.
    pub async fn observe(&self, check: Check) -> Result<Observation> {
        let row = sqlx::query(AssertSqlSafe(self.observe.balance.as_str()))
            .fetch_optional(&self.pool)
            .await
            .with_context(|| format!("observe.balance failed: {}", self.observe.balance))?
            .ok_or_else(|| anyhow!("observe.balance returned no row: {}", self.observe.balance))?;
        let balance: i64 = row
            .try_get(0)
            .context("observe.balance must return one integer column (cast it to BIGINT)")?;
        let row = sqlx::query(AssertSqlSafe(self.observe.ledger.as_str()))
            .fetch_one(&self.pool)
            .await
            .with_context(|| format!("observe.ledger failed: {}", self.observe.ledger))?;
        let ledger_rows: i64 = row
            .try_get(0)
            .context("observe.ledger column 1 must be an integer (cast it to BIGINT)")?;
        let ledger_total: i64 = row
            .try_get(1)
            .context("observe.ledger column 2 must be an integer (cast it to BIGINT)")?;
        let mut extra = std::collections::BTreeMap::new();
        if let Some(sql) = self.observe.checks.get(&check) {
            let row = sqlx::query(AssertSqlSafe(sql.as_str()))
                .fetch_one(&self.pool)
                .await
                .with_context(|| format!("observe.{} failed: {sql}", check.name()))?;
            for col in check.columns() {
                let v: i64 = row.try_get(*col).with_context(|| {
                    format!(
                        "observe.{} must return an integer column named {col} (cast it to BIGINT)",
                        check.name()
                    )
                })?;
                extra.insert(col.to_string(), v);
            }
        }
        Ok(Observation {
            balance,
            ledger_rows,
            ledger_total,
            extra,
        })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_escape_credentials() {
        assert_eq!(
            url(Engine::Mysql, "racy", "p@ss/w", 3306, "racy"),
            "mysql://racy:p%40ss%2Fw@127.0.0.1:3306/racy"
        );
        assert!(url(Engine::Postgres, "u", "p", 1, "d").starts_with("postgres://"));
        assert_eq!(
            redact(&url(Engine::Mysql, "racy", "s3cr:t@x", 3306, "racy")),
            "mysql://racy:****@127.0.0.1:3306/racy"
        );
    }
}
