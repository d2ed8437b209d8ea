//! What the run loop tells whoever watches it: typed events, never text on a terminal.
//! The command line hands the loop one [`Events`] sink (the terminal's progress and the
//! result files, `report::live`); the loop's tests hand it a recorder.

use crate::deploy::progress::Step;
use crate::measure::cell::CellResult;

/// One thing that happened in a run.
#[derive(Clone, Copy, Debug)]
pub enum RunEvent<'a> {
    /// The run measures this many repetitions in all.
    Planned(u64),
    /// The cell being measured now.
    Status(&'a str),
    /// A step of bringing images or a stack up (of `stack`, when it is one stack's).
    Deploying {
        /// The stack.
        stack: Option<&'a str>,
        /// The step.
        step: Step<'a>,
    },
    /// Repetitions done: measured, or given up with their cell.
    Settled(u64),
    /// Repetitions counted by an attempt that then failed, taken back (the cell runs
    /// again on a fresh stack, or is given up).
    Unsettled(u64),
    /// A stack instance started; its bursts go to `to`, by `how`.
    StackUp {
        /// The stack.
        stack: &'a str,
        /// Where its bursts go.
        to: &'a str,
        /// The route, in words.
        how: &'a str,
    },
    /// An attempt at a cell failed; it is retried on a fresh stack.
    Retrying {
        /// The cell's label.
        cell: &'a str,
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// Why (secrets already removed).
        error: &'a str,
    },
    /// A cell could not be measured after its attempts (secrets already removed).
    CellFailed {
        /// The cell's label.
        cell: &'a str,
        /// Why.
        error: &'a str,
    },
    /// A cell was not run: its stack failed to start twice for the same reason.
    CellNotRun {
        /// The cell's label.
        cell: &'a str,
        /// Why.
        reason: &'a str,
    },
    /// A cell (measured or failed) is committed to the results store.
    CellStored(&'a CellResult),
    /// A stack instance was left running (`--keep-up`): where it answers.
    LeftUp(&'a str),
}

/// Where the run loop's events go. Called from the loop's tasks, so it must not block
/// for long: a sink that writes files does so on a thread of its own.
pub trait Events: Sync {
    /// Takes one event.
    fn send(&self, event: RunEvent<'_>);
}
