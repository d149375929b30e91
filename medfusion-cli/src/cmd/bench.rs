//! `medfusion bench train`: training-step throughput on synthetic batches, as one JSON line
//! (the figure compared with PyTorch on GPUs).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use medfusion_monitor::ResourceMonitor;
use medfusion_train::{AmpDtype, DeviceSpec, StepBench, bench_steps};
use serde_json::json;

/// Arguments of `medfusion bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// Time training steps of a model on one fixed synthetic batch
    Train(TrainBenchArgs),
}

#[derive(Debug, clap::Args)]
struct TrainBenchArgs {
    /// The model (`resnet50`, `resnet18`, `cnn`, `vit_base`, ...)
    #[arg(long, default_value = "resnet50")]
    model: String,
    /// Samples per step
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Square image side
    #[arg(long, default_value_t = 224)]
    image_size: usize,
    /// Image channels
    #[arg(long, default_value_t = 3)]
    channels: usize,
    /// Classes
    #[arg(long, default_value_t = 2)]
    classes: usize,
    /// Timed steps
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Untimed steps first
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// `fp32`, or `amp` (mixed precision)
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
    /// The low-precision type of `amp`
    #[arg(long, value_enum, default_value_t = LowPrecision::Bf16)]
    amp_dtype: LowPrecision,
    /// Adam's learning rate
    #[arg(long, default_value_t = 1e-4)]
    learning_rate: f64,
    /// Where to train: cpu, cuda:N or auto
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Precision {
    Fp32,
    Amp,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LowPrecision {
    Bf16,
    F16,
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let BenchCommand::Train(a) = args.what;
    let spec: DeviceSpec = a
        .device
        .parse()
        .map_err(|e| anyhow::anyhow!("`--device {}`: {e}", a.device))?;
    let device = spec.resolve()?;
    tracing::info!(device = %a.device, "bench device ready");
    let bench = StepBench {
        model: a
            .model
            .parse()
            .map_err(|e| anyhow::anyhow!("`--model {}`: {e}", a.model))?,
        batch: a.batch,
        image_size: a.image_size,
        channels: a.channels,
        classes: a.classes,
        warmup: a.warmup,
        steps: a.steps,
        use_amp: matches!(a.precision, Precision::Amp),
        amp_dtype: match a.amp_dtype {
            LowPrecision::Bf16 => AmpDtype::Bf16,
            LowPrecision::F16 => AmpDtype::F16,
        },
        learning_rate: a.learning_rate,
    };
    // GPU memory comes from NVML: sample it quickly while the steps run.
    let monitor = Arc::new(
        ResourceMonitor::builder()
            .interval(Duration::from_millis(50))
            .build()
            .context("cannot start the resource monitor")?,
    );
    let gpu = match spec {
        DeviceSpec::Cuda(i) => Some(i as u32),
        DeviceSpec::Auto | DeviceSpec::Cpu => None,
    };
    let before = monitor.sample_now().ok();
    monitor
        .start()
        .context("cannot start the resource monitor")?;
    // One line a step on the log (`MEDFUSION_LOG=info`): on a GPU the first steps also
    // compile and autotune the kernels, which this shows apart from the timed steps.
    let started = Instant::now();
    let mut last = started;
    let result = bench_steps(&bench, &device, &mut |step| {
        let now = Instant::now();
        tracing::info!(
            step,
            step_ms = (now - last).as_millis() as u64,
            total_s = (now - started).as_secs_f64().round() as u64,
            "bench step done"
        );
        last = now;
    })?;
    monitor.stop();
    let used = |s: &medfusion_monitor::Snapshot| {
        s.gpus
            .iter()
            .find(|g| Some(g.index) == gpu)
            .map(|g| g.memory_used_bytes)
    };
    let peak = monitor.history().iter().filter_map(used).max();
    let baseline = before.as_ref().and_then(used);
    let gpu_name = before.as_ref().and_then(|s| {
        s.gpus
            .iter()
            .find(|g| Some(g.index) == gpu)
            .map(|g| g.name.clone())
    });
    outln!(
        "{}",
        json!({
            "model": a.model,
            "batch": a.batch,
            "image_size": a.image_size,
            "precision": if bench.use_amp { "amp" } else { "fp32" },
            "amp_dtype": bench.use_amp.then(|| format!("{:?}", a.amp_dtype).to_lowercase()),
            "device": a.device,
            "gpu": gpu_name,
            "steps": a.steps,
            "samples_per_s": (result.samples_per_s * 10.0).round() / 10.0,
            "ms_per_step": (result.ms_per_step * 100.0).round() / 100.0,
            "peak_device_memory_gb": peak.map(|b| (b as f64 / 1e9 * 100.0).round() / 100.0),
            "device_memory_before_gb": baseline.map(|b| (b as f64 / 1e9 * 100.0).round() / 100.0),
            "first_loss": result.first_loss,
            "last_loss": result.last_loss,
            "all_finite": result.all_finite,
            "skipped_steps": result.skipped_steps,
            "loss_scale": result.loss_scale,
        })
    );
    Ok(ExitCode::SUCCESS)
}
