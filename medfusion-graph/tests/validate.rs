//! Table-driven tests of every validation rule, with node, edge and line.

mod common;

use medfusion_graph::{Format, Problem, Workflow, validate};
use rstest::rstest;

const GOOD: &str = "\
name: good
nodes:
  - id: data
    type: data
    config: { samples: 5 }
  - id: train
    type: train
    config:
      epochs: 2
      optimizer: adam
  - id: eval
    type: eval
edges:
  - { from: data.train, to: train.train_data }
  - { from: train.model, to: eval.model }
  - { from: data.test, to: eval.data }
";

fn problems(yaml: &str) -> Vec<Problem> {
    let workflow = Workflow::parse(yaml, Format::Yaml).expect("parses");
    match validate(workflow, &common::catalog()) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems().expect("validation problems").problems.clone(),
    }
}

#[test]
fn a_good_workflow_plans() {
    let workflow = Workflow::parse(GOOD, Format::Yaml).unwrap();
    let plan = validate(workflow, &common::catalog()).unwrap();
    assert_eq!(plan.order(), [0, 1, 2]);
    assert_eq!(plan.dependencies(2), [0, 1]);
    assert_eq!(plan.dependents(0), [1, 2]);
    assert_eq!(plan.levels(), vec![vec![0], vec![1], vec![2]]);
    assert_eq!(plan.config(1)["epochs"], 2);
    assert_eq!(plan.config(0)["samples"], 5);
    assert_eq!(plan.inputs(2).len(), 2);
}

#[rstest]
#[case::unknown_node_type(
    ("type: train\n", "type: trian\n"), "unknown-node-type", Some("train"), 7,
    "unknown node type `trian`; did you mean `train`?"
)]
#[case::duplicate_node_id(
    ("- id: eval\n", "- id: train\n"), "duplicate-node-id", Some("train"), 11,
    "duplicate node id `train` (first defined on line 6)"
)]
#[case::unsafe_node_id(
    ("- id: eval\n", "- id: ../eval\n"), "invalid-node-id", Some("../eval"), 11,
    "invalid node id `../eval`: it contains '.'"
)]
#[case::unknown_port_from(
    ("from: data.test,", "from: data.tset,"), "unknown-port", None, 16,
    "`data.tset`: node type `data` has no output port `tset`; did you mean `test`?"
)]
#[case::unknown_port_to(
    ("to: eval.data }", "to: eval.inputs }"), "unknown-port", None, 16,
    "node type `eval` has no input port `inputs` (its input ports: `model`, `data`)"
)]
#[case::unknown_node_on_edge(
    ("from: train.model", "from: trains.model"), "unknown-node", None, 15,
    "`from` names unknown node `trains`; did you mean `train`?"
)]
#[case::port_type_mismatch(
    ("from: data.test,", "from: data.table,"), "port-type-mismatch", None, 16,
    "`data.table` gives `dataset.tabular` but `eval.data` takes `dataset.image`"
)]
#[case::unknown_config_key(
    ("epochs: 2", "epoch: 2"), "unknown-config-key", Some("train"), 9,
    "unknown config key `epoch`; did you mean `epochs`?"
)]
#[case::value_out_of_range(
    ("epochs: 2", "epochs: 0"), "invalid-config-value", Some("train"), 9,
    "config `epochs` is out of range: `0` is not in >= 1"
)]
#[case::not_a_choice(
    ("optimizer: adam", "optimizer: adma"), "invalid-config-value", Some("train"), 10,
    "has no option `adma` (expected one of `adam`, `sgd`); did you mean `adam`?"
)]
#[case::wrong_type(
    ("samples: 5", "samples: many"), "invalid-config-value", Some("data"), 5,
    "config `samples` must be an integer, found `\"many\"`"
)]
fn each_rule_names_the_place(
    #[case] (from, to): (&str, &str),
    #[case] code: &str,
    #[case] node: Option<&str>,
    #[case] line: u32,
    #[case] message: &str,
) {
    assert!(GOOD.contains(from), "bad test case: {from}");
    let found = problems(&GOOD.replacen(from, to, 1));
    let p = found
        .iter()
        .find(|p| p.code() == code)
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!(p.node.as_deref(), node, "{p}");
    assert_eq!(p.line, Some(line), "{p}");
    assert!(p.to_string().contains(message), "{p}");
}

#[test]
fn missing_required_input() {
    let found = problems(&GOOD.replace("  - { from: data.train, to: train.train_data }\n", ""));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code(), "missing-input");
    assert_eq!(found[0].node.as_deref(), Some("train"));
    assert_eq!(found[0].line, Some(6));
    assert!(
        found[0]
            .to_string()
            .contains("missing required input `train_data`")
    );
}

