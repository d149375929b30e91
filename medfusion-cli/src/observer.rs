//! The resource monitor as the engine's resource observer.

use std::sync::Arc;

use medfusion_exec::{ObserverScope, ResourceObserver, ResourceUsage};
use medfusion_monitor::{ResourceMonitor, Scope};

/// Records each node's peak memory, CPU and GPU memory through monitor scopes.
pub(crate) struct MonitorObserver(pub(crate) Arc<ResourceMonitor>);

struct NodeScope(Scope);

impl ResourceObserver for MonitorObserver {
    fn node_started(&self, node: &str) -> Box<dyn ObserverScope> {
        Box::new(NodeScope(self.0.scope(node)))
    }
}

impl ObserverScope for NodeScope {
    fn finish(self: Box<Self>) -> ResourceUsage {
        usage_of(&self.0.finish())
    }
}

/// A monitor scope's peaks as the engine records them.
pub(crate) fn usage_of(summary: &medfusion_monitor::ScopeSummary) -> ResourceUsage {
    ResourceUsage {
        peak_rss_bytes: Some(summary.peak_rss_bytes),
        cpu_mean_percent: summary.cpu_percent.map(|s| s.mean as f32),
        cpu_max_percent: summary.cpu_percent.map(|s| s.max as f32),
        peak_gpu_memory_bytes: summary
            .gpu_memory_peaks
            .iter()
            .map(|p| p.memory_used_bytes)
            .max(),
    }
}
