//! SQL against a stack's database: readiness, reset and observation. MariaDB and
//! PostgreSQL are reached through sqlx on their published ports; SQLite through its
//! command-line shell run inside the container that holds the file.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
// The reset and observe SQL come from the stack file the user chose to run.
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::burst::http::urlencode;
use crate::input::stack::{DatabaseKind, Invariant, Observe};
use crate::measure::metrics::{Check, OUT_OF, Observation, VIOLATIONS};

/// The SQL a [`Db`] runs: the stack's reset statements, observe queries and invariants.
pub struct Queries {
    /// Statements run before every repetition.
    pub reset: Vec<String>,
    /// The counter's and the built-in checks' queries.
    pub observe: Observe,
    /// The stack's invariants, by name.
    pub invariants: BTreeMap<String, Invariant>,
}

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
    pub engine: crate::deploy::engine::Engine,
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

/// The first row a query returned, and whether another followed it.
struct Row1 {
    values: Values,
    more: bool,
}

/// A connection to one stack's database, with the stack's reset and observe SQL.
#[derive(Clone)]
pub struct Db {
    conn: Conn,
    /// Which SQL dialect opens a read-only snapshot.
    kind: DatabaseKind,
    reset: Vec<String>,
    observe: Observe,
    invariants: BTreeMap<String, Invariant>,
}

/// The connection URL of a database at `addr`.
pub fn url(
    engine: DatabaseKind,
    user: &str,
    password: &str,
    addr: std::net::SocketAddr,
    name: &str,
) -> String {
    let scheme = match engine {
        DatabaseKind::Mysql => "mysql",
        DatabaseKind::Postgres => "postgres",
        DatabaseKind::Sqlite => return format!("sqlite://{name}"),
    };
    format!(
        "{scheme}://{}:{}@{addr}/{}",
        urlencode(user),
        urlencode(password),
        urlencode(name)
    )
}

/// Database error codes that mean the credentials or the database name are wrong:
/// PostgreSQL 28P01/28000 (password, no such role), 3D000 (no such database); MariaDB and
/// MySQL 1045 (access denied), 1044 (no access to the database), 1049 (no such database).
/// A database that is still starting answers other codes (57P03) or refuses TCP, so
/// these are answers that waiting will not change.
const REFUSED_CODES: &[&str] = &["28P01", "28000", "3D000", "1045", "1044", "1049"];

/// Runs `SELECT 1` on a fresh connection: the database really answers SQL. A refusal of
/// the credentials is [`Hopeless`](crate::deploy::ready::Hopeless).
pub async fn ping(url: &str) -> Result<()> {
    install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        // no reaper task (see `Db::connect`)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| REFUSED_CODES.contains(&c.as_ref())) =>
            {
                anyhow::Error::new(crate::deploy::ready::Hopeless(format!(
                    "the database refused the connection ({e}); check x-racy.database's user, \
                     password and name against the database service's environment"
                )))
            }
            _ => anyhow::Error::new(e),
        })?;
    let one: i64 = sqlx::query("SELECT 1").fetch_one(&pool).await?.try_get(0)?;
    pool.close().await;
    anyhow::ensure!(one == 1, "SELECT 1 returned {one}");
    Ok(())
}

impl Db {
    /// A SQLite database reached through its shell.
    pub fn sqlite(shell: Sqlite, queries: Queries) -> Db {
        Db {
            conn: Conn::Shell(shell),
            kind: DatabaseKind::Sqlite,
            reset: queries.reset,
            observe: queries.observe,
            invariants: queries.invariants,
        }
    }

