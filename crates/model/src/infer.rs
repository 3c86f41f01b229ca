//! Types for the untyped parts of a schema, inferred from the records (`untyped = "infer"`).
//!
//! Taps built on the Meltano SDK often infer their SCHEMA and declare nested objects as
//! `{"type": ["null","object"], "additionalProperties": true}` with no properties, and
//! arrays as `{"items": {}}`. Loaded as declared, each such object is one JSON column. With
//! inference, those open places are typed from the values that arrive: objects become
//! flattened columns, arrays child tables, exactly as if the properties had been declared.
//! The result is an ordinary JSON Schema (the declared one with its open places filled in),
//! so naming, collisions and schema evolution are those of declared properties.
//!
//! ```
//! use observes_model::infer::SchemaInference;
//! use serde_json::json;
//!
//! let declared = json!({"properties": {"id": {"type": "integer"},
//!     "user": {"type": ["null", "object"], "additionalProperties": true}}});
//! let mut inference = SchemaInference::new(&declared);
//! assert!(inference.is_open());
//! let record = json!({"id": 1, "user": {"name": "ana", "age": 30}});
//! assert!(inference.observe(record.as_object().unwrap()));
//! assert_eq!(
//!     inference.schema()["properties"]["user"],
//!     json!({"type": ["null", "object"], "properties": {
//!         "name": {"type": ["null", "string"]}, "age": {"type": ["null", "integer"]}}})
//! );
//! // The same keys and types again change nothing.
//! assert!(!inference.observe(record.as_object().unwrap()));
//! ```

use std::collections::HashMap;

use serde_json::{json, Map, Value};

/// The declared schema, with what the records showed of its open places.
#[derive(Debug, Clone)]
pub struct SchemaInference {
    declared: Value,
    node: Node,
}

/// Where a declared schema is open.
#[derive(Debug, Clone)]
enum Node {
    /// An object with declared properties: some of them may be open.
    Object(Vec<(String, Node)>),
    /// An array whose items have a declared schema.
    Array(Box<Node>),
    /// No declared shape: typed from the values.
    Open(Shape),
    /// Declared, nothing to infer.
    Closed,
}

/// What the values at an open place were.
#[derive(Debug, Clone, Default)]
struct Shape {
    /// Scalar kinds seen ([`BOOL`], [`INT`], [`NUM`], [`STR`]).
    scalars: u8,
    object: Option<Fields>,
    items: Option<Box<Shape>>,
}

const BOOL: u8 = 1;
const INT: u8 = 2;
const NUM: u8 = 4;
const STR: u8 = 8;

/// An object's keys in the order they were first seen.
#[derive(Debug, Clone, Default)]
struct Fields {
    order: Vec<(String, Shape)>,
    index: HashMap<String, usize>,
}

impl SchemaInference {
    /// Inference starting from the declared schema (its typed properties stay as declared).
    pub fn new(declared: &Value) -> SchemaInference {
        SchemaInference {
            declared: declared.clone(),
            node: Node::of(declared),
        }
    }

    /// Whether the schema has an open place at all (otherwise there is nothing to infer).
    pub fn is_open(&self) -> bool {
        self.node.is_open()
    }

    /// Takes in a record's values at the open places. Returns whether the inferred schema
    /// changed (a new key, or a new type for one).
    pub fn observe(&mut self, record: &Map<String, Value>) -> bool {
        match &mut self.node {
            Node::Object(properties) => observe_properties(properties, record),
            Node::Open(shape) => shape.object_merge(record),
            Node::Array(_) | Node::Closed => false,
        }
    }

    /// The declared schema with its open places typed from the records seen so far. An
    /// open property that has only seen nulls, empty objects or empty arrays is left out
    /// (no column yet, rather than a JSON column it would outgrow); an open root stays as
    /// declared.
    pub fn schema(&self) -> Value {
        effective(&self.declared, &self.node).unwrap_or_else(|| self.declared.clone())
    }
}

fn observe_properties(properties: &mut [(String, Node)], record: &Map<String, Value>) -> bool {
    let mut changed = false;
    for (key, node) in properties.iter_mut() {
        if let Some(value) = record.get(key) {
            changed |= node.observe(value);
        }
    }
    changed
}

