//! `--shard K/N`: the cells of a matrix split into N shards of about equal estimated time.
//!
//! The unit assigned is the cell. Longest first (by the time of its repetitions, measured
//! or estimated), each cell goes to the shard whose estimate it raises least in total:
//! the shard's time after the cell is inserted at its place in the run order, with the
//! setups its new neighbours need (a stack start, a restart, a live change). A shard keeps
//! the matrix's run order, so the cells it holds of one restart group (the same stack and
//! restart variables) run back to back: a shard pays at most one start per stack and one
//! restart per group it holds. Those setups are small beside a shard (on the nightly
//! matrix, 9 groups at most ~3 s each and 2 starts against ~90 minutes a shard), so
//! cells rather than whole groups or runs of cells are assigned: a group of the nightly
//! matrix holds a sixth of its time, too coarse for 16 shards. And the setup a cell
//! adds counts in its choice, so a small cell goes where its group already runs
//! when the shards are otherwise even.
//!
//! Where a few cells of very different sizes leave the greedy pass uneven, single moves
//! or swaps of a cell out of the slowest shard follow while they help, and the split by
//! count is kept when it is still better: the result is never worse than counting.
//!
//! The assignment is a pure function of the cells, their order and the costs: ties go to
//! the earlier cell and the lower shard, the measurements are read by key in sorted
//! order, so every shard job of a CI matrix computes the same split and the shards never
//! overlap or miss a cell.

use std::collections::BTreeSet;

use crate::input::matrix::Cell;
use crate::input::setup::Setup;
use crate::plan::cost::{Costs, setup};

/// The shard (0-based, below `n`) of every cell, balanced by cost (see the module doc).
pub fn assign(cells: &[Cell], n: usize, costs: &Costs) -> Vec<usize> {
    assert!(n >= 1, "at least one shard");
    let mut split = Split::new(cells, n, costs);
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by(|&a, &b| split.work[b].total_cmp(&split.work[a]).then(a.cmp(&b)));
    for i in order {
        let mut best: Option<(f64, usize)> = None;
        for s in 0..n {
            let after = split.load[s] + split.insert_delta(s, i, None);
            if best.is_none_or(|(b, _)| after < b) {
                best = Some((after, s));
            }
        }
        let (_, s) = best.expect("at least one shard");
        split.insert(s, i);
    }
    // a few cells of very different sizes can leave the greedy pass uneven
    for _ in 0..2 * n {
        if !split.improve() {
            break;
        }
    }
    let mut out = vec![0; cells.len()];
    for (s, held) in split.members.iter().enumerate() {
        for &i in held {
            out[i] = s;
        }
    }
    // never worse than contiguous slices of equal count
    let by_count: Vec<usize> = (0..cells.len())
        .map(|i| i * n / cells.len().max(1))
        .collect();
    let slowest = |of: &[usize]| {
        (0..n)
            .map(|s| {
                let held: Vec<Cell> = (0..cells.len())
                    .filter(|&i| of[i] == s)
                    .map(|i| cells[i].clone())
                    .collect();
                costs.total_s(&held)
            })
            .fold(0.0, f64::max)
    };
    if slowest(&by_count) < slowest(&out) {
        return by_count;
    }
    out
}

/// Swaps are tried with shards of at most this many cells: where shards hold many, the
/// greedy pass is already within the smallest cell of even, and swaps cost the square.
const SWAPS_UP_TO: usize = 8;

/// Shards being filled: the cells each holds (indices into the run order) and its
/// estimate, kept up to date as cells come and go.
struct Split<'a> {
    cells: &'a [Cell],
    costs: &'a Costs<'a>,
    /// Seconds of each cell's repetitions.
    work: Vec<f64>,
    members: Vec<BTreeSet<usize>>,
    load: Vec<f64>,
}

