//! The run report opens in a real browser: headless Chromium renders `report.html` to a
//! PNG that is not blank, and the page logs no errors.
//!
//! Needs Chromium (`/usr/bin/chromium`, Debian's `chromium` package). Without it the test
//! is skipped with a note, unless `MEDFUSION_REQUIRE_CHROMIUM=1` (set by CI) makes it fail.

mod common;

use std::path::Path;
use std::process::Command;

const WORKFLOW: &str = "\
name: report-demo
nodes:
  - { id: a, type: util.value, config: { value: 3 } }
  - { id: b, type: util.sleep, config: { duration: 50ms } }
  - { id: c, type: util.noop }
edges:
  - { from: a.out, to: b.in }
  - { from: b.out, to: c.in }
";

#[test]
fn report_renders_in_headless_chromium() {
    let Some(browser) = common::browser_for_test() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.yaml"), WORKFLOW).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args([
            "run",
            "w.yaml",
            "--out",
            "run",
            "--monitor-interval",
            "20ms",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = dir.path().join("run/report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<svg"), "the report has charts");
    for fetch in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(
            !html.contains(fetch),
            "the report fetches something: {fetch}"
        );
    }

    let png = dir.path().join("report.png");
    let profile = dir.path().join("profile");
    let shot = Command::new(&browser)
        .args(common::HEADLESS)
        .args([
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", report.display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&shot.stderr);
    assert!(png.exists(), "no screenshot: {log}");
    let console_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(
        console_errors.is_empty(),
        "the page logged errors: {console_errors:?}"
    );
    assert_not_blank(&png);
}

/// A blank page is one colour; a report has many.
fn assert_not_blank(path: &Path) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let mut colours = std::collections::HashSet::new();
    for px in bytes.chunks(step).step_by(7) {
        colours.insert(px.to_vec());
    }
    assert!(
        colours.len() > 50,
        "the screenshot looks blank ({} colours)",
        colours.len()
    );
}
