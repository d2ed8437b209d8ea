//! report.html in a real browser: a small real run on the engine, then headless Chromium
//! (Debian's `chromium`) opens the run directory's report.html offline: the DOM it builds
//! holds a drill-down section per cell and a heatmap per endpoint, and its screenshot is
//! a picture, not a blank page.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long Chromium may take before the test kills it and fails.
const BROWSER_LIMIT: Duration = Duration::from_secs(60);

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Debian's Chromium on the PATH. Under CI=true a missing one fails the test (as a
/// missing engine does); otherwise the test is skipped with a message.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !ci(),
            "CI=true and no chromium on the PATH: tests/it/report_html.rs needs it (apt-get install chromium)"
        );
        eprintln!("SKIPPED: no chromium on the PATH (set CI=true to make this a failure)");
    }
    found
}

/// Runs headless Chromium on `url` with `args` and its own profile under `scratch`, in
/// its own process group; kills the group and fails when it takes longer than
/// [`BROWSER_LIMIT`]. Returns what it wrote to stdout.
fn headless(browser: &Path, scratch: &Path, args: &[&str], url: &str) -> String {
    let profile = scratch.join(format!("profile-{}", args.len()));
    let log = std::fs::File::create(scratch.join("chromium.log")).unwrap();
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("chromium starts");
    let group = child.id() as i32;
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let until = Instant::now() + BROWSER_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > until {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // the browser's helper processes share its group: none outlives the call
    // SAFETY: kill(2) on the group this call started; it touches no memory
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
    let out = reader.join().unwrap();
    let status = status.unwrap_or_else(|| panic!("chromium {args:?} ran over {BROWSER_LIMIT:?}"));
    assert!(
        status.success(),
        "chromium {args:?}: {status}; see {}",
        scratch.join("chromium.log").display()
    );
    out
}

/// A cell's key as `Cell::key` makes it: `stack|axis=value|…`, axes sorted.
fn key(cell: &Value) -> String {
    let axes: BTreeMap<&String, &str> = cell["axes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(a, v)| (a, v.as_str().unwrap()))
        .collect();
    let mut k = cell["stack"].as_str().unwrap().to_string();
    for (a, v) in axes {
        k.push_str(&format!("|{a}={v}"));
    }
    k
}

/// How many distinct colours a PNG holds, and the share of its most common one.
fn colours(png_file: &Path) -> (usize, f64) {
    let file = std::io::BufReader::new(std::fs::File::open(png_file).unwrap());
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    for px in buf[..info.buffer_size()].chunks_exact(step) {
        *counts.entry(px).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    let top = counts.values().max().copied().unwrap_or(0);
    (counts.len(), top as f64 / total.max(1) as f64)
}

#[tokio::test]
async fn a_browser_shows_every_cell_and_a_heatmap_per_endpoint() {
    let Some(browser) = chromium() else { return };
    if !common::engine_available().await {
        return;
    }
    let _engine = common::exclusive().await;
    let (out, json) = common::run_ok("tests/matrices/report.yaml", "report-html");
    let report = out.join("report.html");
    assert!(
        report.is_file(),
        "the run writes report.html beside results.json"
    );
    let url = format!("file://{}", report.display());
    let scratch = common::temp_dir("report-html-chromium");

    // the DOM Chromium builds from the file, offline
    let dom = headless(&browser, &scratch, &["--dump-dom"], &url);
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4, "2 endpoints x 2 worker counts");
    assert_eq!(dom.matches("data-cell=").count(), cells.len(), "{dom}");
    for (n, c) in (1..).zip(cells) {
        let section = format!("id=\"cell-{n}\" data-cell=\"{}\"", key(&c["cell"]));
        assert_eq!(dom.matches(&section).count(), 1, "{section} in {dom}");
        assert!(
            dom.contains(&format!("href=\"#cell-{n}\"")),
            "a link to cell {n}"
        );
    }
    let endpoints: BTreeSet<String> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["stack"].as_str().unwrap(),
                r["endpoint"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(endpoints.len(), 2);
    assert_eq!(dom.matches("data-heatmap=").count(), endpoints.len());
    for e in &endpoints {
        assert_eq!(
            dom.matches(&format!("data-heatmap=\"{e}\"")).count(),
            1,
            "{e}"
        );
    }
    // each square says k/n: for counters, the lost updates of the ledger rows
    for r in json["rows"].as_array().unwrap() {
        if r["excess_applied"] == 0 {
            let kn = format!(
                ">{}/{}</text>",
                common::int(r, "anomalies"),
                common::int(r, "ledger_rows")
            );
            assert!(dom.contains(&kn), "{kn} for {r}");
        }
    }

    // what it paints: a picture, not a blank page
    let shot = scratch.join("report.png");
    let arg = format!("--screenshot={}", shot.display());
    headless(&browser, &scratch, &["--window-size=1280,1600", &arg], &url);
    let (distinct, top) = colours(&shot);
    assert!(distinct >= 20, "{distinct} colours in {}", shot.display());
    assert!(
        top <= 0.98,
        "one colour covers {:.1}% of {}",
        top * 100.0,
        shot.display()
    );

    // the axes are the user's to choose, among the run's
    let dir = out.to_str().unwrap();
    let bad = common::racy(&["report", dir, "--format", "html", "--x", "wrokers"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("wrokers") && err.contains("workers"), "{err}");
    let by_delay = common::racy(&["report", dir, "--format", "html", "--x", "delay_ms"]);
    assert!(by_delay.status.success());
    assert!(String::from_utf8_lossy(&by_delay.stdout).contains("delay_ms=200"));
    let _ = std::fs::remove_dir_all(&scratch);
}
