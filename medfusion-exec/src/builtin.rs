//! Built-in utility node types, to exercise and benchmark the engine without training.

use medfusion_graph::{HumanDuration, NodeConfig, NodeSpec, PortSpec, PortType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::context::{NodeContext, Outputs};
use crate::error::{Error, NodeError};
use crate::executor::{FnExecutor, NodeExecutor};
use crate::registry::Registry;
use crate::value::JsonValue;

/// A spec with the pass-through ports: `in` (any values, optional) and `out`.
fn pass_through(node_type: &str, description: &str) -> NodeSpec {
    NodeSpec::new(node_type, description)
        .input(
            PortSpec::optional("in", PortType::Value)
                .multiple()
                .describe("any values; the first is passed on"),
        )
        .output(PortSpec::output("out", PortType::Value).describe("the first input, or null"))
}

fn pass_on(ctx: &NodeContext) -> Outputs {
    let value = ctx
        .inputs()
        .all("in")
        .first()
        .map_or(Json::Null, crate::value::Value::summary);
    Outputs::new().with("out", JsonValue::new(value))
}

/// Settings of `util.sleep`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct SleepConfig {
    /// How long, e.g. `500ms` or `1m`.
    duration: HumanDuration,
    /// Sleep on a blocking thread that does not stop when cancelled, like a body stuck in a
    /// long call (to exercise how the engine and its callers handle such nodes).
    ignore_cancel: bool,
}

impl Default for SleepConfig {
    fn default() -> SleepConfig {
        SleepConfig {
            ignore_cancel: false,
            duration: std::time::Duration::from_secs(1).into(),
        }
    }
}

impl NodeConfig for SleepConfig {}

/// Settings of `util.fail`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct FailConfig {
    /// Attempts that fail before one succeeds.
    failures: u64,
    /// The error message.
    message: String,
}

impl Default for FailConfig {
    fn default() -> FailConfig {
        FailConfig {
            failures: 1,
            message: "injected failure".into(),
        }
    }
}

impl NodeConfig for FailConfig {}

/// Settings of `util.value`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct ValueConfig {
    /// Any JSON or YAML value.
    value: Json,
}

impl NodeConfig for ValueConfig {}

/// `util.sleep`: waits, and stops at once when the run is cancelled.
struct Sleep;

impl NodeExecutor for Sleep {
    async fn execute(&self, ctx: NodeContext) -> Result<Outputs, NodeError> {
        let config = ctx.config_as::<SleepConfig>()?;
        let duration = config.duration.0;
        ctx.progress(
            Some(0.0),
            format!("sleeping {}", humantime::format_duration(duration)),
        );
        if config.ignore_cancel {
            ctx.run_blocking(move || {
                std::thread::sleep(duration);
                Ok(())
            })
            .await?;
            return Ok(pass_on(&ctx));
        }
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(pass_on(&ctx)),
            () = ctx.cancelled() => Err(NodeError::cancelled()),
        }
    }
}

/// `util.fail`: fails its first `failures` attempts.
async fn fail(ctx: NodeContext) -> Result<Outputs, NodeError> {
    let FailConfig { failures, message } = ctx.config_as()?;
    if u64::from(ctx.attempt()) <= failures {
        return Err(NodeError::msg(format!(
            "{message} (attempt {} of the first {failures} that fail)",
            ctx.attempt()
        )));
    }
    Ok(pass_on(&ctx))
}

pub(crate) fn register(registry: &mut Registry) -> Result<(), Error> {
    registry.register(
        pass_through("util.noop", "Does nothing; passes its first input on"),
        FnExecutor(|ctx: NodeContext| async move { Ok(pass_on(&ctx)) }),
    )?;
    registry.register(
        pass_through(
            "util.sleep",
            "Waits for a while (stops at once when cancelled)",
        )
        .with_config_type::<SleepConfig>(),
        Sleep,
    )?;
    registry.register(
        pass_through(
            "util.fail",
            "Fails its first `failures` attempts, then succeeds",
        )
        .with_config_type::<FailConfig>(),
        FnExecutor(fail),
    )?;
    registry.register(
        NodeSpec::new("util.value", "Emits the value in its config")
            .output(PortSpec::output("out", PortType::Value).describe("the configured value"))
            .with_config_type::<ValueConfig>(),
        FnExecutor(|ctx: NodeContext| async move {
            let ValueConfig { value } = ctx.config_as()?;
            Ok(Outputs::new().with("out", JsonValue::new(value)))
        }),
    )?;
    Ok(())
}
