//! The Parsing Canonical Form of an Avro schema, as the Avro specification defines it: the
//! text that two schemas which read data the same way have in common, and that fingerprints
//! are computed over. Written from the specification's transformation rules:
//!
//! - PRIMITIVES: a primitive type written as an object (`{"type": "long", "logicalType": ...}`)
//!   becomes its name (`"long"`);
//! - FULLNAMES: every named type (record, enum, fixed) is named by its full name, namespace
//!   included, and a named type already defined is referred to by that name alone;
//! - STRIP: only `type`, `name`, `fields`, `symbols`, `items`, `values` and `size` are kept
//!   (no `doc`, `aliases`, `default`, `namespace`, `logicalType`, `order`, ...);
//! - ORDER: attributes in the order `name`, `type`, `fields`, `symbols`, `items`, `values`,
//!   `size`;
//! - STRINGS, INTEGERS, WHITESPACE: strings as UTF-8 (only what JSON must escape is escaped),
//!   integers without quotes or leading zeros, no white space outside strings.
//!
//! apache-avro's own `canonical_form()` differs from this (it keeps attributes the
//! specification strips), so its fingerprints are not the ones other Avro implementations
//! compute; hostledger's fingerprints are computed over this form. A test compares it with
//! Avro for Java, the reference implementation.

use std::collections::HashSet;

use serde_json::{Map, Value};

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The Parsing Canonical Form of the schema `text` (the JSON of an `.avsc` file).
pub fn parsing_canonical_form(text: &str) -> Result<String, String> {
    let schema: Value =
        serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))?;
    let mut out = String::new();
    let mut defined = HashSet::new();
    write(&schema, "", &mut defined, &mut out)?;
    Ok(out)
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serializes")
}

/// The full name of `name` in `namespace`: a name with a dot is already full.
fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}.{name}")
    }
}

/// The namespace a full name gives the types defined inside it.
fn namespace_of(full: &str) -> &str {
    full.rsplit_once('.').map_or("", |(ns, _)| ns)
}

fn string_field<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    object
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("a schema object has no string {key:?}: {object:?}"))
}

fn write(
    schema: &Value,
    namespace: &str,
    defined: &mut HashSet<String>,
    out: &mut String,
) -> Result<(), String> {
    match schema {
        Value::String(name) if PRIMITIVES.contains(&name.as_str()) => out.push_str(&quoted(name)),
        Value::String(name) => out.push_str(&quoted(&full_name(name, namespace))),
        Value::Array(branches) => {
            out.push('[');
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(branch, namespace, defined, out)?;
            }
            out.push(']');
        }
        Value::Object(object) => write_object(object, namespace, defined, out)?,
        other => return Err(format!("{other} is not a schema")),
    }
    Ok(())
}

