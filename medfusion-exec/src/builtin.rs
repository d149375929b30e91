//! Built-in utility node types, to exercise and benchmark the engine without training.

use medfusion_graph::{ConfigField, ConfigSchema, FieldKind, NodeSpec, PortSpec, PortType};
use serde_json::Value as Json;

use crate::context::{NodeContext, Outputs};
use crate::error::{Error, NodeError, NodeErrorKind};
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

/// `util.sleep`: waits, and stops at once when the run is cancelled.
struct Sleep;

impl NodeExecutor for Sleep {
    async fn execute(&self, ctx: NodeContext) -> Result<Outputs, NodeError> {
        let text = ctx
            .config()
            .get("duration")
            .and_then(Json::as_str)
            .unwrap_or("1s");
        let duration = humantime::parse_duration(text).map_err(|e| {
            NodeError::with_source(format!("invalid duration `{text}`"), e)
                .kind_of(NodeErrorKind::InvalidInput)
        })?;
        ctx.progress(
            Some(0.0),
            format!("sleeping {}", humantime::format_duration(duration)),
        );
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(pass_on(&ctx)),
            () = ctx.cancelled() => Err(NodeError::cancelled()),
        }
    }
}

/// `util.fail`: fails its first `failures` attempts.
async fn fail(ctx: NodeContext) -> Result<Outputs, NodeError> {
    let failures = ctx
        .config()
        .get("failures")
        .and_then(Json::as_u64)
        .unwrap_or(1);
    if u64::from(ctx.attempt()) <= failures {
        let message = ctx
            .config()
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or("failed");
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
        .with_config(
            ConfigSchema::new().field(
                ConfigField::new("duration", FieldKind::Duration)
                    .default_value("1s")
                    .describe("how long, e.g. `500ms` or `1m`"),
            ),
        ),
        Sleep,
    )?;
    registry.register(
        pass_through(
            "util.fail",
            "Fails its first `failures` attempts, then succeeds",
        )
        .with_config(
            ConfigSchema::new()
                .field(
                    ConfigField::new(
                        "failures",
                        FieldKind::Integer {
                            min: Some(0),
                            max: None,
                        },
                    )
                    .default_value(1)
                    .describe("attempts that fail before one succeeds"),
                )
                .field(
                    ConfigField::new("message", FieldKind::String)
                        .default_value("injected failure")
                        .describe("the error message"),
                ),
        ),
        FnExecutor(fail),
    )?;
    registry.register(
        NodeSpec::new("util.value", "Emits the value in its config")
            .output(PortSpec::output("out", PortType::Value).describe("the configured value"))
            .with_config(
                ConfigSchema::new().field(
                    ConfigField::new("value", FieldKind::Any)
                        .default_value(Json::Null)
                        .describe("any JSON or YAML value"),
                ),
            ),
        FnExecutor(|ctx: NodeContext| async move {
            let value = ctx.config().get("value").cloned().unwrap_or(Json::Null);
            Ok(Outputs::new().with("out", JsonValue::new(value)))
        }),
    )?;
    Ok(())
}
