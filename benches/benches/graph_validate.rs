//! WORKLOADS.md section 2: validation of a large DAG, and full validation of generated
//! workflow files of 1k and 10k typed nodes.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use medfusion_bench::BenchDag;
use medfusion_graph::{
    ConfigField, ConfigSchema, Dag, FieldKind, Format, NodeCatalog, NodeSpec, PortSpec, PortType,
    Workflow, is_cycle, validate,
};

fn edges(dag: &BenchDag) -> Vec<(usize, usize)> {
    dag.edges
        .iter()
        .map(|&[a, b]| (a as usize, b as usize))
        .collect()
}

fn large_dag(c: &mut Criterion) {
    let text = std::fs::read_to_string(medfusion_bench::data_dir().join("graph-100k.json"))
        .expect("graph-100k.json (set MEDFUSION_BENCH_DATA)");
    let input: BenchDag = serde_json::from_str(&text).unwrap();
    let n = input.nodes.len();
    let acyclic = edges(&input);
    let back = input.back_edge.expect("graph-100k.json has a back_edge");
    let mut cyclic = acyclic.clone();
    cyclic.push((back[0] as usize, back[1] as usize));

    // The cycle found must be real: every consecutive pair an edge.
    let cycle = Dag::new(n, cyclic.iter().copied())
        .topological_order()
        .unwrap_err();
    assert!(is_cycle(&cyclic, &cycle), "extracted cycle is not a cycle");

    let mut group = c.benchmark_group("graph_validate/graph-100k");
    group.sample_size(20);
    group.bench_function("load_json", |b| {
        b.iter(|| black_box(serde_json::from_str::<BenchDag>(black_box(&text)).unwrap()));
    });
    group.bench_function("build", |b| {
        b.iter(|| black_box(Dag::new(n, acyclic.iter().copied())));
    });
    let dag = Dag::new(n, acyclic.iter().copied());
    group.bench_function("acyclic_check_and_topological_order", |b| {
        b.iter(|| black_box(dag.topological_order().unwrap()));
    });
    let dag = Dag::new(n, cyclic.iter().copied());
    group.bench_function("cyclic_check_and_extract_cycle", |b| {
        b.iter(|| black_box(dag.topological_order().unwrap_err()));
    });
    group.finish();
}

/// Data, training and evaluation node types with typed ports and config schemas, shaped
/// like the built-in ones.
fn catalog() -> NodeCatalog {
    let int = |name: &str, default: i64| {
        ConfigField::new(
            name,
            FieldKind::Integer {
                min: Some(1),
                max: Some(1_000_000),
            },
        )
        .default_value(default)
    };
    let mut c = NodeCatalog::new();
    c.register(
        NodeSpec::new("dataset.synthetic", "data")
            .output(PortSpec::output("train", PortType::MultimodalDataset))
            .output(PortSpec::output("val", PortType::MultimodalDataset))
            .output(PortSpec::output("test", PortType::MultimodalDataset))
            .with_config(
                ConfigSchema::new()
                    .field(int("samples", 2000))
                    .field(int("image_size", 64)),
            ),
    )
    .unwrap();
    c.register(
        NodeSpec::new("train.classifier", "train")
            .input(
                PortSpec::required("train_data", PortType::ImageDataset)
                    .accepting(PortType::MultimodalDataset),
            )
            .input(
                PortSpec::optional("val_data", PortType::ImageDataset)
                    .accepting(PortType::MultimodalDataset),
            )
            .output(PortSpec::output("model", PortType::Model))
            .with_config(
                ConfigSchema::new()
                    .field(int("epochs", 10))
                    .field(int("batch_size", 32))
                    .field(
                        ConfigField::new(
                            "optimizer",
                            FieldKind::Choice {
                                choices: vec!["adamw".into(), "adam".into(), "sgd".into()],
                            },
                        )
                        .default_value("adamw"),
                    ),
            ),
    )
    .unwrap();
    c.register(
        NodeSpec::new("evaluate.classifier", "evaluate")
            .input(PortSpec::required("model", PortType::Model).multiple())
            .input(
                PortSpec::required("data", PortType::ImageDataset)
                    .accepting(PortType::MultimodalDataset),
            )
            .output(PortSpec::output("metrics", PortType::Metrics)),
    )
    .unwrap();
    c
}

/// A workflow file of `groups` x (data -> train -> evaluate), each evaluate also comparing
/// the previous group's model, so groups are chained: 3 nodes and 5 edges per group.
fn workflow_yaml(groups: usize) -> String {
    let mut y = String::from("name: generated\nnodes:\n");
    for g in 0..groups {
        let _ = write!(
            y,
            "  - id: data{g}\n    type: dataset.synthetic\n    config: {{ samples: 100 }}\n\
             \x20 - id: train{g}\n    type: train.classifier\n    config: {{ epochs: 2, optimizer: adam }}\n\
             \x20 - id: eval{g}\n    type: evaluate.classifier\n"
        );
    }
    y.push_str("edges:\n");
    for g in 0..groups {
        let _ = write!(
            y,
            "  - {{ from: data{g}.train, to: train{g}.train_data }}\n\
             \x20 - {{ from: data{g}.val, to: train{g}.val_data }}\n\
             \x20 - {{ from: train{g}.model, to: eval{g}.model }}\n\
             \x20 - {{ from: data{g}.test, to: eval{g}.data }}\n"
        );
        if g > 0 {
            let _ = writeln!(y, "  - {{ from: train{}.model, to: eval{g}.model }}", g - 1);
        }
    }
    y
}

fn generated_workflows(c: &mut Criterion) {
    let catalog = catalog();
    let mut group = c.benchmark_group("graph_validate/workflow");
    group.sample_size(20);
    for nodes in [1_000usize, 10_000] {
        let yaml = workflow_yaml(nodes / 3);
        let workflow = Workflow::parse(&yaml, Format::Yaml).unwrap();
        assert!(validate(workflow.clone(), &catalog).is_ok());
        group.throughput(Throughput::Elements(workflow.nodes.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse_yaml", nodes), &yaml, |b, yaml| {
            b.iter(|| black_box(Workflow::parse(yaml, Format::Yaml).unwrap()));
        });
        group.bench_with_input(BenchmarkId::new("validate", nodes), &workflow, |b, w| {
            b.iter_batched(
                || w.clone(),
                |w| black_box(validate(w, &catalog).unwrap()),
                criterion::BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group!(graph_validate, large_dag, generated_workflows);
criterion_main!(graph_validate);