#[test]
fn two_edges_into_one_input() {
    let yaml = GOOD.replace(
        "  - { from: data.test, to: eval.data }\n",
        "  - { from: data.test, to: eval.data }\n  - { from: data.train, to: eval.data }\n",
    );
    let found = problems(&yaml);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code(), "duplicate-input");
    assert_eq!(found[0].edge, Some(3));
    assert_eq!(found[0].line, Some(17));
    assert!(
        found[0]
            .to_string()
            .contains("edge 4: input `eval.data` already has an edge (edge 3, line 16)")
    );
}

#[test]
fn several_edges_into_a_multiple_input_are_fine() {
    let yaml = GOOD
        .replace(
            "  - id: eval\n",
            "  - id: train2\n    type: train\n  - id: eval\n",
        )
        .replace(
            "  - { from: data.test, to: eval.data }\n",
            "  - { from: data.test, to: eval.data }\n  - { from: data.train, to: train2.train_data }\n  - { from: train2.model, to: eval.model }\n",
        );
    let workflow = Workflow::parse(&yaml, Format::Yaml).unwrap();
    let plan = validate(workflow, &common::catalog()).unwrap();
    let eval = plan.index_of("eval").unwrap();
    let models: Vec<_> = plan
        .inputs(eval)
        .iter()
        .filter(|b| b.port == "model")
        .collect();
    assert_eq!(models.len(), 2);
}

#[test]
fn cycles_name_their_nodes_in_order() {
    let yaml = "\
name: loop
nodes:
  - { id: a, type: pass }
  - { id: b, type: pass }
  - { id: c, type: pass }
  - { id: d, type: pass }
edges:
  - { from: a.out, to: b.in }
  - { from: b.out, to: c.in }
  - { from: c.out, to: a.in }
  - { from: c.out, to: d.in }
";
    let found = problems(yaml);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code(), "cycle");
    assert_eq!(found[0].line, Some(3));
    assert!(
        found[0]
            .to_string()
            .ends_with("cycle: `a` -> `b` -> `c` -> `a`"),
        "{}",
        found[0]
    );
}

#[test]
fn self_loop_is_a_cycle() {
    let yaml =
        "name: s\nnodes:\n  - { id: a, type: pass }\nedges:\n  - { from: a.out, to: a.in }\n";
    let found = problems(yaml);
    assert_eq!(found[0].code(), "cycle");
    assert!(found[0].to_string().ends_with("`a` -> `a`"));
}

#[test]
fn three_different_errors_are_reported_together() {
    let yaml = GOOD
        .replacen("type: train\n", "type: trian\n", 1)
        .replacen("samples: 5", "samples: 5000", 1)
        .replacen("from: data.test,", "from: data.tset,", 1);
    let found = problems(&yaml);
    let codes: Vec<_> = found.iter().map(Problem::code).collect();
    assert_eq!(
        codes,
        ["invalid-config-value", "unknown-node-type", "unknown-port"],
        "{found:#?}"
    );
}

#[test]
fn workflow_name_must_be_path_safe_and_nodes_present() {
    let found = problems("name: a/b\nnodes: []\n");
    let codes: Vec<_> = found.iter().map(Problem::code).collect();
    assert_eq!(codes, ["no-nodes", "invalid-workflow-name"]);
}

#[test]
fn long_ids_are_refused() {
    let id = "x".repeat(65);
    let found = problems(&format!(
        "name: n\nnodes:\n  - {{ id: {id}, type: pass }}\n"
    ));
    assert_eq!(found[0].code(), "invalid-node-id");
    assert!(found[0].to_string().contains("limit is 64"));
}

#[test]
fn problems_render_with_file_and_line() {
    let workflow = Workflow::parse(&GOOD.replace("type: eval", "type: evl"), Format::Yaml)
        .unwrap()
        .with_source_path("w.yaml");
    let err = validate(workflow, &common::catalog()).unwrap_err();
    let problems = err.problems().unwrap();
    let line = problems.problems[0].render(problems.file.as_deref());
    assert_eq!(
        line,
        "w.yaml:12: node `eval`: unknown node type `evl`; did you mean `eval`?"
    );
    let json = problems.to_json();
    assert_eq!(json[0]["code"], "unknown-node-type");
    assert_eq!(json[0]["line"], 12);
    assert_eq!(json[0]["file"], "w.yaml");
}
