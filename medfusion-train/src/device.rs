//! Choosing the device: `auto`, `cpu` or `cuda:N`, with a clear error where CUDA is unusable.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The `device` setting: where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The first usable GPU (CUDA builds), else the CPU.
    #[default]
    Auto,
    /// The CPU backend (Burn's `flex`).
    Cpu,
    /// The CUDA device with this index (needs the `cuda` feature).
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::config(
                "device",
                format!("`{s}` is not a device (expected `auto`, `cpu`, `cuda` or `cuda:N`)"),
            )
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            other => {
                let index = other
                    .strip_prefix("cuda:")
                    .or_else(|| other.strip_prefix("gpu:"))
                    .ok_or_else(bad)?;
                index.parse().map(DeviceSpec::Cuda).map_err(|_| bad())
            }
        }
    }
}

impl schemars::JsonSchema for DeviceSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DeviceSpec".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(auto|cpu|cuda|gpu|(cuda|gpu):[0-9]+)$"
        })
    }
}

/// Read from a config: the error is the reason alone, as the config check names the key.
impl TryFrom<String> for DeviceSpec {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse().map_err(|e| match e {
            Error::Config { reason, .. } => reason,
            other => other.to_string(),
        })
    }
}

impl From<DeviceSpec> for String {
    fn from(spec: DeviceSpec) -> String {
        spec.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceSpec {
    /// The Burn device (without autodiff) this setting names, after checking that it can be
    /// used: `cuda:N` without a working driver, NVRTC or device `N` is an [`Error::Device`]
    /// naming what is missing, and never reaches Burn (which would panic on a worker thread).
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::flex()),
            DeviceSpec::Auto => Ok(cuda::first_usable().unwrap_or_else(Device::flex)),
            DeviceSpec::Cuda(index) => cuda::device(index).map_err(|reason| Error::Device {
                device: self.to_string(),
                reason,
            }),
        }
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use burn::tensor::Device;

    /// Checks the driver library, NVRTC and the device count before Burn touches CUDA.
    pub(super) fn device(index: usize) -> Result<Device, String> {
        let count = usable_count()?;
        if index >= count {
            return Err(format!(
                "there {} {count} CUDA device{} (indices start at 0)",
                if count == 1 { "is" } else { "are" },
                if count == 1 { "" } else { "s" }
            ));
        }
        Ok(Device::cuda(index))
    }

    pub(super) fn first_usable() -> Option<Device> {
        match usable_count() {
            Ok(n) if n > 0 => Some(Device::cuda(0)),
            Ok(_) => None,
            Err(reason) => {
                tracing::info!("not using CUDA: {reason}");
                None
            }
        }
    }

    fn usable_count() -> Result<usize, String> {
        // SAFETY: these only try to dlopen the libraries by their usual names.
        let driver = unsafe { cudarc::driver::sys::is_culib_present() };
        if !driver {
            return Err(
                "no usable CUDA driver (libcuda.so.1 not found; is the NVIDIA driver installed \
                 and on LD_LIBRARY_PATH?)"
                    .to_owned(),
            );
        }
        // SAFETY: as above.
        let nvrtc = unsafe { cudarc::nvrtc::sys::is_culib_present() };
        if !nvrtc {
            return Err(
                "no usable CUDA driver setup: NVRTC (libnvrtc.so) not found; install the CUDA \
                 runtime compiler or add it to LD_LIBRARY_PATH"
                    .to_owned(),
            );
        }
        cudarc::driver::result::init()
            .map_err(|e| format!("no usable CUDA driver (cuInit failed: {e})"))?;
        let count = cudarc::driver::result::device::get_count()
            .map_err(|e| format!("no usable CUDA driver (cuDeviceGetCount failed: {e})"))?;
        Ok(usize::try_from(count).unwrap_or(0))
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use burn::tensor::Device;

    pub(super) fn device(_index: usize) -> Result<Device, String> {
        Err("this build has no CUDA support (rebuild with `--features cuda`)".to_owned())
    }

    pub(super) fn first_usable() -> Option<Device> {
        None
    }
}

/// A short name of a device for messages and logs (`cpu`, `cuda:0`).
pub(crate) fn device_name(device: &Device) -> String {
    let debug = format!("{device:?}");
    if debug.contains("Flex") || debug.contains("Cpu") {
        "cpu".to_owned()
    } else if let Some(rest) = debug.split("Cuda").nth(1) {
        let index: String = rest.chars().filter(char::is_ascii_digit).take(3).collect();
        format!("cuda:{}", if index.is_empty() { "0" } else { &index })
    } else {
        debug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        assert_eq!("CPU".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        let err = "tpu".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(err.contains("`tpu` is not a device"), "{err}");
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn serde_round_trip() {
        let spec: DeviceSpec = serde_json::from_str("\"cuda:1\"").unwrap();
        assert_eq!(spec, DeviceSpec::Cuda(1));
        assert_eq!(serde_json::to_string(&spec).unwrap(), "\"cuda:1\"");
    }

    #[test]
    fn cpu_resolves_to_the_cpu_backend() {
        let device = DeviceSpec::Cpu.resolve().unwrap();
        assert_eq!(device_name(&device), "cpu");
        assert_eq!(device_name(&DeviceSpec::Auto.resolve().unwrap()), "cpu");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).resolve().unwrap_err().to_string();
        assert!(err.contains("`cuda:0` is not usable"), "{err}");
        assert!(
            err.contains("this build has no CUDA support") && err.contains("--features cuda"),
            "{err}"
        );
    }

    /// Whether the NVIDIA driver's library loads, checked here without cudarc.
    #[cfg(feature = "cuda")]
    fn driver_library_loads() -> bool {
        // SAFETY: dlopen of a library by name, closed again at once.
        unsafe {
            let handle = libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_LAZY);
            if handle.is_null() {
                false
            } else {
                libc::dlclose(handle);
                true
            }
        }
    }

    /// The outcome this machine must give: `test-gpu` says it has a usable GPU (so resolving
    /// must succeed); without the driver library, the error must say so in words. A machine
    /// with the driver but without `test-gpu` may resolve or name what CUDA lacks.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_resolves_or_says_why_as_this_machine_dictates() {
        let result = DeviceSpec::Cuda(0).resolve();
        if cfg!(feature = "test-gpu") {
            if let Err(e) = result {
                panic!("`test-gpu` is on, but CUDA is not usable: {e}");
            }
        } else if !driver_library_loads() {
            let err = result.expect_err("CUDA resolved without a driver library");
            let text = err.to_string();
            assert!(
                text.contains("`cuda:0` is not usable")
                    && text.contains("no usable CUDA driver (libcuda.so.1 not found"),
                "{text}"
            );
        } else if let Err(e) = result {
            assert!(e.to_string().contains("CUDA"), "{e}");
        }
    }
}
