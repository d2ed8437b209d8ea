//! The run directory and its results store: a SQLite database (`results.db`, WAL) holding
//! the run's matrix, its cells and every request record, each cell committed in one
//! transaction the moment it completes and checkpointed into `results.db` at once, so the
//! file stands alone (copied without its `-wal`) whatever way the process ends;
//! results.csv, results.md and results.json are rendered from it after every cell.
//! Loading, resuming and merging read the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use serde::Deserialize;

use crate::input::matrix::Cell;
use crate::measure::cell::{CellResult, CellTiming};
use crate::measure::metrics::RequestRecord;

/// The copy of the matrix file a run directory keeps.
pub const MATRIX_FILE: &str = "matrix.yaml";
/// The store's file name.
pub const STORE_FILE: &str = "results.db";
/// The store layout this version writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cells (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        result TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS records (
        cell_key TEXT NOT NULL,
        repetition INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (cell_key, repetition, idx))",
];

/// A cell's record without its request records: what `--timings` reads.
#[derive(Clone, Debug, Deserialize)]
pub struct CellSummary {
    /// The cell.
    pub cell: Cell,
    /// Repetitions asked for.
    pub repetitions: u32,
    /// Requests per repetition.
    pub requests: u32,
    /// Why it failed, if it did.
    #[serde(default)]
    pub error: Option<String>,
    /// How long it took, when recorded.
    #[serde(default)]
    pub timing: Option<CellTiming>,
}

/// Reads the cells (without their request records) of a run directory's store, or of a
/// `results.json` (the file, or a directory holding one but no store).
pub async fn read_summaries(path: &Path) -> Result<Vec<CellSummary>> {
    if path.join(STORE_FILE).is_file() {
        let store = open_store(path, false).await?;
        let read = async {
            let version: Option<String> =
                sqlx::query_scalar("SELECT value FROM meta WHERE key = 'schema_version'")
                    .fetch_optional(&store)
                    .await
                    .with_context(|| format!("{}: not a racy-matrix results store", path.display()))?;
            if version.as_deref() != Some(&SCHEMA_VERSION.to_string()) {
                bail!(
                    "{}: the results store has layout {}, this racy-matrix reads layout {SCHEMA_VERSION}",
                    path.display(),
                    version.unwrap_or_default()
                );
            }
            let rows: Vec<String> = sqlx::query_scalar("SELECT result FROM cells ORDER BY seq")
                .fetch_all(&store)
                .await?;
            rows.iter()
                .map(|r| serde_json::from_str(r).map_err(anyhow::Error::from))
                .collect::<Result<Vec<CellSummary>>>()
                .with_context(|| format!("{}: unreadable cell", path.display()))
        }
        .await;
        store.close().await;
        return read;
    }
    let file = if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_path_buf()
    };
    #[derive(Deserialize)]
    struct Doc {
        cells: Vec<CellSummary>,
    }
    let text = std::fs::read(&file).with_context(|| {
        format!(
            "{} is neither a run directory (no {STORE_FILE}) nor a results.json",
            path.display()
        )
    })?;
    let doc: Doc = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a racy-matrix results.json", file.display()))?;
    Ok(doc.cells)
}

/// A run directory, its store, and the cells it holds.
pub struct RunDir {
    /// The directory.
    pub path: PathBuf,
    /// Matrix name.
    pub matrix: String,
    /// Run id (the engine label value).
    pub run_id: String,
    /// Start time, RFC 3339.
    pub started: String,
    /// `K/N` when the run was one shard of its matrix.
    pub shard: Option<String>,
    /// Cells in the order they ran.
    pub cells: Vec<CellResult>,
    /// The matrix's expectations, shown with their verdicts in results.md (set by the
    /// caller that knows the matrix; none otherwise).
    pub expect: Vec<crate::input::matrix::Expectation>,
    store: SqlitePool,
}

async fn open_store(path: &Path, create: bool) -> Result<SqlitePool> {
    let file = path.join(STORE_FILE);
    // the path as a file name, never parsed as a URL (`%2F`, `?mode=` stay characters)
    let opts = SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal);
    // No idle timeout and no maximum lifetime: with either, sqlx spawns a reaper task
    // whose loop over the idle count can spin a core forever once that count wraps
    // (launchbadge/sqlx#3645), which kept a finished command from exiting. One file, one
    // connection: nothing to reap.
    SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts)
        .await
        .with_context(|| format!("cannot open the results store {}", file.display()))
}

