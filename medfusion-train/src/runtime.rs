//! Process-level settings that training on the CPU needs.

/// Tunes glibc's allocator for training: buffers up to 32 MiB come from the heap instead of
/// fresh `mmap`s, and up to 1 GiB of freed heap is kept rather than returned to the kernel.
///
/// A training step allocates and frees the same large activation and gradient buffers
/// every step. With glibc's defaults each of them is a new `mmap` whose pages the kernel
/// faults in and zeroes again: on the benchmark CNN step that was 18% of the CPU time, in
/// the kernel (PyTorch avoids it with its own caching allocator). [`crate::Trainer::new`]
/// calls this once; the cost is that the process keeps its peak heap. Elsewhere than
/// Linux/glibc it does nothing.
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
