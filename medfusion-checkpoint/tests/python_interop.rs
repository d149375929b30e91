//! Python's `safetensors.numpy.load_file` reads the files of a checkpoint with the same
//! names, shapes and values.
//!
//! Runs when `python3` with `safetensors` and `numpy` is there; with
//! `MEDFUSION_REQUIRE_PYTHON=1` (as in CI) their absence is a failure, not a skip.

use std::process::Command;

use medfusion_checkpoint::{Checkpoint, CheckpointManager, Dtype, NodeState, Tensor, TensorSet};
use serde_json::{Value, json};

const SCRIPT: &str = r#"
import json, struct, sys
from safetensors import safe_open
from safetensors.numpy import load_file
out = {}
for path in sys.argv[1:]:
    tensors = load_file(path)
    with safe_open(path, framework="numpy") as f:
        metadata = f.metadata() or {}
    out[path] = {
        "metadata": metadata,
        "tensors": {
            name: {"dtype": str(a.dtype), "shape": list(a.shape), "hex": a.tobytes().hex()}
            for name, a in tensors.items()
        },
    }
print(json.dumps(out))
"#;

fn python_ready() -> bool {
    let required = std::env::var("MEDFUSION_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    let probe = Command::new("python3")
        .args(["-c", "import safetensors.numpy, numpy"])
        .output();
    let ready = probe.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        ready || !required,
        "MEDFUSION_REQUIRE_PYTHON=1 but `python3 -c 'import safetensors.numpy, numpy'` failed: \
         {probe:?} (pip install safetensors numpy)"
    );
    if !ready {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "note: skipping the Python interop test: python3 with safetensors and numpy \
                 is not installed (set MEDFUSION_REQUIRE_PYTHON=1 to make this a failure)"
            );
        }
    }
    ready
}

fn numpy_dtype(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::Bool => "bool",
        Dtype::U8 => "uint8",
        Dtype::I8 => "int8",
        Dtype::I16 => "int16",
        Dtype::U16 => "uint16",
        Dtype::F16 => "float16",
        Dtype::I32 => "int32",
        Dtype::U32 => "uint32",
        Dtype::F32 => "float32",
        Dtype::F64 => "float64",
        Dtype::I64 => "int64",
        Dtype::U64 => "uint64",
        other => panic!("numpy has no {other}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[test]
fn python_reads_the_checkpoint_tensors() {
    if !python_ready() {
        return;
    }
    let mut model = TensorSet::new()
        .with(
            "conv1.weight",
            Tensor::from_vec(
                [4, 3, 3, 3],
                (0..108).map(|i| i as f32 * 0.25 - 9.0).collect(),
            )
            .unwrap(),
        )
        .with(
            "fc.bias",
            Tensor::from_vec([5], vec![f64::MIN_POSITIVE, -0.0, 1e300, -7.5, 3.0]).unwrap(),
        )
        .with(
            "bn1.num_batches_tracked",
            Tensor::scalar(123_456_789_012i64),
        )
        .with(
            "ids",
            Tensor::from_vec([2, 2], vec![-1i32, 0, 7, i32::MAX]).unwrap(),
        )
        .with(
            "mask",
            Tensor::new(Dtype::Bool, [3], vec![1u8, 0, 1]).unwrap(),
        )
        .with(
            "pixels",
            Tensor::from_vec([3], vec![0u8, 128, 255]).unwrap(),
        )
        .with(
            "half",
            Tensor::new(Dtype::F16, [2], vec![0x00, 0x3c, 0x00, 0xc0]).unwrap(),
        )
        .with("small", Tensor::from_vec([2], vec![-3i8, 4]).unwrap())
        .with("wide", Tensor::from_vec([2], vec![u16::MAX, 1]).unwrap())
        .with("counts", Tensor::from_vec([1], vec![u64::MAX]).unwrap())
        .with(
            "empty",
            Tensor::from_vec([0, 4], Vec::<f32>::new()).unwrap(),
        );
    model.metadata_mut().insert("format".into(), "pt".into());
    model.metadata_mut().insert("epoch".into(), "12".into());
    let optimizer = TensorSet::new().with(
        "state.0.exp_avg",
        Tensor::from_vec([2, 3], vec![0.5f32; 6]).unwrap(),
    );

    let dir = tempfile::tempdir().unwrap();
    let manager = CheckpointManager::new(dir.path());
    let node = NodeState::new()
        .with_model(model.clone())
        .with_optimizer(optimizer.clone());
    let checkpoint = Checkpoint::new(json!({}), json!({})).with_node("train", node);
    let info = manager.save("interop", &checkpoint).unwrap().info;
    let files = [
        (info.path.join("models/train_model.safetensors"), &model),
        (
            info.path.join("models/train_optimizer.safetensors"),
            &optimizer,
        ),
    ];

    let output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args(files.iter().map(|(p, _)| p))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_slice(&output.stdout).unwrap();

    for (path, set) in files {
        let file = &read[path.to_str().unwrap()];
        let tensors = file["tensors"].as_object().unwrap();
        assert_eq!(tensors.len(), set.len(), "{}", path.display());
        for (name, tensor) in set.iter() {
            let seen = &tensors[name];
            assert_eq!(seen["dtype"], numpy_dtype(tensor.dtype()), "{name}");
            assert_eq!(seen["shape"], json!(tensor.shape()), "{name}");
            assert_eq!(seen["hex"], hex(tensor.data()), "{name}");
        }
        let metadata: std::collections::BTreeMap<String, String> =
            serde_json::from_value(file["metadata"].clone()).unwrap();
        assert_eq!(&metadata, set.metadata(), "{}", path.display());
    }
}

#[test]
fn python_written_files_read_back() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("py.safetensors");
    let script = r#"
import sys, numpy as np
from safetensors.numpy import save_file
save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array(7, dtype=np.int64)},
          sys.argv[1], metadata={"source": "numpy"})
"#;
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let set = TensorSet::read_file(&path).unwrap();
    assert_eq!(set.get("w").unwrap().shape(), [2, 3]);
    assert_eq!(
        set.get("w").unwrap().to_vec::<f32>().unwrap(),
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );
    assert_eq!(set.get("n").unwrap().to_vec::<i64>().unwrap(), [7]);
    assert_eq!(set.metadata()["source"], "numpy");
}
