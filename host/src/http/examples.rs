//! Examples for the OpenAPI document: every request body and response that has a schema but no
//! example of its own gets one built from the schema (the schema's own `example`s, enums and
//! formats first), so `/api/docs` shows a filled-in body for every route and the examples cannot
//! drift from the types.

use serde_json::{Map, Value, json};

/// How deep nested references are followed (recursive schemas stop here).
const MAX_DEPTH: usize = 8;

/// Fills in the missing examples of `doc` (an OpenAPI 3.1 document as JSON).
pub fn fill(doc: &mut Value) {
    let components = doc.pointer("/components/schemas").cloned().unwrap_or(Value::Null);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for operation in item.values_mut() {
            let Some(operation) = operation.as_object_mut() else { continue };
            if let Some(content) = operation.get_mut("requestBody").and_then(|b| b.get_mut("content")) {
                fill_content(content, &components);
            }
            if let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) {
                for response in responses.values_mut() {
                    if let Some(content) = response.get_mut("content") {
                        fill_content(content, &components);
                    }
                }
            }
        }
    }
}

fn fill_content(content: &mut Value, components: &Value) {
    let Some(media) = content.as_object_mut() else { return };
    for media_type in media.values_mut() {
        let Some(media_type) = media_type.as_object_mut() else { continue };
        if media_type.contains_key("example") || media_type.contains_key("examples") {
            continue;
        }
        if let Some(schema) = media_type.get("schema") {
            let example = example(schema, components, 0);
            media_type.insert("example".into(), example);
        }
    }
}

/// An example value of `schema`.
pub fn example(schema: &Value, components: &Value, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let Some(object) = schema.as_object() else { return Value::Null };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return components.get(name).map_or(Value::Null, |target| example(target, components, depth + 1));
    }
    if let Some(example) = object.get("example") {
        return example.clone();
    }
    if let Some(first) = object.get("examples").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    if let Some(first) = object.get("enum").and_then(Value::as_array).and_then(|e| e.iter().find(|v| !v.is_null())) {
        return first.clone();
    }
    if let Some(default) = object.get("default") {
        return default.clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = object.get(key).and_then(Value::as_array) {
            let chosen = options.iter().find(|o| o.get("type") != Some(&json!("null"))).or(options.first());
            return chosen.map_or(Value::Null, |o| example(o, components, depth + 1));
        }
    }
    if let Some(parts) = object.get("allOf").and_then(Value::as_array) {
        let mut merged = Map::new();
        for part in parts {
            if let Value::Object(fields) = example(part, components, depth + 1) {
                merged.extend(fields);
            }
        }
        return Value::Object(merged);
    }
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or("null"),
        _ if object.contains_key("properties") => "object",
        _ => "",
    };
    match kind {
        "object" => {
            let mut fields = Map::new();
            if let Some(properties) = object.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    fields.insert(name.clone(), example(property, components, depth + 1));
                }
            }
            Value::Object(fields)
        }
        "array" => object.get("items").map_or(json!([]), |items| json!([example(items, components, depth + 1)])),
        "string" => Value::String(
            match object.get("format").and_then(Value::as_str) {
                Some("uuid") => "0193a5f2-7c1e-7d3a-9b1e-5f2d8c4a6e10",
                Some("date-time") => "2026-12-04T10:00:00Z",
                Some("date") => "2026-12-04",
                Some("email") => "agent@example.com",
                Some("uri" | "url") => "https://example.com",
                Some("binary") => "(bytes)",
                _ => "string",
            }
            .to_owned(),
        ),
        "integer" => object.get("minimum").cloned().unwrap_or(json!(0)),
        "number" => object.get("minimum").cloned().unwrap_or(json!(0.0)),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_follow_references_formats_enums_and_nullables() {
        let components = json!({
            "Status": {"type": "string", "enum": ["OPEN", "CLOSED"]},
            "Thing": {"type": "object", "properties": {
                "id": {"type": "string", "format": "uuid"},
                "status": {"$ref": "#/components/schemas/Status"},
                "note": {"type": ["string", "null"], "example": "hello"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "count": {"type": "integer", "minimum": 1}
            }}
        });
        let value = example(&json!({"$ref": "#/components/schemas/Thing"}), &components, 0);
        assert_eq!(
            value,
            json!({"id": "0193a5f2-7c1e-7d3a-9b1e-5f2d8c4a6e10", "status": "OPEN", "note": "hello", "tags": ["string"], "count": 1})
        );
    }

    #[test]
    fn an_operations_bodies_get_examples_and_given_ones_are_kept() {
        let mut doc = json!({"paths": {"/x": {"post": {
            "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"a": {"type": "boolean"}}}}}},
            "responses": {"200": {"content": {"application/json": {"schema": {"type": "string"}, "example": "kept"}}}}
        }}}});
        fill(&mut doc);
        assert_eq!(doc.pointer("/paths/~1x/post/requestBody/content/application~1json/example"), Some(&json!({"a": true})));
        assert_eq!(doc.pointer("/paths/~1x/post/responses/200/content/application~1json/example"), Some(&json!("kept")));
    }
}
