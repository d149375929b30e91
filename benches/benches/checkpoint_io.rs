//! WORKLOADS.md section 3: checkpoint I/O of the ResNet-50 tensor set (320 tensors,
//! 102,441,032 bytes): durable save, load into owned memory with the files in the page
//! cache (warm) and evicted (cold), and the incremental second save.
//!
//! The checkpoints go to a temporary directory under `MEDFUSION_BENCH_DIR` when set
//! (pick the disk to measure), else under the system's temporary directory.
//! `checkpoint_io_reference.py` beside this file measures Python safetensors and `dd` on
//! the same disk.

use std::hint::black_box;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use medfusion_bench::SplitMix64;
use medfusion_checkpoint::{Checkpoint, CheckpointManager, NodeState, Tensor, TensorSet};
use serde_json::json;

#[derive(serde::Deserialize)]
struct TensorSpec {
    name: String,
    shape: Vec<usize>,
    dtype: String,
}

/// The ResNet-50 state dict of `resnet50-tensors.json`, filled from splitmix64.
fn resnet50() -> TensorSet {
    let specs: Vec<TensorSpec> = medfusion_bench::read_json("resnet50-tensors.json");
    let mut rng = SplitMix64::new(0);
    let mut set = TensorSet::new();
    for spec in specs {
        let n: usize = spec.shape.iter().product();
        let tensor = match spec.dtype.as_str() {
            "float32" => {
                let values = (0..n).map(|_| (rng.next_u64() >> 40) as f32 / 16_777_216.0 - 0.5);
                Tensor::from_vec(spec.shape, values.collect::<Vec<f32>>())
            }
            "int64" => Tensor::from_vec(spec.shape, (0..n).map(|i| i as i64).collect()),
            other => panic!("tensor `{}` has dtype {other}", spec.name),
        };
        set.insert(spec.name, tensor.unwrap());
    }
    assert_eq!(set.len(), 320);
    assert_eq!(set.data_len(), 102_441_032);
    set
}

fn checkpoint(model: &TensorSet) -> Checkpoint {
    Checkpoint::new(
        json!({ "name": "resnet50" }),
        json!({ "completed": ["train"] }),
    )
    .with_node("train", NodeState::new().with_model(model.clone()))
}

fn bench_root() -> tempfile::TempDir {
    match std::env::var_os("MEDFUSION_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("a temporary directory for the checkpoints")
}

/// Drop the pages of every file under `dir` from the page cache (they are fsynced).
fn evict(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            evict(&path);
        } else {
            let file = std::fs::File::open(&path).unwrap();
            // SAFETY: posix_fadvise only reads its integer arguments.
            let rc =
                unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            assert_eq!(rc, 0, "posix_fadvise {}", path.display());
        }
    }
}

fn resnet50_io(c: &mut Criterion) {
    let model = resnet50();
    let checkpoint = checkpoint(&model);
    let root = bench_root();
    let bytes = model.to_safetensors().unwrap().len() as u64;

    let mut group = c.benchmark_group("checkpoint_io/resnet50");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(bytes));

    // A fresh checkpoint directory per save (made outside the timing, as it would
    // exist already), so that every save writes all its bytes.
    let mut n = 0;
    let mut fresh = |root: &Path| -> PathBuf {
        n += 1;
        let dir = root.join(format!("fresh-{n}"));
        let _ = std::fs::remove_dir_all(root.join(format!("fresh-{}", n - 1)));
        std::fs::create_dir_all(dir.join(".objects")).unwrap();
        dir
    };
    group.bench_function("durable_save", |b| {
        b.iter_batched(
            || CheckpointManager::new(fresh(root.path())),
            |manager| black_box(manager.save("resnet50", &checkpoint).unwrap()),
            BatchSize::PerIteration,
        );
    });
    group.bench_function("safetensors_file_write_fsync", |b| {
        let path = root.path().join("plain.safetensors");
        b.iter_batched(
            || {
                let _ = std::fs::remove_file(&path);
            },
            |()| black_box(model.write_file(&path).unwrap()),
            BatchSize::PerIteration,
        );
    });

    let manager = CheckpointManager::new(root.path().join("kept"));
    let saved = manager.save("resnet50", &checkpoint).unwrap().info;
    group.bench_function("load_verified_warm", |b| {
        b.iter(|| black_box(manager.load(&saved.id).unwrap()));
    });
    group.bench_function("load_verified_cold", |b| {
        b.iter_batched(
            || evict(&saved.path),
            |()| black_box(manager.load(&saved.id).unwrap()),
            BatchSize::PerIteration,
        );
    });
    let model_file = saved.path.join("models/train_model.safetensors");
    group.bench_function("safetensors_file_read_warm", |b| {
        b.iter(|| black_box(TensorSet::read_file(&model_file).unwrap()));
    });
    group.bench_function("safetensors_file_read_cold", |b| {
        b.iter_batched(
            || evict(&saved.path),
            |()| black_box(TensorSet::read_file(&model_file).unwrap()),
            BatchSize::PerIteration,
        );
    });

    let second = manager.save("resnet50", &checkpoint).unwrap();
    #[allow(clippy::print_stdout)]
    {
        println!(
            "checkpoint_io/resnet50/incremental_save: {} bytes written, {} bytes reused \
             ({:.4}% of the first save's {} bytes)",
            second.bytes_written,
            second.bytes_reused,
            100.0 * second.bytes_written as f64 / bytes as f64,
            bytes
        );
    }
    assert!(
        second.bytes_written * 100 < bytes,
        "the incremental save wrote >= 1%"
    );
    group.bench_function("incremental_save", |b| {
        b.iter(|| black_box(manager.save("resnet50", &checkpoint).unwrap()));
    });
    group.finish();
}

criterion_group!(checkpoint_io, resnet50_io);
criterion_main!(checkpoint_io);
