//! Table-driven tests of what a bad workflow file is told: every message names the file
//! and the line, says what is wrong in words, and leaks no reader internals (Rust types,
//! reader options or APIs, debug output).

use std::path::{Path, PathBuf};

use medfusion_graph::{Error, Format, Workflow};
use rstest::rstest;

/// Words from the readers' own messages that a workflow author should never see.
const LEAKS: &[&str] = &[
    "Options",
    "from_str",
    "Option<",
    "budget",
    "DuplicateKeyPolicy",
    "Spanned",
    "serde",
    "saphyr",
    "struct ",
    "u32",
    "u64",
    "i64",
    "f64",
    "Some(",
    "None",
];

/// A directory of its own under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "medfusion-graph-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, file: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The message with text in backticks or quotes taken out: what is left is the
/// program's own words.
fn own_words(message: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '`' | '\'' | '"') => quote = Some(c),
            None => out.push(c),
        }
    }
    out
}

fn assert_plain(message: &str) {
    for leak in LEAKS {
        assert!(!message.contains(leak), "`{leak}` in: {message}");
    }
    // Debug output (`Nodes { nodes: 250001 }`) is the one source of braces outside
    // quotes.
    assert!(!own_words(message).contains('{'), "a brace in: {message}");
    assert!(!message.contains('\n'), "more than one line: {message}");
}

/// The error for `text` written to `file`, read back through `Workflow::from_path`.
fn error_for(file: &str, text: &[u8]) -> (PathBuf, String) {
    let dir = TempDir::new(&file.replace('.', "-"));
    let path = dir.write(file, text);
    let err = Workflow::from_path(&path).expect_err("the file is refused");
    assert!(err.is_invalid_workflow(), "{err:?}");
    (path, err.to_string())
}

fn bomb_ratio() -> String {
    let aliases = vec!["*b"; 200].join(", ");
    format!(
        "name: x\nnodes:\n  - id: a\n    type: t\n    config:\n      base: &b [1, 2, 3]\n      \
         many: [{aliases}]\n"
    )
}