impl<'a> Split<'a> {
    fn new(cells: &'a [Cell], n: usize, costs: &'a Costs<'a>) -> Split<'a> {
        Split {
            cells,
            costs,
            work: cells.iter().map(|c| costs.work_s(c)).collect(),
            members: vec![BTreeSet::new(); n],
            load: vec![0.0; n],
        }
    }

    fn setup_s(&self, prev: Option<usize>, next: usize) -> f64 {
        self.costs
            .setup_s(prev.map(|p| &self.cells[p]), &self.cells[next])
    }

    /// What shard `s` (without cell `skip`) gains when cell `i` joins it at its place in
    /// the run order: its work, its setup, and the change in its successor's setup.
    fn insert_delta(&self, s: usize, i: usize, skip: Option<usize>) -> f64 {
        let held = &self.members[s];
        let prev = held.range(..i).rev().find(|&&x| Some(x) != skip).copied();
        let next = held.range(i + 1..).find(|&&x| Some(x) != skip).copied();
        let mut added = self.work[i] + self.setup_s(prev, i);
        if let Some(q) = next {
            added += self.setup_s(Some(i), q) - self.setup_s(prev, q);
        }
        added
    }

    /// What shard `s` loses when its cell `i` leaves it.
    fn remove_delta(&self, s: usize, i: usize) -> f64 {
        -self.insert_delta(s, i, Some(i))
    }

    fn insert(&mut self, s: usize, i: usize) {
        self.load[s] += self.insert_delta(s, i, None);
        self.members[s].insert(i);
    }

    fn remove(&mut self, s: usize, i: usize) {
        self.load[s] += self.remove_delta(s, i);
        self.members[s].remove(&i);
    }

    /// Moves one cell out of the slowest shard, or swaps one with a small shard's, when
    /// that brings both shards 0.2 % below the slowest's estimate: the move that leaves
    /// the slower of the two fastest. Whether it found one.
    fn improve(&mut self) -> bool {
        let top = (0..self.load.len()).fold(0, |best, s| {
            if self.load[s] > self.load[best] {
                s
            } else {
                best
            }
        });
        // a gain below 0.2 % is not worth the search
        let limit = self.load[top] * 0.998;
        // (slower of the two after, cell leaving the top, shard it goes to, cell coming back)
        let mut best: Option<(f64, usize, usize, Option<usize>)> = None;
        for &i in &self.members[top] {
            let out = self.load[top] + self.remove_delta(top, i);
            for s in (0..self.load.len()).filter(|&s| s != top) {
                let moved = out.max(self.load[s] + self.insert_delta(s, i, None));
                let mut consider = |after: f64, back: Option<usize>| {
                    if after < limit && best.is_none_or(|b| after < b.0) {
                        best = Some((after, i, s, back));
                    }
                };
                consider(moved, None);
                if self.members[s].len() > SWAPS_UP_TO {
                    continue;
                }
                for &j in &self.members[s] {
                    let there =
                        self.load[s] + self.remove_delta(s, j) + self.insert_delta(s, i, Some(j));
                    let here = out + self.insert_delta(top, j, Some(i));
                    consider(there.max(here), Some(j));
                }
            }
        }
        let Some((_, i, s, back)) = best else {
            return false;
        };
        self.remove(top, i);
        if let Some(j) = back {
            self.remove(s, j);
            self.insert(top, j);
        }
        self.insert(s, i);
        true
    }
}

/// Shard `k` of `n` (1-based) of `cells`, balanced by cost, in run order.
pub fn shard(cells: &[Cell], k: usize, n: usize, costs: &Costs) -> Vec<Cell> {
    assert!((1..=n).contains(&k), "shard {k}/{n}");
    let of = assign(cells, n, costs);
    cells
        .iter()
        .zip(of)
        .filter(|(_, s)| *s == k - 1)
        .map(|(c, _)| c.clone())
        .collect()
}

/// What one shard holds and how long it should take.
/// How many stack instances a run starts: `--parallel`, at least one per engine, at most
/// one per cell.
pub fn instances(parallel: usize, engines: usize, cells: usize) -> usize {
    parallel.max(engines).min(cells).max(1)
}

/// The plan of a run on `n` instances: `cells` in slices balanced by estimated time, as
/// `--shard` balances shards, each in the run order, so each instance keeps the restart
/// order.
pub fn slices(cells: &[Cell], n: usize, costs: &Costs) -> Vec<Vec<Cell>> {
    (1..=n).map(|k| shard(cells, k, n, costs)).collect()
}

#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// Its cells.
    pub cells: usize,
    /// Stack starts its order needs.
    pub starts: usize,
    /// Restarts (services recreated) its order needs.
    pub restarts: usize,
    /// Estimated seconds.
    pub seconds: f64,
}

