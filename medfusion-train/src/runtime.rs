//! Process-wide settings that training benefits from, which the crate never makes on its
//! own: the binary calls these (see the crate docs' "Process state").

use std::path::Path;

/// Tunes glibc's allocator for training: buffers up to 32 MiB come from the heap instead of
/// fresh `mmap`s, and up to 1 GiB of freed heap is kept rather than returned to the kernel.
///
/// A training step allocates and frees the same large activation and gradient buffers
/// every step, and the batch loader does the same with its image buffers. With glibc's
/// defaults each of them is a new `mmap` whose pages the kernel faults in and zeroes again:
/// on the benchmark CNN step that was 18% of the CPU time, in the kernel (PyTorch avoids it
/// with its own caching allocator); on RGB 224 px batches with 2 loader workers, 80x the
/// page faults. The cost is that the process keeps its peak heap.
///
/// This changes the whole process and is never undone, so nothing in this crate calls it:
/// an application that trains calls it once, early in `main`, before it starts threads
/// (the settings apply to allocations made after the call). Calling it again does nothing.
/// Elsewhere than Linux/glibc it does nothing.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator parameters; both values are in range
            // (the mmap threshold's maximum is 32 MiB on 64-bit targets).
            let ok = unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
                    && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
            };
            if !ok {
                tracing::debug!("mallopt refused the training allocator settings");
            }
        });
    }
}

/// Keeps the GPU kernels that NVRTC compiles on disk, so that the next run loads them
/// instead of compiling them again (measured on an H200: a small CNN's first training step
/// compiles 379 kernels in 281 s; with them on disk the whole run takes 3 s).
///
/// This sets CubeCL's process-wide runtime configuration, which CubeCL reads once, when the
/// first GPU device is used; so call it before anything touches CUDA (before
/// [`DeviceSpec::resolve`](crate::DeviceSpec::resolve) of a CUDA or `auto` device). The
/// rest of the configuration is what CubeCL would have read itself (a `cubecl.toml` or
/// `burn.toml` in the current folder or above, then its `CUBECL_*` variables). `dir` is
/// where CubeCL keeps its environment (compiled kernels, and its autotune results with
/// them); `None` keeps CubeCL's choice: `target/environment` of the enclosing Cargo
/// workspace, else the user's cache folder.
///
/// Returns whether the setting took effect: `false` in builds without the `cuda` feature
/// (there are no GPU kernels) and when CubeCL's configuration was already set or read (an
/// earlier call, or a GPU already in use), which is then left as it is. Without a call,
/// kernels are compiled in every run (CubeCL's default).
pub fn configure_kernel_cache(dir: Option<&Path>) -> bool {
    #[cfg(feature = "cuda")]
    {
        use cubecl_runtime::config::cache::CacheConfig;
        use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig as _};
        let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
        config.compilation.cache = true;
        if let Some(dir) = dir {
            config.environment.path = CacheConfig::Directory(dir.to_path_buf());
        }
        let applied = CubeClRuntimeConfig::try_set(config);
        if !applied {
            tracing::debug!("CubeCL was configured before: the kernel cache is left as it is");
        }
        applied
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = dir;
        false
    }
}