#[rstest]
#[case::duplicate_top_level_key(
    "wf.yaml",
    "name: a\nseed: 1\nname: b\nnodes: []\n",
    3,
    "duplicate key `name` (first at line 1)"
)]
#[case::duplicate_node_key(
    "wf.yaml",
    "name: x\nnodes:\n  - id: a\n    type: t\n    id: b\n",
    5,
    "duplicate key `id` (first at line 3)"
)]
#[case::duplicate_key_in_a_flow_mapping(
    "wf.yaml",
    "name: x\nnodes:\n  - id: a\n    type: t\n    config: { a: 1, a: 2 }\n",
    5,
    "duplicate key `a` (first at line 5)"
)]
#[case::duplicate_config_key_in_a_block(
    "wf.yml",
    "name: x\nnodes:\n  - id: a\n    type: t\n    config:\n      epochs: 1\n      lr: 2\n      \
     epochs: 3\n",
    8,
    "duplicate key `epochs` (first at line 6)"
)]
#[case::duplicate_json_key(
    "wf.json",
    "{\n  \"name\": \"x\",\n  \"nodes\": [],\n  \"name\": \"y\"\n}\n",
    4,
    "duplicate key `name` (first at line 2)"
)]
#[case::two_documents(
    "wf.yaml",
    "name: x\nnodes: []\n---\nname: y\nnodes: []\n",
    3,
    "a workflow file holds one YAML document; found a second at line 3"
)]
#[case::two_documents_after_an_end_marker(
    "wf.yaml",
    "name: x\nnodes: []\n...\n# the next one\n---\nname: y\n",
    5,
    "found a second at line 5"
)]
#[case::empty_name("wf.yaml", "name:\nnodes: []\n", 1, "`name` is empty; it must be text")]
#[case::null_node_id(
    "wf.yaml",
    "name: x\nnodes:\n  - id: ~\n    type: t\n",
    3,
    "`id` of node 1 is empty; it must be text"
)]
#[case::retries_not_a_number(
    "wf.yaml",
    "name: x\nnodes:\n  - id: a\n    type: t\n    retries: lots\n",
    5,
    "`retries` of node 1 must be a whole number from 0 to 4294967295, found `lots`"
)]
#[case::negative_gpus(
    "wf.yaml",
    "name: x\nnodes:\n  - id: a\n    type: t\n  - id: b\n    type: t\n    resources: { gpus: -1 }\n",
    7,
    "`resources.gpus` of node 2 must be a whole number from 0 to 4294967295, found `-1`"
)]
#[case::seed_as_text_in_json(
    "wf.json",
    "{\"name\": \"x\",\n \"seed\": \"abc\"}",
    2,
    "`seed` must be a whole number from 0 to 18446744073709551615"
)]
#[case::nodes_not_a_list("wf.yaml", "name: x\nnodes: 5\n", 2, "`nodes` must be a list of nodes")]
#[case::config_not_a_mapping(
    "wf.yaml",
    "name: x\nnodes:\n  - id: a\n    type: t\n    config: [1, 2]\n",
    5,
    "`config` of node 1 must be a mapping of config keys to values, found a list"
)]
#[case::type_not_text(
    "wf.yaml",
    "name: x\nnodes:\n  - id: a\n    type: [1]\n",
    4,
    "`type` of node 1 must be text, found a list"
)]
#[case::not_a_mapping(
    "wf.yaml",
    "- a\n- b\n",
    1,
    "the workflow must be a mapping of workflow keys"
)]
#[case::unknown_node_key(
    "wf.yaml",
    "name: x\nnodes:\n  - id: a\n    typ: t\n",
    4,
    "unknown key `typ` in node 1; expected one of `id`, `type`"
)]
#[case::unknown_top_level_key(
    "wf.yaml",
    "name: x\nnode: []\n",
    2,
    "unknown key `node` in the workflow"
)]
#[case::missing_type(
    "wf.yaml",
    "name: x\nnodes:\n  - id: a\n    type: t\n  - id: b\n",
    5,
    "node 2 has no `type`"
)]
#[case::bad_duration(
    "wf.yaml",
    "name: x\nnodes:\n  - id: a\n    type: t\n    timeout: soon\n",
    5,
    "`timeout` of node 1: invalid duration `soon`"
)]
#[case::bad_port(
    "wf.yaml",
    "name: x\nnodes: []\nedges:\n  - { from: data, to: b.c }\n",
    4,
    "`from` of edge 1: expected `node.port`, found `data`"
)]
#[case::unknown_alias(
    "wf.yaml",
    "name: x\nnodes:\n  - id: a\n    type: t\n    config: *defaults\n",
    5,
    "alias `*defaults` refers to no anchor"
)]
#[case::not_a_finite_number(
    "wf.yaml",
    "name: x\nnodes:\n  - id: a\n    type: t\n    config: { lr: .nan }\n",
    5,
    "config `lr` of node 1: `.nan` is not a finite number"
)]
#[case::yaml_syntax(
    "wf.yaml",
    "name: x\n  bad: indent\n",
    2,
    "invalid YAML: mapping values are not allowed"
)]
#[case::unclosed_flow_mapping(
    "wf.yaml",
    "name: x\nnodes:\n  - id: a\n    type: t\n    config: { k: 1\n",
    5,
    "invalid YAML: unclosed"
)]
#[case::json_syntax(
    "wf.json",
    "{\"name\": \"x\",\n \"nodes\": [1,]}",
    2,
    "invalid JSON: expected value"
)]
#[case::truncated_json(
    "wf.json",
    "{\"name\": \"x\"",
    1,
    "invalid JSON: the file ends inside an object"
)]
#[case::deep_nesting(
    "wf.yaml",
    &format!("name: x\nnodes:\n  - id: a\n    type: t\n    config: {{ k: {}1{} }}\n", "[".repeat(70), "]".repeat(70)),
    5,
    "lists and mappings nest more than 64 deep"
)]
#[case::too_many_aliases_per_anchor(
    "wf.yaml",
    &bomb_ratio(),
    8,
    "the file uses 200 aliases (`*name`) for 1 anchor (`&name`); workflow files may use at most \
     10 aliases per anchor"
)]
fn bad_files_get_plain_messages_with_file_and_line(
    #[case] file: &str,
    #[case] text: &str,
    #[case] line: u32,
    #[case] expected: &str,
) {
    let (path, message) = error_for(file, text.as_bytes());
    assert_plain(&message);
    let at = format!("{}:{line}:", path.display());
    assert!(message.starts_with(&at), "expected `{at}` in: {message}");
    assert!(
        message.contains(expected),
        "expected `{expected}` in: {message}"
    );
}

#[test]
fn a_file_that_is_not_utf8_names_the_line() {
    let (path, message) = error_for("wf.yaml", b"name: x\nnodes: [\xff]\n");
    assert_plain(&message);
    assert!(
        message.starts_with(&format!("{}:2:9: ", path.display())),
        "{message}"
    );
    assert!(message.contains("not UTF-8 text"), "{message}");
}

#[test]
fn an_empty_file_says_so() {
    for text in ["", "# nothing yet\n\n"] {
        let (_, message) = error_for("wf.yaml", text.as_bytes());
        assert_plain(&message);
        assert!(message.contains("the file is empty"), "{message}");
    }
}

#[test]
fn text_without_a_file_names_the_line() {
    let err = Workflow::parse("name: x\nname: y\n", Format::Yaml).unwrap_err();
    let Error::Parse {
        file: None,
        line: Some(2),
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    let message = err.to_string();
    assert!(message.starts_with("line 2:"), "{message}");
    assert!(
        message.contains("duplicate key `name` (first at line 1)"),
        "{message}"
    );
    assert_plain(&message);
}

#[test]
fn a_good_file_reads_with_its_path() {
    let dir = TempDir::new("good");
    let path = dir.write("good.yaml", b"name: good\nnodes:\n  - { id: a, type: t }\n");
    let workflow = Workflow::from_path(&path).unwrap();
    assert_eq!(workflow.nodes.len(), 1);
    assert_eq!(workflow.source_path(), Some(Path::new(&path)));
}
