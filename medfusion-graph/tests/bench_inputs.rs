//! The benchmark workloads ship with the repository (`benches/data/`), so `cargo bench`
//! works on a fresh clone; and the large one is a valid DAG whose back edge closes a cycle.

use std::path::PathBuf;

use medfusion_graph::Dag;

fn data(relative: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../benches/data")
        .join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn edges(value: &serde_json::Value) -> Vec<(usize, usize)> {
    value["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_u64().unwrap() as usize,
                e[1].as_u64().unwrap() as usize,
            )
        })
        .collect()
}

#[test]
fn the_100k_graph_is_in_the_repository_and_acyclic_until_its_back_edge() {
    let graph = data("graph-100k.json");
    let n = graph["nodes"].as_array().unwrap().len();
    let mut edges = edges(&graph);
    assert_eq!((n, edges.len()), (100_000, 299_988));
    let order = Dag::new(n, edges.iter().copied()).topological_order();
    assert_eq!(order.map(|o| o.len()).ok(), Some(n));
    let back = &graph["back_edge"];
    edges.push((
        back[0].as_u64().unwrap() as usize,
        back[1].as_u64().unwrap() as usize,
    ));
    let cyclic = Dag::new(n, edges.iter().copied());
    assert!(cyclic.topological_order().is_err());
    assert!(!cyclic.cycles().is_empty());
}

#[test]
fn the_engine_workloads_and_tensor_list_are_in_the_repository() {
    for shape in ["chain", "wide", "layered"] {
        for n in [1000, 10_000] {
            let dag = data(&format!("dags/{shape}-{n}.json"));
            assert_eq!(dag["nodes"].as_array().unwrap().len(), n, "{shape}-{n}");
            let order = Dag::new(n, edges(&dag)).topological_order();
            assert_eq!(order.map(|o| o.len()).ok(), Some(n), "{shape}-{n}");
        }
    }
    assert_eq!(data("resnet50-tensors.json").as_array().unwrap().len(), 320);
}