fn write_object(
    object: &Map<String, Value>,
    namespace: &str,
    defined: &mut HashSet<String>,
    out: &mut String,
) -> Result<(), String> {
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        // `{"type": {...}}` or `{"type": [...]}`: the schema is the inner one.
        Some(inner) => return write(inner, namespace, defined, out),
        None => return Err(format!("a schema object has no \"type\": {object:?}")),
    };
    match kind {
        "record" | "error" | "enum" | "fixed" => {
            let explicit = object.get("namespace").and_then(Value::as_str);
            let name = string_field(object, "name")?;
            let full = full_name(name, explicit.unwrap_or(namespace));
            if !defined.insert(full.clone()) {
                out.push_str(&quoted(&full));
                return Ok(());
            }
            out.push_str(&format!(
                "{{\"name\":{},\"type\":{}",
                quoted(&full),
                quoted(kind)
            ));
            match kind {
                "enum" => {
                    let symbols = object
                        .get("symbols")
                        .and_then(Value::as_array)
                        .ok_or_else(|| format!("enum {full} has no symbols"))?;
                    let symbols: Vec<String> = symbols
                        .iter()
                        .map(|s| {
                            s.as_str()
                                .map(quoted)
                                .ok_or("an enum symbol is not a string")
                        })
                        .collect::<Result<_, _>>()?;
                    out.push_str(&format!(",\"symbols\":[{}]", symbols.join(",")));
                }
                "fixed" => {
                    let size = object
                        .get("size")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| format!("fixed {full} has no size"))?;
                    out.push_str(&format!(",\"size\":{size}"));
                }
                _ => {
                    let fields = object
                        .get("fields")
                        .and_then(Value::as_array)
                        .ok_or_else(|| format!("record {full} has no fields"))?;
                    out.push_str(",\"fields\":[");
                    for (i, field) in fields.iter().enumerate() {
                        let field = field
                            .as_object()
                            .ok_or_else(|| format!("a field of {full} is not an object"))?;
                        if i > 0 {
                            out.push(',');
                        }
                        let name = string_field(field, "name")?;
                        out.push_str(&format!("{{\"name\":{},\"type\":", quoted(name)));
                        let ty = field
                            .get("type")
                            .ok_or_else(|| format!("field {full}.{name} has no type"))?;
                        write(ty, namespace_of(&full), defined, out)?;
                        out.push('}');
                    }
                    out.push(']');
                }
            }
            out.push('}');
        }
        "array" => {
            let items = object.get("items").ok_or("an array has no items")?;
            out.push_str("{\"type\":\"array\",\"items\":");
            write(items, namespace, defined, out)?;
            out.push('}');
        }
        "map" => {
            let values = object.get("values").ok_or("a map has no values")?;
            out.push_str("{\"type\":\"map\",\"values\":");
            write(values, namespace, defined, out)?;
            out.push('}');
        }
        primitive if PRIMITIVES.contains(&primitive) => out.push_str(&quoted(primitive)),
        // A reference to a named type written as an object.
        name => out.push_str(&quoted(&full_name(name, namespace))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcf(text: &str) -> String {
        parsing_canonical_form(text).expect("a schema")
    }

    /// Given a schema, then its canonical form: one row per transformation rule.
    #[test]
    fn each_rule_of_the_specification() {
        let cases = [
            // PRIMITIVES, STRIP (logicalType)
            (
                r#"{"type": "long", "logicalType": "timestamp-micros"}"#,
                r#""long""#,
            ),
            (r#""string""#, r#""string""#),
            // FULLNAMES, STRIP (doc, default, namespace), ORDER, WHITESPACE
            (
                r#"{"type": "enum", "doc": "d", "namespace": "a.b", "name": "E", "symbols": ["X", "Y"], "default": "X"}"#,
                r#"{"name":"a.b.E","type":"enum","symbols":["X","Y"]}"#,
            ),
            // a dotted name is already full; INTEGERS
            (
                r#"{"size": 16, "name": "c.d.F", "type": "fixed", "namespace": "ignored"}"#,
                r#"{"name":"c.d.F","type":"fixed","size":16}"#,
            ),
            // nested types take the enclosing namespace; a second use is by name alone
            (
                r#"{"type": "record", "name": "R", "namespace": "n", "fields": [
                    {"name": "a", "type": {"type": "enum", "name": "E", "symbols": ["Z"]}, "doc": "x"},
                    {"name": "b", "type": ["null", "E"], "default": null},
                    {"name": "c", "type": {"type": "array", "items": {"type": "map", "values": "E"}}, "default": []}
                ]}"#,
                r#"{"name":"n.R","type":"record","fields":[{"name":"a","type":{"name":"n.E","type":"enum","symbols":["Z"]}},{"name":"b","type":["null","n.E"]},{"name":"c","type":{"type":"array","items":{"type":"map","values":"n.E"}}}]}"#,
            ),
            // STRINGS: UTF-8, not escapes
            (
                r#"{"type": "enum", "name": "E", "symbols": ["\u00e9t\u00e9"]}"#,
                r#"{"name":"E","type":"enum","symbols":["été"]}"#,
            ),
        ];
        for (schema, want) in cases {
            assert_eq!(pcf(schema), want, "{schema}");
        }
    }

    #[test]
    fn what_is_not_a_schema_is_an_error() {
        assert!(
            parsing_canonical_form("{")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            parsing_canonical_form("{}")
                .unwrap_err()
                .contains("no \"type\"")
        );
        assert!(
            parsing_canonical_form(r#"{"type": "enum", "name": "E"}"#)
                .unwrap_err()
                .contains("no symbols")
        );
    }
}
