//! `racy-matrix compare BASE NEW`: opens both run directories, has `measure::compare`
//! test every cell both measured, prints what changed, and decides the verdict.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::anyhow;

use crate::cli::finished::{self, Matrixed};
use crate::cli::outcome::{Failure, Verdict};
use crate::measure::compare::{FailOn, Run, compare, distinct, render};
use crate::store::results::matrix_amount;

/// `compare BASE NEW`: loads both run directories, tests every cell both measured, prints
/// what changed, and says whether that fails the command.
pub async fn command(
    base: &Path,
    new: &Path,
    fail_on: FailOn,
    alpha: f64,
    ignore: &[String],
) -> Result<Verdict, Failure> {
    let b = finished::open(base, None, Matrixed::No).await?.run;
    let n = finished::open(new, None, Matrixed::No).await?.run;
    let runs = [(&b, base), (&n, new)].map(|(d, path)| Run {
        cells: &d.cells,
        amount: matrix_amount(path),
        ignore,
    });
    let axes: BTreeSet<&String> = b
        .cells
        .iter()
        .chain(&n.cells)
        .flat_map(|c| c.cell.axes.keys())
        .collect();
    if let Some(unknown) = ignore.iter().find(|a| !axes.contains(a)) {
        let axes: Vec<&str> = axes.iter().map(|a| a.as_str()).collect();
        return Err(Failure::Input(anyhow!(
            "--ignore-axis {unknown}: neither run has that axis; their axes are: {}",
            axes.join(", ")
        )));
    }
    for (run, dir) in runs.iter().zip([base, new]) {
        distinct(run, dir).map_err(|e| Failure::Input(anyhow!(e)))?;
    }
    let found = compare(&runs[0], &runs[1], alpha);
    if found.matched == 0 {
        return Err(Failure::Input(anyhow!(
            "no cell of {} matches a cell of {}: they measured different stacks, endpoints or \
             axis values (--ignore-axis leaves an axis out of the match)",
            base.display(),
            new.display()
        )));
    }
    std::io::stdout()
        .write_all(render(&found).as_bytes())
        .map_err(|e| Failure::Local(e.into()))?;
    Ok(if found.fails(fail_on) {
        Verdict::Changed
    } else {
        Verdict::Ok
    })
}
