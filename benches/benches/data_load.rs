//! WORKLOADS.md section 5: image-folder loading (`data_load`).
//!
//! 2,000 grey 64x64 PNGs and 500 RGB 224x224 PNGs in `class_0/`, `class_1/` (uniform noise;
//! class 1 has a filled disc of 255), read from `$MEDFUSION_BENCH_IMAGES/{gray64,rgb224}`
//! when set, else generated once into `target/bench-data/data_load/`. One iteration is a
//! full shuffled epoch: decode, to float, normalise (mean 0.5, std 0.5), batches of 32 as
//! tensors on the CPU device; criterion reports it as samples/s. Measured with our loader
//! (`medfusion`) at 0 and 2 workers, and with Burn's `DataLoader` over the same decoding
//! (`burn`) for comparison.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::data::dataloader::DataLoaderBuilder;
use burn::tensor::Device;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use image::{GrayImage, Luma, Rgb, RgbImage};
use medfusion_bench::SplitMix64;
use medfusion_train::BatchSource;
use medfusion_train::data::{
    BatchLoader, BurnSampleDataset, DataSplit, ImageFolderConfig, LoaderConfig, Normalization,
    SampleBatcher, load_image_folder,
};

struct Workload {
    name: &'static str,
    count: usize,
    size: u32,
    channels: usize,
    /// Disc centre range `[lo, hi)` and radius range `[lo, hi)`.
    centre: (u64, u64),
    radius: (u64, u64),
}

const WORKLOADS: [Workload; 2] = [
    Workload {
        name: "gray64",
        count: 2000,
        size: 64,
        channels: 1,
        centre: (16, 48),
        radius: (6, 13),
    },
    Workload {
        name: "rgb224",
        count: 500,
        size: 224,
        channels: 3,
        centre: (56, 168),
        radius: (24, 48),
    },
];

fn in_range(rng: &mut SplitMix64, (lo, hi): (u64, u64)) -> u32 {
    (lo + rng.next_u64() % (hi - lo)) as u32
}

/// Writes the workload's PNGs (image `i` in `class_{i % 2}`), unless already there.
fn generate(w: &Workload, dir: &Path) {
    let marker = dir.join(".complete");
    if marker.exists() {
        return;
    }
    let mut rng = SplitMix64::new(0);
    for class in 0..2 {
        std::fs::create_dir_all(dir.join(format!("class_{class}"))).expect("create bench folder");
    }
    for i in 0..w.count {
        let class = i % 2;
        let mut noise = || (rng.next_u64() & 0xFF) as u8;
        let path = dir.join(format!("class_{class}/img_{i:05}.png"));
        let size = w.size;
        let (mut grey, mut rgb) = (None, None);
        if w.channels == 1 {
            grey = Some(GrayImage::from_fn(size, size, |_, _| Luma([noise()])));
        } else {
            rgb = Some(RgbImage::from_fn(size, size, |_, _| {
                Rgb([noise(), noise(), noise()])
            }));
        }
        if class == 1 {
            let (cx, cy) = (in_range(&mut rng, w.centre), in_range(&mut rng, w.centre));
            let r = in_range(&mut rng, w.radius);
            for y in 0..size {
                for x in 0..size {
                    let (dx, dy) = (i64::from(x) - i64::from(cx), i64::from(y) - i64::from(cy));
                    if dx * dx + dy * dy <= i64::from(r * r) {
                        if let Some(g) = grey.as_mut() {
                            g.put_pixel(x, y, Luma([255]));
                        }
                        if let Some(c) = rgb.as_mut() {
                            c.put_pixel(x, y, Rgb([255, 255, 255]));
                        }
                    }
                }
            }
        }
        match (grey, rgb) {
            (Some(g), _) => g.save(&path),
            (_, Some(c)) => c.save(&path),
            _ => unreachable!(),
        }
        .expect("write bench PNG");
    }
    std::fs::write(marker, b"").expect("write marker");
}

fn folder(w: &Workload) -> PathBuf {
    if let Some(root) = std::env::var_os("MEDFUSION_BENCH_IMAGES") {
        return PathBuf::from(root).join(w.name);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-data/data_load")
        .join(w.name);
    generate(w, &dir);
    dir
}

fn split(w: &Workload) -> DataSplit {
    let config = ImageFolderConfig {
        root: folder(w),
        image_size: w.size as usize,
        channels: w.channels,
        val_fraction: 0.0,
        test_fraction: 0.0,
        ..ImageFolderConfig::default()
    };
    let data = load_image_folder(&config).expect("load the bench image folder");
    assert_eq!(
        data.train.len(),
        w.count,
        "bench folder {}",
        config.root.display()
    );
    data.train
}

fn bench(c: &mut Criterion) {
    // As the `medfusion` binary does: training buffers are reused, not mapped anew.
    medfusion_train::tune_allocator();
    let device = Device::default();
    let mut group = c.benchmark_group("data_load");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    for w in &WORKLOADS {
        let train = split(w);
        group.throughput(Throughput::Elements(w.count as u64));
        for workers in [0, 2] {
            let config = LoaderConfig {
                batch_size: 32,
                shuffle: true,
                seed: 0,
                num_workers: workers,
                prefetch: 4,
                ..LoaderConfig::default()
            };
            let loader = BatchLoader::new(train.clone(), config).expect("loader");
            let mut epoch = 0;
            group.bench_function(
                BenchmarkId::new(format!("{}/medfusion", w.name), workers),
                |b| {
                    b.iter(|| {
                        let mut samples = 0;
                        for batch in BatchSource::batches(&loader, epoch as usize, &device) {
                            samples += batch.expect("batch").len();
                        }
                        epoch += 1;
                        assert_eq!(samples, w.count);
                    });
                },
            );
        }
        // Burn's DataLoader (its workers, its shuffle) over the same decoding.
        let dataset =
            BurnSampleDataset::new(train.clone(), &Normalization::default()).expect("dataset");
        let burn_loader = DataLoaderBuilder::new(SampleBatcher::new(&train))
            .batch_size(32)
            .shuffle(0)
            .num_workers(2)
            .set_device(device.clone())
            .build(dataset);
        group.bench_function(BenchmarkId::new(format!("{}/burn", w.name), 2), |b| {
            b.iter(|| {
                let mut samples = 0;
                for batch in burn_loader.iter() {
                    samples += batch.expect("batch").len();
                }
                assert_eq!(samples, w.count);
            });
        });
    }
    group.finish();
}

criterion_group!(data_load, bench);
criterion_main!(data_load);
