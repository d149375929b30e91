//! GPUs: the [`GpuProbe`] trait, NVML, and detection.

use crate::GpuSnapshot;

/// Reads every GPU once per sample.
///
/// A probe never fails: a figure it cannot read is `None` (or the GPU is left out), so a
/// driver hiccup costs a figure, not a sample. [`detect_gpus`] picks NVML when it works;
/// tests plug in [`FakeGpuProbe`](crate::FakeGpuProbe).
pub trait GpuProbe: Send {
    /// One reading per GPU, in index order.
    fn read(&mut self) -> Vec<GpuSnapshot>;
}

impl<P: GpuProbe + ?Sized> GpuProbe for Box<P> {
    fn read(&mut self) -> Vec<GpuSnapshot> {
        (**self).read()
    }
}

/// The probe of a machine without GPUs: always an empty list.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGpus;

impl GpuProbe for NoGpus {
    fn read(&mut self) -> Vec<GpuSnapshot> {
        Vec::new()
    }
}

/// The GPUs of this machine: NVML if it loads and lists a device, else [`NoGpus`].
///
/// Either way it logs one line at INFO (target `medfusion_monitor`): the GPUs found, or
/// why there are none. It never fails and never panics.
pub fn detect_gpus() -> Box<dyn GpuProbe> {
    #[cfg(feature = "gpu")]
    match NvmlProbe::new() {
        Ok(probe) => {
            tracing::info!(
                target: "medfusion_monitor",
                gpus = ?probe.names(),
                "monitoring {} NVIDIA GPU(s) through NVML",
                probe.devices.len()
            );
            return Box::new(probe);
        }
        Err(err) => tracing::info!(
            target: "medfusion_monitor",
            reason = %crate::error_chain(&err),
            "no NVIDIA GPU to monitor; GPU figures are left out"
        ),
    }
    #[cfg(not(feature = "gpu"))]
    tracing::info!(
        target: "medfusion_monitor",
        "built without the `gpu` feature; GPU figures are left out"
    );
    Box::new(NoGpus)
}

#[cfg(feature = "gpu")]
pub use nvml::NvmlProbe;

#[cfg(feature = "gpu")]
mod nvml {
    use nvml_wrapper::Nvml;
    use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
    use nvml_wrapper::error::NvmlError;

    use super::GpuProbe;
    use crate::{Error, GpuSnapshot};

    /// NVIDIA GPUs through NVML (`libnvidia-ml`, loaded at run time).
    pub struct NvmlProbe {
        nvml: Nvml,
        /// `(index, name)` of each device, read once.
        pub(super) devices: Vec<(u32, String)>,
    }

    impl std::fmt::Debug for NvmlProbe {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("NvmlProbe")
                .field("devices", &self.devices)
                .finish_non_exhaustive()
        }
    }

    fn gpu_error(source: NvmlError) -> Error {
        Error::Gpu {
            source: Box::new(source),
        }
    }

    impl NvmlProbe {
        /// Loads and initialises NVML and lists the devices.
        ///
        /// Fails (with [`Error::Gpu`]) if the library is missing, the driver is not
        /// loaded, or there is no device.
        pub fn new() -> Result<NvmlProbe, Error> {
            let nvml = Nvml::init().map_err(gpu_error)?;
            let count = nvml.device_count().map_err(gpu_error)?;
            if count == 0 {
                return Err(Error::Gpu {
                    source: "NVML lists no device".into(),
                });
            }
            let devices = (0..count)
                .map(|index| {
                    let name = nvml.device_by_index(index).and_then(|d| d.name());
                    (index, name.unwrap_or_else(|_| format!("GPU {index}")))
                })
                .collect();
            Ok(NvmlProbe { nvml, devices })
        }

        /// The device names, in index order.
        pub fn names(&self) -> Vec<&str> {
            self.devices.iter().map(|(_, name)| name.as_str()).collect()
        }
    }

    /// The value, or `None` with a debug line unless the device simply lacks the figure.
    fn figure<T>(index: u32, what: &str, result: Result<T, NvmlError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(NvmlError::NotSupported) => None,
            Err(err) => {
                tracing::debug!(target: "medfusion_monitor", gpu = index, %err, "no {what}");
                None
            }
        }
    }

    impl GpuProbe for NvmlProbe {
        fn read(&mut self) -> Vec<GpuSnapshot> {
            let mut out = Vec::with_capacity(self.devices.len());
            for (index, name) in &self.devices {
                let index = *index;
                let Some(device) = figure(index, "the device", self.nvml.device_by_index(index))
                else {
                    continue;
                };
                let memory = figure(index, "memory", device.memory_info());
                let (used, total) = memory.map_or((0, 0), |m| (m.used, m.total));
                let mut gpu = GpuSnapshot::new(index, name.clone(), used, total);
                gpu.utilization_percent = figure(index, "utilisation", device.utilization_rates())
                    .map(|u| f64::from(u.gpu));
                gpu.temperature_celsius = figure(
                    index,
                    "temperature",
                    device.temperature(TemperatureSensor::Gpu),
                )
                .map(f64::from);
                gpu.power_watts =
                    figure(index, "power", device.power_usage()).map(|mw| f64::from(mw) / 1000.0);
                gpu.power_limit_watts = figure(index, "power limit", device.enforced_power_limit())
                    .map(|mw| f64::from(mw) / 1000.0);
                out.push(gpu);
            }
            out
        }
    }
}
