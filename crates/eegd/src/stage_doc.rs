//! `eegd stages --markdown`: the stage reference (docs/stages.md), generated from the registry —
//! each stage's doc comment, its parameters' JSON schemas (types, defaults, doc comments) and its
//! example. `tests/stage_reference.rs` fails when the committed file drifts from this output.
//! Regenerate with `cargo run -q -p eegd -- stages --markdown > docs/stages.md`.
use pipeline::stage::{defaults_of, registry, Registration, Role};
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// The command that rewrites docs/stages.md, quoted in the file and in the drift test's message.
pub const REGENERATE: &str = "cargo run -q -p eegd -- stages --markdown > docs/stages.md";

/// The whole reference, as Markdown.
pub fn markdown() -> String {
    let all = registry();
    let mut out = String::new();
    out.push_str("# Stage reference\n\n");
    out.push_str(
        "Every stage type built into eegd, with its parameters, their defaults and an example.\n\
         Generated from the code by `eegd stages --markdown`; do not edit by hand. After changing a\n\
         stage, regenerate it with:\n\n",
    );
    let _ = writeln!(out, "```sh\n{REGENERATE}\n```\n");
    out.push_str(
        "How a stage is written in a pipeline file (`name`, `inputs`, `group`, `on_error`, `queue`,\n\
         which every stage takes besides the parameters below) is in [pipeline.md](pipeline.md).\n\
         Packet kinds: `raw` (ADC counts), `voltage` (µV), `spectrum` (µV²/Hz per bin),\n\
         `band_power` (µV² per band).\n\n",
    );
    for (role, title) in [(Role::Source, "Sources"), (Role::Transform, "Transforms"), (Role::Sink, "Sinks")] {
        let of_role: Vec<_> = all.iter().filter(|r| r.role == role).collect();
        if of_role.is_empty() {
            continue;
        }
        let _ = writeln!(out, "## {title}\n");
        let links: Vec<String> = of_role.iter().map(|r| format!("[`{0}`](#{0})", r.name)).collect();
        let _ = writeln!(out, "{}\n", links.join(" · "));
        for r in of_role {
            stage(&mut out, r);
        }
    }
    out
}