impl Node {
    fn of(schema: &Value) -> Node {
        let Value::Object(obj) = schema else {
            return match schema {
                Value::Bool(true) => Node::Open(Shape::default()),
                _ => Node::Closed,
            };
        };
        if obj.contains_key("anyOf") || obj.contains_key("oneOf") {
            return Node::Closed;
        }
        let types: Vec<&str> = match obj.get("type") {
            None => vec![],
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Node::Closed,
        };
        let kinds: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
        let object_only = kinds == ["object"];
        let array_only = kinds == ["array"];
        let untyped = kinds.is_empty() && obj.get("type").is_none();
        if object_only || untyped {
            match obj.get("properties") {
                Some(Value::Object(props)) if !props.is_empty() => {
                    return Node::Object(
                        props
                            .iter()
                            .map(|(k, v)| (k.clone(), Node::of(v)))
                            .collect(),
                    )
                }
                _ if untyped && obj.contains_key("items") => {}
                _ => {
                    return if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
                        Node::Closed
                    } else {
                        Node::Open(Shape::default())
                    }
                }
            }
        }
        if array_only || (untyped && obj.contains_key("items")) {
            return match obj.get("items") {
                None => Node::Array(Box::new(Node::Open(Shape::default()))),
                Some(items @ (Value::Object(_) | Value::Bool(true))) => {
                    Node::Array(Box::new(Node::of(items)))
                }
                Some(_) => Node::Closed,
            };
        }
        Node::Closed
    }

    fn is_open(&self) -> bool {
        match self {
            Node::Object(properties) => properties.iter().any(|(_, n)| n.is_open()),
            Node::Array(item) => item.is_open(),
            Node::Open(_) => true,
            Node::Closed => false,
        }
    }

    fn observe(&mut self, value: &Value) -> bool {
        match (self, value) {
            (Node::Object(properties), Value::Object(map)) => observe_properties(properties, map),
            (Node::Array(item), Value::Array(list)) => {
                let mut changed = false;
                for element in list {
                    changed |= item.observe(element);
                }
                changed
            }
            (Node::Open(shape), value) => shape.merge(value),
            // A value that contradicts the declared schema is the normalizer's to report.
            _ => false,
        }
    }
}

impl Shape {
    fn merge(&mut self, value: &Value) -> bool {
        let kind = match value {
            Value::Null => return false,
            Value::Bool(_) => BOOL,
            Value::Number(n) if n.is_i64() || n.is_u64() => INT,
            Value::Number(_) => NUM,
            Value::String(_) => STR,
            Value::Object(map) => return self.object_merge(map),
            Value::Array(list) => {
                let mut changed = self.items.is_none();
                let items = self.items.get_or_insert_with(Default::default);
                for element in list {
                    changed |= items.merge(element);
                }
                return changed;
            }
        };
        let changed = self.scalars & kind == 0;
        self.scalars |= kind;
        changed
    }

    fn object_merge(&mut self, map: &Map<String, Value>) -> bool {
        let mut changed = self.object.is_none();
        let fields = self.object.get_or_insert_with(Default::default);
        for (key, value) in map {
            match fields.index.get(key) {
                Some(&i) => changed |= fields.order[i].1.merge(value),
                // A key seen only as null gets no column until it has a value.
                None if value.is_null() => {}
                None => {
                    let mut shape = Shape::default();
                    shape.merge(value);
                    fields.index.insert(key.clone(), fields.order.len());
                    fields.order.push((key.clone(), shape));
                    changed = true;
                }
            }
        }
        changed
    }

    /// The JSON Schema of what was seen; `None` when nothing but nulls was.
    fn schema(&self) -> Option<Value> {
        let object = self.object.as_ref();
        let kinds = usize::from(self.scalars != 0)
            + usize::from(object.is_some())
            + usize::from(self.items.is_some());
        match kinds {
            0 => None,
            // Mixed kinds (an object here, a string there) stay JSON, as declared ones do.
            2.. => Some(json!({})),
            _ if self.scalars != 0 => {
                let mut types = vec![json!("null")];
                for (flag, name) in [
                    (BOOL, "boolean"),
                    (INT, "integer"),
                    (NUM, "number"),
                    (STR, "string"),
                ] {
                    // An integer column widens to a number one when fractions arrive.
                    if self.scalars & flag != 0 && !(flag == INT && self.scalars & NUM != 0) {
                        types.push(json!(name));
                    }
                }
                Some(json!({ "type": types }))
            }
            _ => match (object, &self.items) {
                (Some(fields), _) => {
                    let properties: Map<String, Value> = fields
                        .order
                        .iter()
                        .filter_map(|(k, shape)| Some((k.clone(), shape.schema()?)))
                        .collect();
                    (!properties.is_empty())
                        .then(|| json!({"type": ["null", "object"], "properties": properties}))
                }
                (None, Some(items)) => items.schema().map(|items| {
                    json!({
                        "type": ["null", "array"],
                        "items": items,
                    })
                }),
                (None, None) => None,
            },
        }
    }
}

