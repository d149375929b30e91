//! The crate leaves the process as it found it: loading data, resolving a device, registering
//! the node types and building a trainer change no process-wide setting; the application opts
//! in (`tune_allocator`, `configure_kernel_cache`).
//!
//! The allocator check runs in a fresh child process (this test binary again), so nothing
//! else in the process has touched glibc's settings.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod allocator {
    use burn::tensor::Device;
    use medfusion_train::data::{BatchLoader, LoaderConfig, SyntheticConfig, generate_synthetic};
    use medfusion_train::{DeviceSpec, TrainConfig, Trainer};

    const CHILD: &str = "MEDFUSION_TEST_PROCESS_STATE_CHILD";

    /// Chunks glibc has `mmap`ed for allocations.
    fn mmapped_chunks() -> usize {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        unsafe { libc::mallinfo2() }.hblks
    }

    /// Whether a fresh `mib` MiB allocation comes from its own `mmap` (glibc's default for
    /// large blocks) rather than the heap (what `tune_allocator` sets up to 32 MiB).
    fn is_mmapped(mib: usize) -> bool {
        let before = mmapped_chunks();
        let block = std::hint::black_box(vec![1u8; mib << 20]);
        let mmapped = mmapped_chunks() > before;
        drop(block);
        mmapped
    }

    fn child() {
        // Everything a training run does before its first step, but `tune_allocator`.
        let data = generate_synthetic(&SyntheticConfig {
            samples: 40,
            image_size: 8,
            ..SyntheticConfig::default()
        })
        .unwrap();
        let loader = BatchLoader::new(
            data.train.clone(),
            LoaderConfig {
                batch_size: 8,
                num_workers: 1,
                ..LoaderConfig::default()
            },
        )
        .unwrap();
        let _ = loader.epoch(0).next();
        let mut registry = medfusion_exec::Registry::new();
        medfusion_train::nodes::register(
            &mut registry,
            medfusion_train::nodes::NodeSettings::default(),
        )
        .unwrap();
        let device = DeviceSpec::Auto.resolve().unwrap();
        let config: TrainConfig = serde_json::from_str(r#"{"model": "mlp"}"#).unwrap();
        let info = data.info().model_info();
        let _trainer = Trainer::new(&device, &config, &info, 4).unwrap();
        let _ = Device::flex();

        assert!(
            is_mmapped(24),
            "a 24 MiB block came from the heap: the allocator was tuned behind the caller's back"
        );
        // The check sees the tuning when it is asked for.
        medfusion_train::tune_allocator();
        assert!(!is_mmapped(28), "tune_allocator had no visible effect");
    }

    #[test]
    fn training_setup_leaves_the_allocator_as_it_was() {
        if std::env::var_os(CHILD).is_some() {
            child();
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "allocator::training_setup_leaves_the_allocator_as_it_was",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Resolving a device (CUDA or `auto`) no longer sets CubeCL's global configuration, so the
/// application's `configure_kernel_cache` still takes effect afterwards. (On a machine
/// without a CUDA driver resolving stops before CubeCL either way; the check bites on GPU
/// machines.)
#[cfg(feature = "cuda")]
#[test]
fn resolving_a_device_leaves_cubecl_unconfigured() {
    use medfusion_train::DeviceSpec;
    let _ = DeviceSpec::Auto.resolve();
    let _ = DeviceSpec::Cuda(0).resolve();
    let dir = tempfile::tempdir().unwrap();
    assert!(
        medfusion_train::configure_kernel_cache(Some(dir.path())),
        "CubeCL was configured before the application asked"
    );
    assert!(
        !medfusion_train::configure_kernel_cache(None),
        "a second call changes nothing"
    );
}

/// Without the `cuda` feature there are no GPU kernels to cache.
#[cfg(not(feature = "cuda"))]
#[test]
fn kernel_cache_is_a_no_op_without_cuda() {
    assert!(!medfusion_train::configure_kernel_cache(None));
}