fn stage(out: &mut String, r: &Registration) {
    let _ = writeln!(out, "### {}\n", r.name);
    let _ = writeln!(out, "{}\n", r.doc.trim());
    let accepts = if r.accepts.is_empty() {
        "—".to_string()
    } else {
        r.accepts.iter().map(|k| format!("`{}`", plain(&serde_json::json!(k)))).collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(
        out,
        "- Accepts: {accepts}\n- Default `on_error`: `{}`{}{}\n",
        plain(&serde_json::json!(r.on_error)),
        if r.blocking_io {
            "\n- Does blocking I/O: runs on a thread group of its own by default"
        } else {
            ""
        },
        if r.multi_input { "\n- Takes several inputs" } else { "" },
    );
    let schema = (r.schema)();
    let defs = schema.get("$defs").and_then(Value::as_object).cloned().unwrap_or_default();
    let defaults = defaults_of(r).unwrap_or(Value::Null);
    params(out, &schema, &defaults, &defs);
    // The named types the parameters use, each once.
    if !defs.is_empty() {
        let _ = writeln!(out, "Types used above:\n");
        for (name, def) in &defs {
            let desc = one_line(def.get("description").and_then(Value::as_str).unwrap_or(""));
            let _ = writeln!(out, "- `{name}`: {}{}", type_of(def, &defs, false), sep(&desc));
            if let Some(props) = def.get("properties").and_then(Value::as_object) {
                let req = required(def);
                for (p, s) in props {
                    let d = one_line(s.get("description").and_then(Value::as_str).unwrap_or(""));
                    let opt = if req.contains(&p.as_str()) { " (required)" } else { "" };
                    let _ = writeln!(out, "  - `{p}`{opt}: {}{}", type_of(s, &defs, true), sep(&d));
                }
            }
            for v in variants(def) {
                if let (Some(c), Some(d)) = (variant_value(v), v.get("description").and_then(Value::as_str)) {
                    let _ = writeln!(out, "  - `{c}`: {}", one_line(d));
                }
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "Example:\n\n```yaml\n{}\n```\n", r.example.trim_end());
}

fn params(out: &mut String, schema: &Value, defaults: &Value, defs: &Map<String, Value>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        out.push_str("No parameters.\n\n");
        return;
    };
    if props.is_empty() {
        out.push_str("No parameters.\n\n");
        return;
    }
    let req = required(schema);
    out.push_str("| parameter | type | default | description |\n| --- | --- | --- | --- |\n");
    for (name, p) in props {
        let default = if req.contains(&name.as_str()) {
            "required".to_string()
        } else {
            match defaults.get(name).or_else(|| p.get("default")) {
                Some(Value::Null) | None => "—".to_string(),
                Some(v) => format!("`{}`", cell(&v.to_string())),
            }
        };
        let desc = one_line(p.get("description").and_then(Value::as_str).unwrap_or(""));
        let _ =
            writeln!(out, "| `{name}` | {} | {default} | {} |", cell(&type_of(p, defs, true)), cell(&desc));
    }
    out.push('\n');
}

/// A short type: `integer (1–32)`, `hann \| hamming`, `list of string`, `DrdyLine`.
fn type_of(s: &Value, defs: &Map<String, Value>, inline_refs: bool) -> String {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        // A plain enumeration is clearer spelled out than by name.
        return match defs.get(name) {
            Some(def) if inline_refs && !variants(def).is_empty() && enum_values(def).is_some() => {
                enum_values(def).unwrap_or_default()
            }
            _ => format!("`{name}`"),
        };
    }
    if let Some(v) = enum_values(s) {
        return v;
    }
    if let Some(any) = s.get("anyOf").or_else(|| s.get("oneOf")).and_then(Value::as_array) {
        let parts: Vec<String> = any
            .iter()
            .filter(|v| v.get("type") != Some(&Value::from("null")))
            .map(|v| type_of(v, defs, inline_refs))
            .collect();
        return parts.join(" or ");
    }
    let types: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => vec![],
    };
    let mut parts = Vec::new();
    for t in types {
        let mut p = match t {
            "array" => match s.get("items") {
                Some(items) => format!("list of {}", type_of(items, defs, inline_refs)),
                None => "list".to_string(),
            },
            "object" => match s.get("additionalProperties") {
                Some(v @ Value::Object(_)) => format!("map of {}", type_of(v, defs, inline_refs)),
                _ => "object".to_string(),
            },
            other => other.to_string(),
        };
        let min = s.get("minimum").and_then(Value::as_f64).filter(|m| *m != 0.0);
        let max = s.get("maximum").and_then(Value::as_f64);
        match (min, max) {
            (Some(a), Some(b)) => p.push_str(&format!(" ({a}–{b})")),
            (Some(a), None) => p.push_str(&format!(" (≥ {a})")),
            (None, Some(b)) => p.push_str(&format!(" (≤ {b})")),
            _ => {}
        }
        parts.push(p);
    }
    if parts.is_empty() {
        "any".to_string()
    } else {
        parts.join(" or ")
    }
}

fn variants(s: &Value) -> &[Value] {
    s.get("oneOf").or_else(|| s.get("anyOf")).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn variant_value(v: &Value) -> Option<String> {
    v.get("const").map(plain)
}

/// `a \| b \| c` when the schema is an enumeration of constants, however schemars spelled it.
fn enum_values(s: &Value) -> Option<String> {
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return Some(e.iter().map(|v| format!("`{}`", plain(v))).collect::<Vec<_>>().join(" | "));
    }
    let vs = variants(s);
    if vs.is_empty() {
        return None;
    }
    let mut all = Vec::new();
    for v in vs {
        if let Some(c) = v.get("const") {
            all.push(format!("`{}`", plain(c)));
        } else if let Some(e) = v.get("enum").and_then(Value::as_array) {
            all.extend(e.iter().map(|x| format!("`{}`", plain(x))));
        } else {
            return None;
        }
    }
    Some(all.join(" | "))
}

fn required(s: &Value) -> Vec<&str> {
    s.get("required")
        .and_then(Value::as_array)
        .map_or(vec![], |r| r.iter().filter_map(Value::as_str).collect())
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn sep(desc: &str) -> String {
    if desc.is_empty() {
        String::new()
    } else {
        format!(" — {desc}")
    }
}

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}
