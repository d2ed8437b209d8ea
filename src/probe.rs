//! SQL against a stack's database: readiness, reset and observation. MariaDB and
//! PostgreSQL are reached through sqlx on their published ports; SQLite through its
//! command-line shell run inside the container that holds the file.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
// The reset and observe SQL come from the stack file the user chose to run.
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::measure::{Check, Observation};
use crate::stack::{Engine, Observe};

/// How SQL reaches the database.
#[derive(Clone)]
enum Conn {
    /// A pool on the published port.
    Pool(AnyPool),
    /// `sqlite3` run inside a container.
    Shell(Sqlite),
}

/// A SQLite file inside a running container, queried with its `sqlite3` shell.
#[derive(Clone)]
pub struct Sqlite {
    /// The engine.
    pub engine: crate::engine::Engine,
    /// Container id.
    pub container: String,
    /// Path of the database file in the container.
    pub file: String,
}

/// How long one `sqlite3` call may take.
const SHELL_LIMIT: Duration = Duration::from_secs(30);

impl Sqlite {
    /// Runs SQL (statements separated by `;`); returns the header and rows of the last
    /// statement that produced rows, split on `|`.
    pub async fn run(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let cmd: Vec<String> = [
            "sqlite3",
            "-bail",
            "-header",
            "-separator",
            "|",
            "-cmd",
            ".timeout 20000",
            &self.file,
            sql,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = self.engine.exec(&self.container, &cmd, SHELL_LIMIT).await?;
        if out.exit_code != Some(0) {
            bail!(
                "sqlite3 on {} exited with {:?}: {}",
                self.file,
                out.exit_code,
                out.stderr.trim()
            );
        }
        Ok(out
            .stdout
            .lines()
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect())
    }
}

/// One row: column names with integer values (None for NULL).
type Values = Vec<(String, Option<i64>)>;

/// A connection to one stack's database, with the stack's reset and observe SQL.
#[derive(Clone)]
pub struct Db {
    conn: Conn,
    reset: Vec<String>,
    observe: Observe,
}

/// The connection URL of a database published on 127.0.0.1.
pub fn url(engine: Engine, user: &str, password: &str, port: u16, name: &str) -> String {
    let scheme = match engine {
        Engine::Mysql => "mysql",
        Engine::Postgres => "postgres",
        Engine::Sqlite => return format!("sqlite://{name}"),
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
    /// A SQLite database reached through its shell.
    pub fn sqlite(shell: Sqlite, reset: Vec<String>, observe: Observe) -> Db {
        Db {
            conn: Conn::Shell(shell),
            reset,
            observe,
        }
    }

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
            conn: Conn::Pool(pool),
            reset,
            observe,
        })
    }

    /// Runs the reset statements in order.
    pub async fn reset(&self) -> Result<()> {
        match &self.conn {
            Conn::Pool(pool) => {
                // One round trip for every statement; if that fails, again one by one, so
                // that the error names the statement.
                let mut conn = pool.acquire().await?;
                let all = self.reset.join(";\n");
                if let Err(e) = sqlx::raw_sql(AssertSqlSafe(all.as_str()))
                    .execute(&mut *conn)
                    .await
                {
                    tracing::debug!("reset in one round trip failed ({e}); one by one");
                    for stmt in &self.reset {
                        sqlx::raw_sql(AssertSqlSafe(stmt.as_str()))
                            .execute(&mut *conn)
                            .await
                            .with_context(|| format!("reset statement failed: {stmt}"))?;
                    }
                }
            }
            // One shell call: the statements run in order and stop at the first error.
            Conn::Shell(shell) => {
                let sql = self.reset.join(";\n");
                shell.run(&sql).await.context("reset failed")?;
            }
        }
        Ok(())
    }

    /// The first row a query returns, as named integer columns.
    async fn row(&self, what: &str, sql: &str) -> Result<Option<Values>> {
        let failed = || format!("observe.{what} failed: {sql}");
        match &self.conn {
            Conn::Pool(pool) => {
                let Some(row) = sqlx::query(AssertSqlSafe(sql))
                    .fetch_optional(pool)
                    .await
                    .with_context(failed)?
                else {
                    return Ok(None);
                };
                use sqlx::Column;
                let mut out = Values::new();
                for (i, col) in row.columns().iter().enumerate() {
                    let v: Option<i64> = row.try_get(i).with_context(|| {
                        format!(
                            "observe.{what}: column {} must be an integer (cast it to BIGINT)",
                            i + 1
                        )
                    })?;
                    out.push((col.name().to_string(), v));
                }
                Ok(Some(out))
            }
            Conn::Shell(shell) => {
                let lines = shell.run(sql).await.with_context(failed)?;
                let (Some(header), Some(values)) = (lines.first(), lines.get(1)) else {
                    return Ok(None);
                };
                let mut out = Values::new();
                for (i, (name, v)) in header.iter().zip(values).enumerate() {
                    let v = if v.is_empty() {
                        None
                    } else {
                        Some(v.trim().parse::<i64>().with_context(|| {
                            format!("observe.{what}: column {} must be an integer (CAST it AS INTEGER), got '{v}'", i + 1)
                        })?)
                    };
                    out.push((name.clone(), v));
                }
                Ok(Some(out))
            }
        }
    }

    /// Reads the counter and the ledger, and the columns of `check`'s own query.
    pub async fn observe(&self, check: Check) -> Result<Observation> {
        let o = &self.observe;
        let nth = |row: &Values, what: &str, i: usize| -> Result<i64> {
            row.get(i)
                .and_then(|(_, v)| *v)
                .ok_or_else(|| anyhow!("observe.{what} must return an integer in column {}", i + 1))
        };
        let row = self
            .row("balance", &o.balance)
            .await?
            .ok_or_else(|| anyhow!("observe.balance returned no row: {}", o.balance))?;
        let balance = nth(&row, "balance", 0)?;
        let row = self
            .row("ledger", &o.ledger)
            .await?
            .ok_or_else(|| anyhow!("observe.ledger returned no row: {}", o.ledger))?;
        let ledger_rows = nth(&row, "ledger", 0)?;
        let ledger_total = nth(&row, "ledger", 1)?;
        let mut extra = std::collections::BTreeMap::new();
        if let Some(sql) = o.checks.get(&check) {
            let what = check.name();
            let row = self
                .row(what, sql)
                .await?
                .ok_or_else(|| anyhow!("observe.{what} returned no row: {sql}"))?;
            for col in check.columns() {
                let v = row
                    .iter()
                    .find(|(name, _)| name == col)
                    .map(|(_, v)| v.unwrap_or(0))
                    .ok_or_else(|| {
                        anyhow!("observe.{what} must return an integer column named {col}")
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
        if let Conn::Pool(pool) = &self.conn {
            pool.close().await;
        }
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