impl RunDir {
    /// Creates the directory and a new store in it.
    pub async fn create(path: &Path, matrix: &str) -> Result<RunDir> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create the output directory {}", path.display()))?;
        if path.join(STORE_FILE).exists() {
            bail!(
                "{} already holds a run; use --resume {} to complete it, or choose another --output",
                path.display(),
                path.display()
            );
        }
        let store = open_store(path, true).await?;
        for stmt in SCHEMA {
            sqlx::raw_sql(*stmt).execute(&store).await?;
        }
        let dir = RunDir {
            path: path.to_path_buf(),
            matrix: matrix.to_string(),
            run_id: String::new(),
            started: chrono::Local::now().to_rfc3339(),
            shard: None,
            cells: vec![],
            expect: vec![],
            store,
        };
        dir.save_meta().await?;
        Ok(dir)
    }

    /// Keeps the matrix file's text in the store, beside the copy in the directory.
    pub async fn save_matrix(&self, text: &str) -> Result<()> {
        self.put_meta(&[("matrix_yaml", text.to_string())]).await
    }

    /// Writes the run's identity (matrix, run id, start, shard) into the store.
    pub async fn save_meta(&self) -> Result<()> {
        self.put_meta(&[
            ("schema_version", SCHEMA_VERSION.to_string()),
            ("matrix", self.matrix.clone()),
            ("run_id", self.run_id.clone()),
            ("started", self.started.clone()),
            ("shard", self.shard.clone().unwrap_or_default()),
        ])
        .await
    }

    async fn put_meta(&self, pairs: &[(&str, String)]) -> Result<()> {
        let mut tx = self.store.begin().await?;
        for (k, v) in pairs {
            sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.checkpoint().await
    }

    /// Copies every committed page from the write-ahead log into `results.db` and empties
    /// the log, so that `results.db` alone holds everything committed so far (a copy of
    /// the file, or a process killed with -9, loses nothing).
    async fn checkpoint(&self) -> Result<()> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.store)
            .await
            .context("checkpointing the results store")?;
        Ok(())
    }

    /// Checkpoints and closes the store; after this `results.db` is complete by itself
    /// and no `-wal` or `-shm` file is left beside it.
    pub async fn close(&self) -> Result<()> {
        self.checkpoint().await?;
        self.store.close().await;
        Ok(())
    }

    /// Commits a finished cell (replacing an earlier result of the same cell) in one
    /// transaction. It renders nothing: the result files are the reports' business.
    pub async fn push(&mut self, cell: CellResult) -> Result<()> {
        let key = cell.cell.key();
        let mut summary = cell.clone();
        let mut records: Vec<RequestRecord> = Vec::new();
        for rep in &mut summary.reps {
            records.append(&mut rep.records);
        }
        let mut tx = self.store.begin().await?;
        sqlx::query("DELETE FROM records WHERE cell_key = ?")
            .bind(&key)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO cells (key, result) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET result = excluded.result")
            .bind(&key)
            .bind(serde_json::to_string(&summary)?)
            .execute(&mut *tx)
            .await?;
        for r in &records {
            sqlx::query(
                "INSERT INTO records (cell_key, repetition, idx, record) VALUES (?, ?, ?, ?)",
            )
            .bind(&key)
            .bind(i64::from(r.repetition))
            .bind(i64::from(r.index))
            .bind(serde_json::to_string(r)?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit()
            .await
            .context("committing the cell to the results store")?;
        self.checkpoint().await?;
        match self.cells.iter_mut().find(|c| c.cell.key() == key) {
            Some(slot) => *slot = cell,
            None => self.cells.push(cell),
        }
        Ok(())
    }

    /// Opens a run directory's store and reads every cell with its records.
    pub async fn load(path: &Path) -> Result<RunDir> {
        if !path.join(STORE_FILE).is_file() {
            bail!(
                "{} is not a run directory (no {STORE_FILE})",
                path.display()
            );
        }
        let store = open_store(path, false).await?;
        let meta: BTreeMap<String, String> = sqlx::query("SELECT key, value FROM meta")
            .fetch_all(&store)
            .await
            .with_context(|| format!("{}: not a racy-matrix results store", path.display()))?
            .into_iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect();
        let version: i64 = meta
            .get("schema_version")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if version != SCHEMA_VERSION {
            bail!(
                "{}: the results store has layout {version}, this racy-matrix reads layout {SCHEMA_VERSION}; \
                 use the racy-matrix version that wrote it (the CSV/JSON files beside it stay readable)",
                path.display()
            );
        }
        let rows = sqlx::query("SELECT key, result FROM cells ORDER BY seq")
            .fetch_all(&store)
            .await?;
        let mut cells = Vec::with_capacity(rows.len());
        for row in rows {
            let key: String = row.get(0);
            let mut cell: CellResult = serde_json::from_str(&row.get::<String, _>(1))
                .with_context(|| format!("{}: unreadable cell {key}", path.display()))?;
            let records = sqlx::query(
                "SELECT record FROM records WHERE cell_key = ? ORDER BY repetition, idx",
            )
            .bind(&key)
            .fetch_all(&store)
            .await?;
            for r in records {
                let rec: RequestRecord = serde_json::from_str(&r.get::<String, _>(0))?;
                if let Some(rep) = cell.reps.get_mut(rec.repetition as usize) {
                    rep.records.push(rec);
                }
            }
            cells.push(cell);
        }
        let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
        Ok(RunDir {
            path: path.to_path_buf(),
            matrix: get("matrix"),
            run_id: get("run_id"),
            started: get("started"),
            shard: meta.get("shard").filter(|s| !s.is_empty()).cloned(),
            cells,
            expect: vec![],
            store,
        })
    }

    /// Keys of the cells measured successfully (what `--resume` skips).
    pub fn done(&self) -> std::collections::BTreeSet<String> {
        self.cells
            .iter()
            .filter(|c| c.error.is_none())
            .map(|c| c.cell.key())
            .collect()
    }
}

/// Writes a file through a temporary file beside it and a rename, so a reader never sees
/// it half written, and a file written from its own earlier contents is never emptied.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // a name of its own per writer: two writers never publish each other's torn file
    let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let written = std::fs::write(&tmp, bytes)
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Merges run directories (e.g. the shards of one matrix) into a new one: cells are keyed
/// by their identity; the same cell measured twice is an error.
pub async fn merge(dirs: &[RunDir], output: &Path) -> Result<RunDir> {
    let Some(first) = dirs.first() else {
        bail!("merge needs at least one run directory");
    };
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for d in dirs {
        if d.matrix != first.matrix {
            bail!(
                "{} holds matrix '{}' but {} holds '{}': merge only the shards of one matrix",
                d.path.display(),
                d.matrix,
                first.path.display(),
                first.matrix
            );
        }
        for c in &d.cells {
            if let Some(prev) = seen.insert(c.cell.key(), d.path.clone()) {
                bail!(
                    "cell {} is in both {} and {}",
                    c.cell.label(),
                    prev.display(),
                    d.path.display()
                );
            }
        }
    }
    let mut out = RunDir::create(output, &first.matrix).await?;
    out.run_id = dirs
        .iter()
        .map(|d| d.run_id.as_str())
        .collect::<Vec<_>>()
        .join("+");
    out.started = first.started.clone();
    out.save_meta().await?;
    // The merged directory is checked against the matrix of its shards.
    let matrix_file = first.path.join(MATRIX_FILE);
    if matrix_file.is_file() {
        let text = std::fs::read(&matrix_file)
            .with_context(|| format!("reading {}", matrix_file.display()))?;
        write_atomically(&output.join(MATRIX_FILE), &text)?;
    }
    for d in dirs {
        for c in &d.cells {
            out.push(c.clone()).await?;
        }
    }
    Ok(out)
}

/// The `amount` of the matrix a run directory keeps a copy of (`matrix.yaml`, also in a
/// merged directory); the matrix default when the copy is missing or does not say. A
/// wrong amount does not pass unnoticed: the recounted rates would not be the stored ones.
pub fn matrix_amount(dir: &Path) -> i64 {
    #[derive(Deserialize)]
    struct Amount {
        amount: Option<i64>,
    }
    std::fs::read_to_string(dir.join(MATRIX_FILE))
        .ok()
        .and_then(|text| serde_saphyr::from_str::<Amount>(&text).ok())
        .and_then(|a| a.amount)
        .unwrap_or(crate::input::matrix::DEFAULT_AMOUNT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::matrix::Cell;
    use crate::measure::metrics::{Observation, Outcome, Repetition};

    fn cell(endpoint: &str, error: Option<&str>) -> CellResult {
        let rec = |rep: u32, idx: u32| RequestRecord {
            repetition: rep,
            index: idx,
            outcome: Outcome::Response,
            status: Some(200),
            sent_unix_ns: 1,
            latency_ms: Some(2.0),
            body: Some(serde_json::json!({"pid": 7})),
            error: None,
        };
        CellResult {
            cell: Cell {
                stack: "s".into(),
                axes: BTreeMap::from([("endpoint".to_string(), endpoint.to_string())]),
            },
            repetitions: 2,
            requests: 2,
            metrics: error.is_none().then(Default::default),
            error: error.map(str::to_string),
            attempts: 1,
            timing: None,
            route: None,
            engine: None,
            reps: (0..2)
                .map(|r| Repetition {
                    before: Observation::default(),
                    after: Observation::default(),
                    burst_ms: 1.0,
                    records: vec![rec(r, 0), rec(r, 1)],
                })
                .collect(),
        }
    }

    #[test]
    fn writers_of_one_file_never_share_a_temporary_file() {
        let dir = std::env::temp_dir().join(format!("racy-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("results.json");
        // many writers at once, each with its own content: the file is always one of them
        std::thread::scope(|s| {
            for i in 0..8 {
                let file = &file;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomically(file, format!("{i}").repeat(4096).as_bytes()).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text.chars().next().unwrap();
        assert!(
            text.len() == 4096 && text.chars().all(|c| c == first),
            "torn"
        );
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
        // a file that cannot be written leaves no temporary file behind
        assert!(write_atomically(&dir.join("no/such/dir/x"), b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_store_path_is_a_file_name_not_a_url() {
        let root = std::env::temp_dir().join(format!("racy-store-url-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // a run directory already holding a run, and a path that a URL would resolve to it
        let victim = root.join("victim");
        RunDir::create(&victim, "m")
            .await
            .unwrap()
            .close()
            .await
            .unwrap();
        let odd = root.join("x%2F..%2Fvictim?mode=ro");
        let run = RunDir::create(&odd, "odd").await.unwrap();
        run.close().await.unwrap();
        assert!(
            odd.join(STORE_FILE).is_file(),
            "the store is inside the odd directory"
        );
        let back = RunDir::load(&victim).await.unwrap();
        assert_eq!(back.matrix, "m", "the other run is untouched");
        back.close().await.unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn store_round_trips_and_replaces() {
        let dir = std::env::temp_dir().join(format!("racy-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut run = RunDir::create(&dir, "m").await.unwrap();
        run.run_id = "r1".into();
        run.shard = Some("1/2".into());
        run.save_meta().await.unwrap();
        run.save_matrix("name: m\n").await.unwrap();
        run.push(cell("a", None)).await.unwrap();
        run.push(cell("b", Some("boom"))).await.unwrap();
        // the store commits; rendering the result files is the reports' business
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("results.") && !n.starts_with(STORE_FILE))
            .collect();
        assert!(files.is_empty(), "{files:?}");
        assert!(dir.join(STORE_FILE).is_file());
        // a second create refuses to mix runs
        assert!(RunDir::create(&dir, "m").await.is_err());
        let back = RunDir::load(&dir).await.unwrap();
        assert_eq!((back.matrix.as_str(), back.run_id.as_str()), ("m", "r1"));
        assert_eq!(back.shard.as_deref(), Some("1/2"));
        assert_eq!(back.cells.len(), 2);
        assert_eq!(back.cells[0].reps[1].records.len(), 2, "records come back");
        assert_eq!(back.cells[0].reps[1].records[1].index, 1);
        assert_eq!(back.done().len(), 1, "the failed cell is not done");
        // resuming replaces the failed cell in place
        let mut again = back;
        again.push(cell("b", None)).await.unwrap();
        let back = RunDir::load(&dir).await.unwrap();
        assert_eq!(back.cells.len(), 2);
        assert_eq!(back.done().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn the_store_file_stands_alone() {
        let dir = std::env::temp_dir().join(format!("racy-store-alone-{}", std::process::id()));
        let copy = dir.with_extension("copy");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&copy);
        let mut run = RunDir::create(&dir, "m").await.unwrap();
        run.save_matrix("name: m\n").await.unwrap();
        run.push(cell("a", None)).await.unwrap();
        run.push(cell("b", Some("boom"))).await.unwrap();
        // The process still holds the store open (as when it is killed): results.db alone
        // already has every cell.
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(dir.join(STORE_FILE), copy.join(STORE_FILE)).unwrap();
        let back = RunDir::load(&copy).await.unwrap();
        assert_eq!(back.cells.len(), 2);
        assert_eq!(back.cells[0].reps[1].records.len(), 2);
        assert_eq!(back.cells[1].error.as_deref(), Some("boom"));
        back.close().await.unwrap();
        // Closed, nothing is left beside it.
        run.close().await.unwrap();
        for side in ["results.db-wal", "results.db-shm"] {
            assert!(!dir.join(side).exists(), "{side} left behind");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&copy).unwrap();
    }

    #[tokio::test]
    async fn foreign_stores_are_refused() {
        let dir = std::env::temp_dir().join(format!("racy-store-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let run = RunDir::create(&dir, "m").await.unwrap();
        sqlx::query("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
            .execute(&run.store)
            .await
            .unwrap();
        run.store.close().await;
        let e = RunDir::load(&dir).await.err().unwrap().to_string();
        assert!(e.contains("layout 99"), "{e}");
        assert!(RunDir::load(&dir.join("nope")).await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