/// The schema of a place: `None` for an open one with nothing seen yet.
fn effective(declared: &Value, node: &Node) -> Option<Value> {
    match node {
        Node::Closed => Some(declared.clone()),
        Node::Open(shape) => shape.schema(),
        Node::Object(properties) => {
            let mut out = declared.clone();
            if let Some(Value::Object(props)) = out.get_mut("properties") {
                for (key, node) in properties {
                    match props.get(key).and_then(|sub| effective(sub, node)) {
                        Some(sub) => {
                            props.insert(key.clone(), sub);
                        }
                        None => {
                            props.shift_remove(key);
                        }
                    }
                }
            }
            Some(out)
        }
        Node::Array(item) => {
            let mut out = declared.clone();
            let items = out.get("items").cloned().unwrap_or_else(|| json!({}));
            let items = effective(&items, item)?;
            if let Value::Object(obj) = &mut out {
                obj.insert("items".into(), items);
            }
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe(inference: &mut SchemaInference, record: Value) -> bool {
        inference.observe(record.as_object().unwrap())
    }

    #[test]
    fn declared_schemas_are_not_open() {
        let declared = json!({"properties": {"id": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "closed": {"type": "object", "additionalProperties": false}}});
        assert!(!SchemaInference::new(&declared).is_open());
    }

    #[test]
    fn open_objects_and_arrays_are_typed_and_evolve() {
        let declared = json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "runner": {"type": ["null", "object"], "additionalProperties": true},
            "artifacts": {"type": ["null", "array"], "items": {}},
            "tags": {"items": {}},
        }});
        let mut inference = SchemaInference::new(&declared);
        assert!(inference.is_open());
        assert!(!observe(
            &mut inference,
            json!({"id": 1, "runner": null, "artifacts": []})
        ));
        let schema = inference.schema();
        assert!(
            schema["properties"].get("artifacts").is_none()
                && schema["properties"].get("runner").is_none(),
            "nothing seen yet: no column: {schema}"
        );
        assert!(observe(
            &mut inference,
            json!({"id": 1, "runner": {"id": 3, "tags": ["a"], "gone": null},
                   "artifacts": [{"name": "log", "size": 1}], "tags": ["x"]})
        ));
        let schema = inference.schema();
        assert_eq!(
            schema["properties"]["runner"],
            json!({"type": ["null", "object"], "properties": {
                "id": {"type": ["null", "integer"]},
                "tags": {"type": ["null", "array"], "items": {"type": ["null", "string"]}}}})
        );
        assert_eq!(
            schema["properties"]["artifacts"]["items"],
            json!({"type": ["null", "object"], "properties": {
                "name": {"type": ["null", "string"]}, "size": {"type": ["null", "integer"]}}})
        );
        assert_eq!(
            schema["properties"]["tags"],
            json!({"items": {"type": ["null", "string"]}})
        );
        assert_eq!(schema["properties"]["id"], json!({"type": "integer"}));
        // A fraction widens the integer; a new key adds a property; mixed kinds are JSON.
        assert!(observe(
            &mut inference,
            json!({"runner": {"id": 3.5, "gone": "now"}, "artifacts": [{"size": {"x": 1}}]})
        ));
        let schema = inference.schema();
        assert_eq!(
            schema["properties"]["runner"]["properties"]["id"],
            json!({"type": ["null", "number"]})
        );
        assert_eq!(
            schema["properties"]["runner"]["properties"]["gone"],
            json!({"type": ["null", "string"]})
        );
        assert_eq!(
            schema["properties"]["artifacts"]["items"]["properties"]["size"],
            json!({})
        );
        assert!(!observe(&mut inference, json!({"runner": {"id": 1}})));
    }

    #[test]
    fn an_open_root_is_typed_too() {
        let mut inference = SchemaInference::new(&json!({"type": "object"}));
        assert!(inference.is_open());
        assert_eq!(inference.schema(), json!({"type": "object"}));
        assert!(observe(&mut inference, json!({"a": {"b": true}, "c": {}})));
        assert_eq!(
            inference.schema(),
            json!({"type": ["null", "object"], "properties": {"a": {"type": ["null", "object"],
                "properties": {"b": {"type": ["null", "boolean"]}}}}})
        );
    }
}
