//! A run as it goes: the terminal's progress bar and lines, and the result files
//! rewritten from the cells stored so far — at most every [`EVERY`], on a thread of
//! their own, never under the store's lock. The command line renders them once more
//! when the run ends, however it ends.

use std::path::PathBuf;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::input::matrix::Expectation;
use crate::measure::cell::CellResult;
use crate::report::export::{RunReport, write_all};
use crate::run::events::{Events, RunEvent};
use crate::store::results::RunDir;

/// The least time between two renderings of the result files during a run.
pub const EVERY: Duration = Duration::from_secs(5);

/// What the header of every result file says of the run.
#[derive(Clone)]
struct Header {
    matrix: String,
    run_id: String,
    started: String,
    shard: Option<String>,
    expect: Vec<Expectation>,
}

/// The run directory's files as the reporter keeps them.
struct Files {
    dir: PathBuf,
    header: Header,
    cells: Vec<CellResult>,
    last: Option<Instant>,
    writer: Option<JoinHandle<()>>,
}

/// The terminal and the result files of a run in progress.
pub struct Live {
    bar: ProgressBar,
    files: Mutex<Files>,
}

impl Live {
    /// A reporter for the run that writes into `dir` (its cells so far included).
    pub fn new(dir: &RunDir) -> Live {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} reps  ETA {eta_precise}\n  {msg}",
            )
            .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Live {
            bar,
            files: Mutex::new(Files {
                dir: dir.path.clone(),
                header: Header {
                    matrix: dir.matrix.clone(),
                    run_id: dir.run_id.clone(),
                    started: dir.started.clone(),
                    shard: dir.shard.clone(),
                    expect: dir.expect.clone(),
                },
                cells: dir.cells.clone(),
                last: None,
                writer: None,
            }),
        }
    }

    /// Clears the bar and waits for a rendering in flight (the caller renders the
    /// final files itself, from the store).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
        let writer = self.files.lock().map(|mut f| f.writer.take());
        if let Ok(Some(w)) = writer {
            let _ = w.join();
        }
    }

    fn status(&self, text: &str) {
        self.bar
            .set_message(text.chars().take(100).collect::<String>());
    }

    fn line(&self, text: String) {
        self.bar.suspend(|| eprintln!("{text}"));
    }

    /// Keeps a stored cell and renders the files if the last rendering is old enough
    /// and none is in flight.
    fn stored(&self, cell: &CellResult) {
        let Ok(mut f) = self.files.lock() else {
            return;
        };
        let key = cell.cell.key();
        match f.cells.iter_mut().find(|c| c.cell.key() == key) {
            Some(slot) => *slot = cell.clone(),
            None => f.cells.push(cell.clone()),
        }
        let busy = f.writer.as_ref().is_some_and(|w| !w.is_finished());
        let due = f.last.is_none_or(|t| t.elapsed() >= EVERY);
        if busy || !due {
            return;
        }
        f.last = Some(Instant::now());
        let (dir, header, cells) = (f.dir.clone(), f.header.clone(), f.cells.clone());
        f.writer = Some(std::thread::spawn(move || {
            let report = RunReport {
                matrix: &header.matrix,
                run_id: &header.run_id,
                started: &header.started,
                shard: header.shard.as_deref(),
                cells: &cells,
                expect: &header.expect,
            };
            if let Err(e) = write_all(&dir, &report) {
                eprintln!("warning: rewriting the result files: {e:#}");
            }
        }));
    }
}

impl Events for Live {
    fn send(&self, event: RunEvent<'_>) {
        match event {
            RunEvent::Planned(n) => self.bar.set_length(n),
            RunEvent::Status(s) => self.status(s),
            RunEvent::Deploying {
                stack: Some(stack),
                step,
            } => self.status(&format!("{stack}: {step}")),
            RunEvent::Deploying { stack: None, step } => self.status(&step.to_string()),
            RunEvent::Settled(n) => self.bar.inc(n),
            RunEvent::Unsettled(n) => self.bar.dec(n),
            RunEvent::StackUp { stack, to, how } => {
                self.line(format!("stack {stack}: bursts go to {to}, {how}"))
            }
            RunEvent::Retrying {
                cell,
                attempt,
                error,
            } => self.line(format!(
                "cell {cell} failed (attempt {attempt}), retrying on a fresh stack: {error}"
            )),
            RunEvent::CellFailed { cell, error } => {
                self.line(format!("cell {cell} failed: {error}"))
            }
            RunEvent::CellNotRun { cell, reason } => self.line(format!("cell {cell} {reason}")),
            RunEvent::CellStored(c) => self.stored(c),
            RunEvent::LeftUp(note) => self.bar.suspend(|| println!("{note}")),
        }
    }
}
