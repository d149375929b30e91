//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong while configuring or running a monitor.
///
/// A missing GPU, driver or NVML library is not an error: the monitor reports no GPUs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range; `field` names it as the builder spells it.
    #[error("invalid monitor setting `{field}` = {value}: {reason}")]
    InvalidConfig {
        /// The setting, such as `interval` or `thresholds.cpu.warning`.
        field: &'static str,
        /// The rejected value, as text.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A system file (under `/proc`) could not be read.
    #[error("cannot read `{path}`", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A system file was read but did not hold what was expected.
    #[error("cannot parse `{path}`: {what}", path = path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was missing or malformed.
        what: &'static str,
    },
    /// The operating system gave no figure for something the sample needs.
    #[error("the system reported no {what} (is this platform supported by sysinfo?)")]
    Unavailable {
        /// The missing figure, such as `memory total`.
        what: &'static str,
    },
    /// NVML could not be loaded or initialised, or listed no device.
    ///
    /// Only `NvmlProbe::new` (feature `gpu`) returns it; [`detect_gpus`](crate::detect_gpus)
    /// turns it into one log line and no GPUs.
    #[error("cannot use NVIDIA GPUs through NVML (is the NVIDIA driver installed?)")]
    Gpu {
        /// The cause, as NVML reported it.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The sampling thread could not be started.
    #[error("cannot start the `medfusion-monitor` sampling thread")]
    Spawn {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// `err` and its causes joined by `: `, for log fields.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
