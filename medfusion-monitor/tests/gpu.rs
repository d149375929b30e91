//! The NVML probe on a real NVIDIA GPU: `cargo test -p medfusion-monitor --features test-gpu`.
#![cfg(all(feature = "gpu", feature = "test-gpu"))]

use medfusion_monitor::{GpuProbe, NvmlProbe, ResourceMonitor, render_prometheus};

#[test]
fn nvml_reports_every_gpu_with_sane_figures() {
    let mut probe = NvmlProbe::new().expect("NVML loads and lists a GPU on a GPU machine");
    let gpus = probe.read();
    assert!(!gpus.is_empty());
    for (i, gpu) in gpus.iter().enumerate() {
        assert_eq!(gpu.index as usize, i);
        assert!(!gpu.name.is_empty());
        assert!(gpu.memory_total_bytes > 0, "{gpu:?}");
        assert!(gpu.memory_used_bytes <= gpu.memory_total_bytes, "{gpu:?}");
        assert!((0.0..=100.0).contains(&gpu.memory_percent), "{gpu:?}");
        if let Some(util) = gpu.utilization_percent {
            assert!((0.0..=100.0).contains(&util), "{gpu:?}");
        }
        if let Some(t) = gpu.temperature_celsius {
            assert!((1.0..120.0).contains(&t), "{gpu:?}");
        }
        if let (Some(p), Some(limit)) = (gpu.power_watts, gpu.power_limit_watts) {
            assert!(p > 0.0 && limit > 0.0, "{gpu:?}");
        }
    }
}

#[test]
fn the_default_monitor_finds_the_gpus() {
    let monitor = ResourceMonitor::new().unwrap();
    let snap = monitor.sample_now().unwrap();
    assert!(!snap.gpus.is_empty());
    let text = render_prometheus(&snap);
    assert!(
        text.contains("medfusion_gpu_memory_used_bytes{gpu=\"0\"} "),
        "{text}"
    );
    let json = serde_json::to_value(&snap).unwrap();
    assert!(json["gpus"][0]["memory_total_bytes"].as_u64().unwrap() > 0);
}
