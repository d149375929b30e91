//! `medfusion monitor` end to end.

use std::process::{Command, Output};

fn medfusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(args)
        .output()
        .expect("medfusion runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn json_gives_one_line_per_sample_with_the_fields() {
    let out = medfusion(&["monitor", "--count", "2", "--interval", "100ms", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON object per line");
        for field in [
            "timestamp",
            "cpu_percent",
            "memory_percent",
            "memory_used_bytes",
            "memory_total_bytes",
            "process_rss_bytes",
        ] {
            assert!(value.get(field).is_some(), "`{field}` missing in {line}");
        }
        assert!(value["memory_total_bytes"].as_u64().unwrap() > 0);
        let cpu = value["cpu_percent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&cpu), "{line}");
        assert!(value["gpus"].is_array(), "{line}");
    }
}

#[test]
fn the_table_has_a_header_and_a_row_per_sample() {
    let out = medfusion(&["monitor", "-c", "3", "--interval", "10ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2 + 3, "{stdout}");
    assert!(lines[0].starts_with('#') && lines[0].contains("cpu") && lines[0].contains("gpu"));
    for row in &lines[2..] {
        let time = row.split_whitespace().next().unwrap();
        assert_eq!(time.len(), 8, "{row}");
        assert_eq!(time.matches(':').count(), 2, "{row}");
    }
}

#[test]
fn a_bad_interval_is_a_usage_error_naming_the_flag() {
    let out = medfusion(&["monitor", "--interval", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--interval"),
        "{}",
        text(&out.stderr)
    );
    let out = medfusion(&["monitor", "--interval", "0s", "--count", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("`interval`"),
        "{}",
        text(&out.stderr)
    );
}