    /// Connects (the database must already answer).
    pub async fn connect(url: &str, queries: Queries) -> Result<Db> {
        install_default_drivers();
        // No idle timeout and no maximum lifetime: with either, sqlx spawns a reaper task
        // whose loop over the idle count can spin a core forever once that count wraps
        // (launchbadge/sqlx#3645). A run's two connections live as long as its stack.
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .context("connecting to the stack's database")?;
        let kind = if url.starts_with("postgres") {
            DatabaseKind::Postgres
        } else {
            DatabaseKind::Mysql
        };
        Ok(Db {
            conn: Conn::Pool(pool),
            kind,
            reset: queries.reset,
            observe: queries.observe,
            invariants: queries.invariants,
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

    /// The first row of each query, as named integer columns, all read in one snapshot
    /// of the database (one read-only REPEATABLE READ transaction; one `BEGIN … COMMIT`
    /// in SQLite), so that the balance and the ledger are never read across a commit.
    async fn rows(&self, queries: &[(&str, &str)]) -> Result<Vec<Option<Row1>>> {
        match &self.conn {
            Conn::Pool(pool) => {
                let mut conn = pool.acquire().await?;
                let begin: &[&str] = match self.kind {
                    DatabaseKind::Postgres => &["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"],
                    _ => &[
                        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
                    ],
                };
                for stmt in begin {
                    sqlx::raw_sql(AssertSqlSafe(*stmt))
                        .execute(&mut *conn)
                        .await
                        .with_context(|| format!("opening the observation snapshot: {stmt}"))?;
                }
                let mut out = Vec::with_capacity(queries.len());
                let mut failure = None;
                for (what, sql) in queries {
                    match pool_row(&mut conn, what, sql).await {
                        Ok(r) => out.push(r),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                let end = if failure.is_some() {
                    "ROLLBACK"
                } else {
                    "COMMIT"
                };
                let ended = sqlx::raw_sql(end).execute(&mut *conn).await;
                if let Some(e) = failure {
                    return Err(e);
                }
                ended.context("closing the observation snapshot")?;
                Ok(out)
            }
            Conn::Shell(shell) => {
                // One shell call: BEGIN, each query followed by a separator row, COMMIT.
                let mut sql = String::from("BEGIN;\n");
                for (_, q) in queries {
                    sql.push_str(q.trim().trim_end_matches(';'));
                    sql.push_str(&format!(";\nSELECT '{SEPARATOR}' AS {SEPARATOR_COLUMN};\n"));
                }
                sql.push_str("COMMIT;");
                let lines = shell.run(&sql).await.context("observe failed")?;
                let sections = split_sections(&lines);
                let mut out = Vec::with_capacity(queries.len());
                for ((what, _), lines) in queries.iter().zip(sections) {
                    out.push(shell_row(what, lines)?);
                }
                Ok(out)
            }
        }
    }

    /// Reads the counter and the ledger, and the columns of `check`'s own query (an
    /// invariant's `violations` and `out_of`), in one snapshot.
    pub async fn observe(&self, check: &Check) -> Result<Observation> {
        let o = &self.observe;
        let nth = |row: &Values, what: &str, i: usize| -> Result<i64> {
            row.get(i)
                .and_then(|(_, v)| *v)
                .ok_or_else(|| anyhow!("observe.{what} must return an integer in column {}", i + 1))
        };
        // A stack without counter endpoints has no counter to read: 0, 0 rows, 0.
        let counter = !o.balance.trim().is_empty();
        let own = o.checks.get(check);
        let invariant = match check {
            Check::Invariant(name) => Some(self.invariants.get(name).ok_or_else(|| {
                anyhow!("the stack declares no invariant '{name}' in x-racy.invariants")
            })?),
            _ => None,
        };
        let queries = observe_queries(o, check, own, invariant);
        let named: Vec<(&str, &str)> = queries.iter().map(|(w, q)| (w.as_str(), *q)).collect();
        let mut rows = self.rows(&named).await?.into_iter();
        let mut next = |(what, sql): (&str, &str)| {
            rows.next()
                .flatten()
                .ok_or_else(|| anyhow!("{what} returned no row: {sql}"))
        };
        let (mut balance, mut ledger_rows, mut ledger_total) = (0, 0, 0);
        let mut at = 0;
        if counter {
            let row = next(named[0])?.values;
            balance = nth(&row, "balance", 0)?;
            let row = next(named[1])?.values;
            ledger_rows = nth(&row, "ledger", 0)?;
            ledger_total = nth(&row, "ledger", 1)?;
            at = 2;
        }
        let mut extra = BTreeMap::new();
        if own.is_some() {
            let what = check.name();
            let row = next(named[at])?.values;
            at += 1;
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
        if let Some(inv) = invariant {
            let mut columns = vec![VIOLATIONS];
            if inv.out_of.is_some() {
                columns.push(OUT_OF);
            }
            for col in columns {
                let (what, sql) = named[at];
                at += 1;
                extra.insert(col.to_string(), count(what, sql, next((what, sql))?)?);
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

/// What an observation reads, named for errors, in order: the counter's balance and
/// ledger (when the stack has them), the check's own query, an invariant's `violations`
/// and `out_of`.
fn observe_queries<'a>(
    o: &'a Observe,
    check: &Check,
    own: Option<&'a String>,
    invariant: Option<&'a Invariant>,
) -> Vec<(String, &'a str)> {
    let mut queries = Vec::new();
    if !o.balance.trim().is_empty() {
        queries.push(("observe.balance".to_string(), o.balance.as_str()));
        queries.push(("observe.ledger".to_string(), o.ledger.as_str()));
    }
    if let Some(sql) = own {
        queries.push((format!("observe.{}", check.name()), sql.as_str()));
    }
    if let Some(inv) = invariant {
        let name = check.name();
        queries.push((
            format!("invariant {name}: violations"),
            inv.violations.as_str(),
        ));
        if let Some(of) = &inv.out_of {
            queries.push((format!("invariant {name}: out_of"), of.as_str()));
        }
    }
    queries
}

/// An invariant query's answer as a count: one row of one integer, 0 or more; anything
/// else is an error that names the query and says what it returned.
fn count(what: &str, sql: &str, row: Row1) -> Result<i64> {
    let fix = "it must return one row of one integer, 0 or more";
    if row.more {
        bail!("{what} returned more than one row ({fix}): {sql}");
    }
    match row.values.as_slice() {
        [(_, Some(n))] if *n >= 0 => Ok(*n),
        [(_, Some(n))] => bail!("{what} returned {n}, a negative count ({fix}): {sql}"),
        [(_, None)] => bail!(
            "{what} returned NULL ({fix}; an aggregate over no rows is NULL: wrap it in COALESCE(…, 0)): {sql}"
        ),
        cols => bail!("{what} returned {} columns ({fix}): {sql}", cols.len()),
    }
}

/// The row a separator query prints between two observe queries in the SQLite shell.
const SEPARATOR: &str = "racy-matrix-next";
/// Its column name, printed as its header line.
const SEPARATOR_COLUMN: &str = "racy_matrix_next";

/// Splits the shell's output into the lines each query printed (header, then rows).
fn split_sections(lines: &[Vec<String>]) -> Vec<&[Vec<String>]> {
    let mut sections = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < lines.len() {
        let is_sep = |j: usize| lines.get(j).is_some_and(|l| l.len() == 1);
        if is_sep(i)
            && lines[i][0] == SEPARATOR_COLUMN
            && is_sep(i + 1)
            && lines[i + 1][0] == SEPARATOR
        {
            sections.push(&lines[start..i]);
            i += 2;
            start = i;
        } else {
            i += 1;
        }
    }
    sections
}

/// The first row of a query run on a pooled connection, as named integer columns, and
/// whether a second followed (no more is read).
async fn pool_row(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    what: &str,
    sql: &str,
) -> Result<Option<Row1>> {
    use futures_util::TryStreamExt;
    let failed = || format!("{what} failed: {sql}");
    let mut stream = sqlx::query(AssertSqlSafe(sql)).fetch(&mut **conn);
    let Some(row) = stream.try_next().await.with_context(failed)? else {
        return Ok(None);
    };
    let more = stream.try_next().await.with_context(failed)?.is_some();
    use sqlx::Column;
    let mut values = Values::new();
    for (i, col) in row.columns().iter().enumerate() {
        let v: Option<i64> = row.try_get(i).with_context(|| {
            format!(
                "{what}: column {} must be an integer (cast it to BIGINT)",
                i + 1
            )
        })?;
        values.push((col.name().to_string(), v));
    }
    Ok(Some(Row1 { values, more }))
}

/// The first row the SQLite shell printed for a query (header line, then values).
fn shell_row(what: &str, lines: &[Vec<String>]) -> Result<Option<Row1>> {
    let (Some(header), Some(values)) = (lines.first(), lines.get(1)) else {
        return Ok(None);
    };
    let mut out = Values::new();
    for (i, (name, v)) in header.iter().zip(values).enumerate() {
        let v = if v.is_empty() {
            None
        } else {
            Some(v.trim().parse::<i64>().with_context(|| {
                format!(
                    "{what}: column {} must be an integer (CAST it AS INTEGER), got '{v}'",
                    i + 1
                )
            })?)
        };
        out.push((name.clone(), v));
    }
    Ok(Some(Row1 {
        values: out,
        more: lines.len() > 2,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invariant_query_must_give_one_count() {
        let row = |values: Values, more| Row1 { values, more };
        let one = |v| vec![("n".to_string(), v)];
        assert_eq!(count("inv", "q", row(one(Some(3)), false)).unwrap(), 3);
        assert_eq!(count("inv", "q", row(one(Some(0)), false)).unwrap(), 0);
        let e = |r| {
            format!(
                "{:#}",
                count("invariant x: violations", "SELECT q", r).unwrap_err()
            )
        };
        let neg = e(row(one(Some(-2)), false));
        assert!(
            neg.contains("returned -2, a negative count") && neg.ends_with("SELECT q"),
            "{neg}"
        );
        assert!(e(row(one(None), false)).contains("returned NULL"));
        assert!(e(row(one(Some(1)), true)).contains("more than one row"));
        let two = e(row(
            vec![("a".into(), Some(1)), ("b".into(), Some(2))],
            false,
        ));
        assert!(
            two.starts_with("invariant x: violations returned 2 columns"),
            "{two}"
        );
    }

    #[test]
    fn shell_output_splits_per_query() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let lines = vec![
            l(&["balance"]),
            l(&["300"]),
            l(&[SEPARATOR_COLUMN]),
            l(&[SEPARATOR]),
            // a query that returned no row prints nothing, not even its header
            l(&[SEPARATOR_COLUMN]),
            l(&[SEPARATOR]),
            l(&["rows", "total"]),
            l(&["3", ""]),
            l(&[SEPARATOR_COLUMN]),
            l(&[SEPARATOR]),
        ];
        let s = split_sections(&lines);
        assert_eq!(s.len(), 3);
        let row = shell_row("balance", s[0]).unwrap().unwrap();
        assert_eq!((row.values[0].1, row.more), (Some(300), false));
        assert!(shell_row("x", s[1]).unwrap().is_none());
        let row = shell_row("ledger", s[2]).unwrap().unwrap();
        assert_eq!(
            row.values,
            vec![("rows".into(), Some(3)), ("total".into(), None)]
        );
        let two = shell_row("v", &[l(&["v"]), l(&["1"]), l(&["2"])])
            .unwrap()
            .unwrap();
        assert!(two.more);
        assert!(shell_row("bad", &[l(&["a"]), l(&["x"])]).is_err());
    }

    fn at(addr: &str) -> std::net::SocketAddr {
        addr.parse().unwrap()
    }

    #[test]
    fn urls_escape_credentials() {
        assert_eq!(
            url(
                DatabaseKind::Mysql,
                "racy",
                "p@ss/w",
                at("127.0.0.1:3306"),
                "racy"
            ),
            "mysql://racy:p%40ss%2Fw@127.0.0.1:3306/racy"
        );
        let pg = url(DatabaseKind::Postgres, "u", "p", at("172.18.0.3:5432"), "d");
        assert_eq!(pg, "postgres://u:p@172.18.0.3:5432/d");
        assert_eq!(
            crate::input::redact::url(&url(
                DatabaseKind::Mysql,
                "racy",
                "s3cr:t@x",
                at("127.0.0.1:3306"),
                "racy"
            )),
            "mysql://racy:****@127.0.0.1:3306/racy"
        );
    }
}