impl Estimate {
    /// The estimate of `cells` run in this order on one stack instance.
    pub fn of(cells: &[Cell], costs: &Costs) -> Estimate {
        let mut e = Estimate {
            cells: cells.len(),
            starts: 0,
            restarts: 0,
            seconds: costs.total_s(cells),
        };
        let mut prev = None;
        for c in cells {
            match setup(prev, c, costs.catalog).0 {
                Setup::Start => e.starts += 1,
                Setup::Restart | Setup::RestartDatabase => e.restarts += 1,
                _ => {}
            }
            prev = Some(c);
        }
        e
    }
}

/// The estimate of each of the `n` cost-balanced shards of `cells`.
pub fn estimates(cells: &[Cell], n: usize, costs: &Costs) -> Vec<Estimate> {
    let of = assign(cells, n, costs);
    (0..n)
        .map(|s| {
            let held: Vec<Cell> = cells
                .iter()
                .zip(&of)
                .filter(|(_, o)| **o == s)
                .map(|(c, _)| c.clone())
                .collect();
            Estimate::of(&held, costs)
        })
        .collect()
}

/// The estimate of each of the `n` count-based shards (contiguous slices of the run
/// order whose sizes differ by at most one: the split before costs were balanced).
pub fn count_estimates(cells: &[Cell], n: usize, costs: &Costs) -> Vec<Estimate> {
    (1..=n)
        .map(|k| Estimate::of(&crate::input::matrix::shard(cells, k, n), costs))
        .collect()
}

