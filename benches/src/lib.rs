//! Shared helpers for medfusion's criterion benchmarks.
//!
//! The workloads are those of `shared/bench/WORKLOADS.md`; their input files live in
//! `benches/data/` (copied from the shared workloads, unchanged), or in the folder named by
//! `MEDFUSION_BENCH_DATA`.
//!
//! ```
//! let mut rng = medfusion_bench::SplitMix64::new(0);
//! assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
//! ```
#![warn(missing_docs)]

use std::path::PathBuf;

/// The shared workload generator of WORKLOADS.md: splitmix64.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next output.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The folder holding the benchmark inputs (`graph-100k.json`, `dags/`, ...):
/// `MEDFUSION_BENCH_DATA` when set, else `benches/data` in the repository.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MEDFUSION_BENCH_DATA") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// Read a JSON input of the shared workloads, with a message naming the file if it is absent.
pub fn read_json<T: serde::de::DeserializeOwned>(relative: &str) -> T {
    let path = data_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read benchmark input {}: {e} (set MEDFUSION_BENCH_DATA to the folder \
             holding the shared workloads)",
            path.display()
        )
    });
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("benchmark input {} is not valid: {e}", path.display()))
}

/// A DAG of the engine workloads: `{"nodes": [...], "edges": [[dep, node], ...]}`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BenchDag {
    /// Node ids, `0..n`.
    pub nodes: Vec<u64>,
    /// Edges `[dependency, node]`.
    pub edges: Vec<[u64; 2]>,
    /// An edge that closes a cycle, where the workload has one.
    #[serde(default)]
    pub back_edge: Option<[u64; 2]>,
}

impl BenchDag {
    /// The DAG as a workflow file (YAML) of `util.noop` nodes `n<id>`, named `bench`.
    pub fn noop_workflow(&self) -> String {
        use std::fmt::Write as _;
        let mut yaml = String::from("name: bench\nnodes:\n");
        for n in &self.nodes {
            let _ = writeln!(yaml, "  - {{ id: n{n}, type: util.noop }}");
        }
        yaml.push_str("edges:\n");
        for [a, b] in &self.edges {
            let _ = writeln!(yaml, "  - {{ from: n{a}.out, to: n{b}.in }}");
        }
        yaml
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_workload_definition() {
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(rng.next_u64(), 0x06c4_5d18_8009_454f);
    }
}
