//! The limits on what reading a workflow may cost: file size, YAML values, aliases.

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use medfusion_graph::{Error, Format, Workflow};

const MIB: u64 = 1 << 20;

/// A file of its own under the system's temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        TempFile(
            std::env::temp_dir().join(format!("medfusion-graph-{}-{name}", std::process::id())),
        )
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `f` on its own thread, failing (instead of hanging) if it takes over a minute:
/// an alias bomb that got through would expand for hours or fill memory.
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(Duration::from_mins(1))
        .expect("reading did not finish within a minute")
}

/// A reader that counts the bytes read from it.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// `n` nodes, each with three config keys, in a chain of `n - 1` edges.
fn chain_yaml(n: usize) -> String {
    let mut y = String::from("name: big\nnodes:\n");
    for i in 0..n {
        let _ = writeln!(
            y,
            "  - id: n{i}\n    type: util.pass\n    config: {{ samples: {i}, rate: 0.5, mode: fast }}"
        );
    }
    y.push_str("edges:\n");
    for i in 1..n {
        let _ = writeln!(y, "  - {{ from: n{}.out, to: n{i}.in }}", i - 1);
    }
    y
}

#[test]
fn a_100k_node_workflow_parses() {
    // Refused before (`budget breached: Nodes`) from about 20,000 nodes of this shape.
    let yaml = chain_yaml(100_000);
    let workflow = Workflow::parse(&yaml, Format::Yaml).unwrap();
    assert_eq!(workflow.nodes.len(), 100_000);
    assert_eq!(workflow.edges.len(), 99_999);
    assert_eq!(workflow.nodes[99_999].id, "n99999");
    assert_eq!(workflow.nodes[99_999].config["samples"], 99_999);
    assert_eq!(workflow.node_line(99_999), Some(2 + 3 * 99_999 + 1));
    assert_eq!(
        workflow.edge_line(99_998),
        Some(2 + 3 * 100_000 + 1 + 99_999)
    );
}

#[test]
fn the_limit_on_yaml_values_fits_100k_nodes_with_a_dozen_config_keys() {
    // A node with twelve config keys is 31 values (mapping, 3 keys, 2 values, config
    // mapping, 24 keys and values), an edge 5.
    const { assert!(Workflow::MAX_YAML_VALUES >= 100_000 * (31 + 5)) };
}

#[test]
fn an_alias_bomb_is_refused_with_a_clear_message() {
    // "Billion laughs": nine levels of nine aliases each, 9^9 (387 million) strings once
    // expanded, in a config where any value is accepted.
    let mut yaml = String::from(
        "name: bomb\nnodes:\n  - id: a\n    type: t\n    config:\n      l0: &l0 [lol, lol, lol, \
         lol, lol, lol, lol, lol, lol]\n",
    );
    for level in 1..=9 {
        let aliases = vec![format!("*l{}", level - 1); 9].join(", ");
        let _ = writeln!(yaml, "      l{level}: &l{level} [{aliases}]");
    }
    let err = within_a_minute(move || Workflow::parse(&yaml, Format::Yaml).unwrap_err());
    let Error::Parse { line, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(line.is_some(), "{err}");
    assert!(message.contains("alias bombs"), "{message}");
    assert!(!message.contains("budget"), "{message}");
}

#[test]
fn a_wide_alias_bomb_is_refused_with_a_clear_message() {
    // One big anchor used by many aliases: each alias alone is cheap.
    let big = vec!["x"; 5_000].join(", ");
    let aliases = vec!["*big"; 500].join(", ");
    let yaml = format!(
        "name: bomb\nnodes:\n  - id: a\n    type: t\n    config:\n      big: &big [{big}]\n      \
         all: [{aliases}]\n"
    );
    let err = within_a_minute(move || Workflow::parse(&yaml, Format::Yaml).unwrap_err());
    let message = err.to_string();
    assert!(message.contains("aliases (`*name`)"), "{message}");
    assert!(message.contains("alias bombs"), "{message}");
}

#[cfg(unix)]
#[test]
fn reading_dev_zero_stops_at_the_limit() {
    let err = within_a_minute(|| Workflow::from_path("/dev/zero").unwrap_err());
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "`/dev/zero` is larger than the 64 MiB limit for workflow files"
    );
}

#[test]
fn a_stream_that_never_ends_is_read_one_byte_past_the_limit() {
    let read = Arc::new(AtomicU64::new(0));
    let reader = Counting {
        inner: std::io::repeat(b'#'),
        read: Arc::clone(&read),
    };
    let err = Workflow::from_reader(reader, "<stdin>").unwrap_err();
    assert_eq!(
        err.to_string(),
        "`<stdin>` is larger than the 64 MiB limit for workflow files"
    );
    assert_eq!(read.load(Ordering::Relaxed), Workflow::MAX_FILE_BYTES + 1);
}

#[test]
fn a_large_file_is_refused_before_it_is_read() {
    let file = TempFile::new("large.yaml");
    let f = std::fs::File::create(&file.0).unwrap();
    // Sparse: no disk space is used.
    f.set_len(Workflow::MAX_FILE_BYTES + 1).unwrap();
    drop(f);
    let err = Workflow::from_path(&file.0).unwrap_err();
    let Error::TooLarge { path, limit } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path, &file.0);
    assert_eq!(*limit, 64 * MIB);
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` is larger than the 64 MiB limit for workflow files",
            file.0.display()
        )
    );
}

#[test]
fn a_stream_within_the_limit_reads_like_a_file() {
    let yaml = b"name: piped\nnodes:\n  - { id: a, type: t }\n";
    let workflow = Workflow::from_reader(&yaml[..], "<stdin>").unwrap();
    assert_eq!(workflow.name, "piped");
    assert_eq!(
        workflow.source_path(),
        Some(std::path::Path::new("<stdin>"))
    );
    let json = br#"{"name": "piped", "nodes": [{"id": "a", "type": "t"}]}"#;
    assert_eq!(Workflow::from_reader(&json[..], "-").unwrap().name, "piped");
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let err = Workflow::from_path("/no/such/workflow.yaml").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot read workflow file `/no/such/workflow.yaml`"
    );
}