/// The slowest shard's estimate over the mean (1 for perfectly even shards; the night
/// lasts as long as the slowest).
pub fn max_over_mean(estimates: &[Estimate]) -> f64 {
    let n = estimates.len().max(1) as f64;
    let mean = estimates.iter().map(|e| e.seconds).sum::<f64>() / n;
    let max = estimates.iter().map(|e| e.seconds).fold(0.0, f64::max);
    if mean > 0.0 { max / mean } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::input::matrix::Matrix;
    use crate::input::stack::StackCatalog;
    use crate::measure::cell::CellTiming;
    use crate::plan::cost::{Sample, Timings};

    fn load(name: &str) -> (Matrix, Vec<Cell>, StackCatalog) {
        let stacks = crate::input::stack::discover(Path::new("stacks")).unwrap();
        let catalog = StackCatalog { stacks };
        let m = crate::input::matrix::load(Path::new(&format!("matrices/{name}.yaml")), &catalog)
            .unwrap();
        let cells = crate::input::matrix::expand(&m, &catalog);
        (m, cells, catalog)
    }

    /// Every cell in exactly one shard, each shard in run order.
    fn assert_partition(cells: &[Cell], n: usize, costs: &Costs) {
        let of = assign(cells, n, costs);
        assert_eq!(of.len(), cells.len(), "a shard for every cell");
        assert!(of.iter().all(|s| *s < n));
        let mut seen = BTreeMap::new();
        for k in [1, n] {
            // `shard` takes the cells `assign` gives it, in run order
            let want: Vec<Cell> = (0..cells.len())
                .filter(|i| of[*i] == k - 1)
                .map(|i| cells[i].clone())
                .collect();
            assert_eq!(shard(cells, k, n, costs), want);
        }
        for (c, s) in cells.iter().zip(&of) {
            assert!(seen.insert(c.key(), s).is_none(), "{} twice", c.label());
        }
        assert_eq!(seen.len(), cells.len(), "a cell in no shard");
    }

    #[test]
    fn shards_partition_every_shipped_matrix() {
        for name in ["quick", "isolation", "nightly", "lock-scope"] {
            let (m, cells, catalog) = load(name);
            let costs = Costs::model(&m, &catalog);
            for n in [1, 2, 3, 7, 16] {
                assert_partition(&cells, n, &costs);
            }
        }
        // more shards than cells: the surplus shards are empty
        let (m, cells, catalog) = load("quick");
        let costs = Costs::model(&m, &catalog);
        let mut joined: Vec<Cell> = (1..=5).flat_map(|k| shard(&cells, k, 5, &costs)).collect();
        joined.sort_by_key(|c| cells.iter().position(|x| x == c));
        assert_eq!(joined, cells, "the shards together hold every cell once");
        assert_partition(&cells, cells.len() + 3, &costs);
        assert_eq!(
            shard(&cells, cells.len() + 3, cells.len() + 3, &costs),
            vec![]
        );
    }

    /// The nightly workflow's sizing: 16 shards, each on 2 stack instances, must fit in
    /// the hour with the build; each shard's two slices split its time about evenly.
    #[test]
    fn a_nightly_shard_on_two_instances_takes_about_half() {
        let (m, cells, catalog) = load("nightly");
        let costs = Costs::model(&m, &catalog);
        for k in [1, 8, 16] {
            let mine = shard(&cells, k, 16, &costs);
            let whole = Estimate::of(&mine, &costs).seconds;
            let halves = estimates(&mine, 2, &costs);
            let slowest = halves.iter().map(|e| e.seconds).fold(0.0, f64::max);
            // each half starts its stacks again: a little over half, never near the whole
            assert!(
                slowest >= whole / 2.0 && slowest <= 0.55 * whole,
                "{slowest} of {whole}"
            );
            assert!(
                slowest <= 50.0 * 60.0,
                "shard {k}: {slowest:.0} s on 2 instances"
            );
        }
    }

    #[test]
    fn nightly_shards_are_within_ten_percent_of_the_mean() {
        let (m, cells, catalog) = load("nightly");
        let costs = Costs::model(&m, &catalog);
        let e = estimates(&cells, 16, &costs);
        let mean = e.iter().map(|e| e.seconds).sum::<f64>() / 16.0;
        for (k, s) in e.iter().enumerate() {
            assert!(
                (s.seconds - mean).abs() <= 0.10 * mean,
                "shard {}: {:.0} s against a mean of {mean:.0} s",
                k + 1,
                s.seconds
            );
        }
        assert!(max_over_mean(&e) <= 1.10);
        // what counting cells gave
        assert!(max_over_mean(&count_estimates(&cells, 16, &costs)) > 1.3);
        // the starts, restarts and live changes the split adds cost little
        let whole = costs.total_s(&cells);
        let split: f64 = e.iter().map(|e| e.seconds).sum();
        assert!(
            split <= 1.02 * whole,
            "{split:.0} s split, {whole:.0} s whole"
        );
        assert!(
            e.iter().all(|e| e.starts <= 2),
            "one start per stack: {e:?}"
        );
        assert!(e.iter().all(|e| e.restarts <= 9), "one per group: {e:?}");
    }

    #[test]
    fn never_slower_than_the_split_by_count() {
        for name in ["quick", "isolation", "lock-scope", "sqlite"] {
            let (m, cells, catalog) = load(name);
            let costs = Costs::model(&m, &catalog);
            for n in [4, 16, 64] {
                let slowest = |e: Vec<Estimate>| e.iter().map(|e| e.seconds).fold(0.0, f64::max);
                let by_cost = slowest(estimates(&cells, n, &costs));
                let by_count = slowest(count_estimates(&cells, n, &costs));
                assert!(
                    by_cost <= by_count + 1e-9,
                    "{name} in {n}: {by_cost} > {by_count}"
                );
            }
        }
    }

    #[test]
    fn the_split_is_stable() {
        let (m, cells, catalog) = load("nightly");
        let costs = Costs::model(&m, &catalog);
        let a = assign(&cells, 16, &costs);
        assert_eq!(a, assign(&cells, 16, &costs));
        // measured timings given in another order (another run's order, or a map walked
        // in another order) give the same split
        let samples: Vec<Sample> = cells
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == 0)
            .map(|(i, c)| Sample {
                cell: c.clone(),
                requests: m.requests,
                repetitions: m.repetitions,
                timing: CellTiming {
                    seconds: 5.0 + (i % 17) as f64,
                    setup: Setup::None,
                    setup_seconds: 0.0,
                },
            })
            .collect();
        let mut reversed = samples.clone();
        reversed.reverse();
        let hashed: std::collections::HashMap<String, Sample> =
            samples.iter().map(|s| (s.cell.key(), s.clone())).collect();
        let t1 = Timings::from_samples(samples);
        let t2 = Timings::from_samples(reversed);
        let t3 = Timings::from_samples(hashed.into_values());
        let with = |t: &Timings| assign(&cells, 16, &Costs::new(&m, &catalog, t));
        let b = with(&t1);
        assert_eq!(b, with(&t2));
        assert_eq!(b, with(&t3));
        assert_ne!(a, b, "the timings change the split");
        assert_partition(&cells, 16, &Costs::new(&m, &catalog, &t1));
    }
}
