//! The JSON Schema of workflow files, so editors can complete and check them.

use serde_json::{Value, json};

use crate::spec::NodeCatalog;
use crate::workflow::Workflow;

/// The JSON Schema (draft 2020-12) of a workflow file whose nodes use the types of
/// `catalog`: node `type` is one of the registered types, and each node's `config` is
/// checked against its type's keys, types and ranges.
pub fn workflow_schema(catalog: &NodeCatalog) -> Value {
    let mut schema = schemars::schema_for!(Workflow).to_value();
    schema["title"] = json!("medfusion workflow");
    schema["description"] =
        json!("A medfusion workflow: typed nodes joined output port to input port by edges.");
    let Some(node) = schema.pointer_mut("/$defs/Node") else {
        return schema;
    };
    let types: Vec<&str> = catalog.type_names().collect();
    if !types.is_empty() {
        node["properties"]["type"]["enum"] = json!(types);
    }
    let per_type: Vec<Value> = catalog
        .iter()
        .map(|spec| {
            let mut config = spec.config.json_schema();
            if !spec.description.is_empty() {
                config["description"] = json!(spec.description);
            }
            json!({
                "if": { "properties": { "type": { "const": spec.node_type } } },
                "then": { "properties": { "config": config } }
            })
        })
        .collect();
    if !per_type.is_empty() {
        node["allOf"] = Value::Array(per_type);
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigField, ConfigSchema, FieldKind};
    use crate::spec::NodeSpec;

    #[test]
    fn schema_lists_types_and_their_config() {
        let mut catalog = NodeCatalog::new();
        catalog
            .register(NodeSpec::new("util.sleep", "Wait").with_config(
                ConfigSchema::new().field(ConfigField::new("duration", FieldKind::Duration)),
            ))
            .unwrap();
        let schema = workflow_schema(&catalog);
        assert_eq!(
            schema["$defs"]["Node"]["properties"]["type"]["enum"],
            json!(["util.sleep"])
        );
        let rule = &schema["$defs"]["Node"]["allOf"][0];
        assert_eq!(rule["if"]["properties"]["type"]["const"], "util.sleep");
        assert_eq!(
            rule["then"]["properties"]["config"]["properties"]["duration"]["type"],
            "string"
        );
        assert_eq!(schema["required"], json!(["name", "nodes"]));
    }
}
