//! The JSON Schemas of the streams, from the reference packages (see `schemas/README.md`).

use serde_json::{Map, Value};

/// A GitLab stream's schema (airbyte-source-gitlab's, unmodified).
pub fn gitlab(stream: &str) -> Value {
    let text = match stream {
        "projects" => include_str!("../schemas/gitlab/projects.json"),
        "pipelines" => include_str!("../schemas/gitlab/pipelines.json"),
        "jobs" => include_str!("../schemas/gitlab/jobs.json"),
        "merge_requests" => include_str!("../schemas/gitlab/merge_requests.json"),
        "issues" => include_str!("../schemas/gitlab/issues.json"),
        "project_members" => include_str!("../schemas/gitlab/project_members.json"),
        other => unreachable!("no bundled GitLab schema {other:?}"),
    };
    serde_json::from_str(text).unwrap_or_else(|e| unreachable!("bundled schema {stream}: {e}"))
}

const CHECKLY_OPENAPI: &str = include_str!("../schemas/checkly/openapi.json");

/// A Checkly stream's schema: `components/schemas/<component>` of the OpenAPI document,
/// `$ref`s resolved, every property nullable (OpenAPI 3.0 leaves nullability out and the
/// API does send nulls) and enums dropped (they are stale; live values are newer).
pub fn checkly(component: &str) -> Value {
    let document: Value = serde_json::from_str(CHECKLY_OPENAPI)
        .unwrap_or_else(|e| unreachable!("bundled OpenAPI document: {e}"));
    let components = &document["components"]["schemas"];
    let schema = &components[component];
    assert!(
        schema.is_object(),
        "no component {component:?} in the Checkly OpenAPI document"
    );
    let mut out = resolve(schema, components, 0);
    if let Value::Object(map) = &mut out {
        // The top level is the record itself, never null.
        map.insert("type".into(), Value::String("object".into()));
    }
    out
}

fn resolve(schema: &Value, components: &Value, depth: usize) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    if let Some(Value::String(reference)) = map.get("$ref") {
        let name = reference.rsplit('/').next().unwrap_or_default();
        // Recursive definitions stop at a free-form object.
        if depth > 12 {
            return serde_json::json!({"type": ["null", "object"]});
        }
        return resolve(&components[name], components, depth + 1);
    }
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "enum" | "example" | "description" | "default" | "x-constraint" | "required" => {}
            // The API sends full timestamps in fields the document calls dates.
            "format" if value == "date" => {}
            "type" => {
                let mut types: Vec<Value> = match value {
                    Value::Array(list) => list.clone(),
                    other => vec![other.clone()],
                };
                if !types.iter().any(|t| t == "null") {
                    types.insert(0, Value::String("null".into()));
                }
                out.insert(key.clone(), Value::Array(types));
            }
            "properties" => {
                let props = value
                    .as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(k, v)| (k.clone(), resolve(v, components, depth + 1)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(key.clone(), resolve(value, components, depth + 1));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    // Where the document's own example shows objects in a list it types as strings (the
    // browser result's `pages`, `jobLog`), the example is what the API sends.
    let example_has_objects = match map.get("example") {
        Some(Value::Object(_)) => true,
        Some(Value::Array(list)) => list.iter().any(Value::is_object),
        _ => false,
    };
    if example_has_objects {
        if let Some(items) = out.get_mut("items") {
            if items.get("properties").is_none() {
                *items = Value::Object(Map::new());
            }
        }
    }
    Value::Object(out)
}
