//! Typed decoding of a [`Node`] into any params or config struct, reporting every problem with
//! its position.
//!
//! [`decode`] works in two tiers:
//! 1. It walks the node alongside the type's JSON schema (from `schemars`) and reports every
//!    unknown key (with the closest valid name, or the list of valid ones), every number outside
//!    the schema's `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum` (or outside the
//!    range of its integer `format`, such as `uint8`), and every value not in an `enum`.
//! 2. Only when that found nothing, it deserializes the type with serde and maps serde's error
//!    (wrong type, missing field) back to the offending node.
//!
//! So a schema derived with `#[serde(deny_unknown_fields)]` and `#[schemars(range(min = 1,
//! max = 32))]` is all a stage needs for good messages. Whether `null` is allowed, and anything
//! the schema cannot say, is left to serde.

use super::diag::{closest, did_you_mean, list_names, Diagnostic};
use super::yaml::{path_to_string, Node, PathSeg, Value};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value as Json};
use std::cmp::Ordering;

/// `T`'s JSON schema (draft 2020-12), nested types under `$defs`.
pub fn schema_of<T: JsonSchema>() -> Json {
    schemars::schema_for!(T).to_value()
}

/// Decodes `node` as a `T`, or returns every problem found, each at its key or value.
pub fn decode<T: DeserializeOwned + JsonSchema>(node: &Node) -> Result<T, Vec<Diagnostic>> {
    decode_at(node, &[])
}

/// [`decode`] for a node that sits at `path` in its file: messages name values by their full
/// path (`` `queue.capacity` = 0 is out of range ``).
pub fn decode_at<T: DeserializeOwned + JsonSchema>(
    node: &Node,
    path: &[PathSeg],
) -> Result<T, Vec<Diagnostic>> {
    let schema = schema_of::<T>();
    let mut checker = Checker { root: &schema, diags: Vec::new() };
    checker.check(node, &schema, &mut path.to_vec());
    if !checker.diags.is_empty() {
        return Err(checker.diags);
    }
    deserialize(node, path).map_err(|d| vec![d])
}

/// Deserializes with serde; an error is placed at the deepest node on serde's path.
fn deserialize<T: DeserializeOwned>(node: &Node, prefix: &[PathSeg]) -> Result<T, Diagnostic> {
    serde_path_to_error::deserialize(node.to_json()).map_err(|e| {
        let mut path = Vec::new();
        for seg in e.path() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => path.push(PathSeg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => path.push(PathSeg::Key(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => path.push(PathSeg::Key(variant.clone())),
                serde_path_to_error::Segment::Unknown => break,
            }
        }
        let span =
            (0..=path.len()).rev().find_map(|len| node.at_path(&path[..len])).map_or(node.span, |n| n.span);
        let label = path_to_string(&[prefix, &path[..]].concat());
        let inner = e.inner();
        if label.is_empty() {
            Diagnostic::at(span, inner.to_string())
        } else {
            Diagnostic::at(span, format!("`{label}`: {inner}"))
        }
    })
}

/// How many `$ref`s to follow in a row before giving up (a schema refers to itself only
/// through properties, so this is never reached by a derived schema).
const MAX_REF_CHAIN: usize = 16;

struct Checker<'s> {
    root: &'s Json,
    diags: Vec<Diagnostic>,
}

/// A schema with its `$ref` chain followed: the schema's own keywords, then its target's.
struct Layers<'s>(Vec<&'s Map<String, Json>>);

impl<'s> Layers<'s> {
    fn get(&self, keyword: &str) -> Option<&'s Json> {
        self.0.iter().find_map(|l| l.get(keyword))
    }

    fn alternatives(&self) -> Option<&'s Vec<Json>> {
        self.get("anyOf").or_else(|| self.get("oneOf")).and_then(Json::as_array)
    }
}

impl<'s> Checker<'s> {
    fn layers(&self, schema: &'s Json) -> Layers<'s> {
        let mut layers = Vec::new();
        let mut next = Some(schema);
        while let Some(map) = next.and_then(Json::as_object) {
            if layers.len() == MAX_REF_CHAIN {
                break;
            }
            layers.push(map);
            next = map
                .get("$ref")
                .and_then(Json::as_str)
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|pointer| self.root.pointer(pointer));
        }
        Layers(layers)
    }

    fn is_null_schema(&self, schema: &'s Json) -> bool {
        let layers = self.layers(schema);
        layers.get("type").and_then(Json::as_str) == Some("null") || layers.get("const") == Some(&Json::Null)
    }

    /// The values an `enum`/`const` schema allows (null aside), also through `anyOf`/`oneOf`
    /// whose every alternative is one (an `Option` of a unit enum, documented variants).
    fn allowed_values(&self, layers: &Layers<'s>) -> Option<Vec<&'s Json>> {
        if let Some(values) = layers.get("enum").and_then(Json::as_array) {
            let values: Vec<_> = values.iter().filter(|v| !v.is_null()).collect();
            return (!values.is_empty()).then_some(values);
        }
        if let Some(value) = layers.get("const") {
            return Some(vec![value]);
        }
        let mut union = Vec::new();
        for alt in layers.alternatives()?.iter().filter(|a| !self.is_null_schema(a)) {
            union.extend(self.allowed_values(&self.layers(alt))?);
        }
        (!union.is_empty()).then_some(union)
    }

    fn check(&mut self, node: &Node, schema: &'s Json, path: &mut Vec<PathSeg>) {
        let layers = self.layers(schema);
        if layers.0.is_empty() || node.is_null() {
            return;
        }
        if let Some(allowed) = self.allowed_values(&layers) {
            self.check_allowed(node, &allowed, path);
            return;
        }
        if let Some(alternatives) = layers.alternatives() {
            // `Option<Struct>` is `anyOf: [Struct, null]`: check against the one that is not
            // null. With several candidates, which one was meant is serde's call.
            let mut non_null = alternatives.iter().filter(|a| !self.is_null_schema(a));
            if let (Some(only), None) = (non_null.next(), non_null.next()) {
                self.check(node, only, path);
            }
            return;
        }
        if expects_object(&layers) && !matches!(node.value, Value::Map(_)) {
            // Checked here because serde would also take a list for a struct, field by field.
            let label = path_to_string(path);
            let message = format!("expected a map, found {}", node.type_name());
            self.diags.push(Diagnostic::at(
                node.span,
                if label.is_empty() { message } else { format!("`{label}`: {message}") },
            ));
            return;
        }
        match &node.value {
            Value::Map(entries) => self.check_map(entries, &layers, path),
            Value::Seq(items) => {
                if let Some(item_schema) = layers.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        path.push(PathSeg::Index(i));
                        self.check(item, item_schema, path);
                        path.pop();
                    }
                }
            }
            Value::Int(_) | Value::Float(_) => self.check_range(node, &layers, path),
            Value::Null | Value::Bool(_) | Value::Str(_) => {}
        }
    }

    fn check_map(&mut self, entries: &[(Node, Node)], layers: &Layers<'s>, path: &mut Vec<PathSeg>) {
        let properties = layers.get("properties").and_then(Json::as_object);
        let additional = layers.get("additionalProperties");
        for (key, value) in entries {
            let name = key.as_str().unwrap_or_default();
            let schema = match properties.and_then(|p| p.get(name)) {
                Some(schema) => schema,
                None => match additional {
                    Some(Json::Bool(false)) => {
                        let valid = properties.into_iter().flat_map(|p| p.keys().map(String::as_str));
                        self.diags.push(Diagnostic::at(key.span, unknown_key_message(name, valid)));
                        continue;
                    }
                    Some(schema @ Json::Object(_)) => schema,
                    _ => continue,
                },
            };
            path.push(PathSeg::Key(name.to_string()));
            self.check(value, schema, path);
            path.pop();
        }
    }

    fn check_allowed(&mut self, node: &Node, allowed: &[&Json], path: &[PathSeg]) {
        let value = node.to_json();
        if allowed.contains(&&value) {
            return;
        }
        // The schema does not keep the declaration order (documented variants come apart from
        // the others), so the list is sorted.
        let mut names: Vec<String> =
            allowed.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect();
        names.sort();
        names.dedup();
        let suggestion = match node.as_str() {
            Some(s) => did_you_mean(s, names.iter().map(String::as_str)),
            None => String::new(),
        };
        self.diags.push(Diagnostic::at(
            node.span,
            format!(
                "{} is not one of {}{suggestion}",
                labelled(path, &value.to_string()),
                list_names(names.iter().map(String::as_str))
            ),
        ));
    }

    fn check_range(&mut self, node: &Node, layers: &Layers<'s>, path: &[PathSeg]) {
        let number = |k: &str| layers.get(k).and_then(Json::as_number);
        let implied = layers.get("format").and_then(Json::as_str).and_then(format_range);
        let lower = match (number("minimum"), number("exclusiveMinimum")) {
            (_, Some(b)) => Some(Bound { value: b.clone(), exclusive: true }),
            (Some(b), None) => Some(Bound { value: b.clone(), exclusive: false }),
            (None, None) => implied.map(|(lo, _)| Bound { value: lo.into(), exclusive: false }),
        };
        let upper = match (number("maximum"), number("exclusiveMaximum")) {
            (_, Some(b)) => Some(Bound { value: b.clone(), exclusive: true }),
            (Some(b), None) => Some(Bound { value: b.clone(), exclusive: false }),
            (None, None) => implied.map(|(_, hi)| Bound { value: hi.into(), exclusive: false }),
        };
        let too_low = lower.as_ref().is_some_and(|b| match compare(&node.value, &b.value) {
            Some(Ordering::Less) => true,
            Some(Ordering::Equal) => b.exclusive,
            _ => false,
        });
        let too_high = upper.as_ref().is_some_and(|b| match compare(&node.value, &b.value) {
            Some(Ordering::Greater) => true,
            Some(Ordering::Equal) => b.exclusive,
            _ => false,
        });
        if too_low || too_high {
            let value = match node.value {
                Value::Float(f) => format!("{f:?}"),
                _ => node.to_json().to_string(),
            };
            self.diags.push(Diagnostic::at(
                node.span,
                format!(
                    "{} is out of range ({})",
                    labelled(path, &value),
                    describe_range(lower.as_ref(), upper.as_ref())
                ),
            ));
        }
    }
}

/// Whether the schema's `type` is `object` (possibly among others, such as `null`).
fn expects_object(layers: &Layers<'_>) -> bool {
    match layers.get("type") {
        Some(Json::String(t)) => t == "object",
        Some(Json::Array(types)) => types.iter().any(|t| t == "object"),
        _ => false,
    }
}

/// ``unknown parameter `hzz`; did you mean `hz`?`` or ``unknown parameter `foo` (valid: `hz`)``.
fn unknown_key_message<'a>(name: &str, valid: impl Iterator<Item = &'a str> + Clone) -> String {
    if let Some(near) = closest(name, valid.clone()) {
        return format!("unknown parameter `{name}`; did you mean `{near}`?");
    }
    let list = list_names(valid);
    if list.is_empty() {
        format!("unknown parameter `{name}` (this takes no parameters)")
    } else {
        format!("unknown parameter `{name}` (valid: {list})")
    }
}

/// `` `path` = value `` or just the value at the top.
fn labelled(path: &[PathSeg], value: &str) -> String {
    match path_to_string(path) {
        label if label.is_empty() => value.to_string(),
        label => format!("`{label}` = {value}"),
    }
}

struct Bound {
    value: Number,
    exclusive: bool,
}

/// `1 to 32`, `at least 1`, `greater than 0 and at most 10`.
fn describe_range(lower: Option<&Bound>, upper: Option<&Bound>) -> String {
    match (lower, upper) {
        (Some(lo), Some(hi)) if !lo.exclusive && !hi.exclusive => format!("{} to {}", lo.value, hi.value),
        _ => {
            let lo = lower
                .map(|b| format!("{} {}", if b.exclusive { "greater than" } else { "at least" }, b.value));
            let hi =
                upper.map(|b| format!("{} {}", if b.exclusive { "less than" } else { "at most" }, b.value));
            lo.into_iter().chain(hi).collect::<Vec<_>>().join(" and ")
        }
    }
}

/// The range of a fixed-width integer `format` that schemars emits without explicit bounds.
fn format_range(format: &str) -> Option<(i64, i64)> {
    Some(match format {
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "uint8" => (0, u8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        "uint16" => (0, u16::MAX.into()),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "uint32" => (0, u32::MAX.into()),
        _ => return None,
    })
}

fn compare(value: &Value, bound: &Number) -> Option<Ordering> {
    match (value, bound.as_i64()) {
        (Value::Int(v), Some(b)) => Some(v.cmp(&b)),
        (Value::Int(v), None) => (*v as f64).partial_cmp(&bound.as_f64()?),
        (Value::Float(v), _) => v.partial_cmp(&bound.as_f64()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::diag::Span;
    use crate::topology::yaml::parse;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    enum Signal {
        #[default]
        Eeg,
        /// A documented variant: schemars then emits `oneOf` with `const`s.
        Sine,
        Test,
    }

    #[derive(Debug, PartialEq, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Filter {
        hz: f64,
        #[serde(default = "four")]
        #[schemars(range(min = 1, max = 8))]
        order: u8,
    }

    fn four() -> u8 {
        4
    }

    #[derive(Debug, PartialEq, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Emulator {
        #[schemars(range(min = 1, max = 32))]
        channels: u16,
        #[serde(default)]
        signal: Signal,
        shadow: Option<Signal>,
        gain: Option<u8>,
        #[schemars(extend("exclusiveMinimum" = 0))]
        amplitude_uv: Option<f64>,
        filter: Option<Filter>,
        #[serde(default)]
        taps: Vec<Filter>,
        #[serde(default)]
        groups: BTreeMap<String, Filter>,
    }

    #[derive(Debug, PartialEq, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Empty {}

    #[derive(Debug, PartialEq, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Chain {
        #[schemars(range(max = 9))]
        n: u8,
        next: Option<Box<Chain>>,
    }

    fn node(src: &str) -> Node {
        parse(src).unwrap()
    }

    fn errors<T: DeserializeOwned + JsonSchema + std::fmt::Debug>(src: &str) -> Vec<(Span, String)> {
        let d = decode::<T>(&node(src)).unwrap_err();
        d.into_iter().map(|d| (d.span.unwrap(), d.message)).collect()
    }

    fn at(line: usize, col: usize) -> Span {
        Span::new(line, col)
    }

    #[test]
    fn decodes_valid_params_and_fills_defaults() {
        let e: Emulator = decode(&node(
            "channels: 8\nshadow: sine\nfilter: { hz: 50 }\ngroups: { a: { hz: 1, order: 2 } }",
        ))
        .unwrap();
        assert_eq!(e.channels, 8);
        assert_eq!(e.signal, Signal::Eeg);
        assert_eq!(e.shadow, Some(Signal::Sine));
        assert_eq!(e.gain, None);
        assert_eq!(e.filter, Some(Filter { hz: 50.0, order: 4 }));
        assert!(e.taps.is_empty());
        assert_eq!(e.groups["a"], Filter { hz: 1.0, order: 2 });
    }

    #[test]
    fn accepts_integers_for_floats_and_null_for_options() {
        let f: Filter = decode(&node("hz: 50")).unwrap();
        assert_eq!(f.hz, 50.0);
        let e: Emulator = decode(&node("channels: 1\ngain: ~\nfilter: null")).unwrap();
        assert_eq!((e.gain, e.filter), (None, None));
    }

    #[test]
    fn rejects_unknown_parameter_with_suggestion() {
        assert_eq!(
            errors::<Filter>("hzz: 50"),
            [(at(1, 1), "unknown parameter `hzz`; did you mean `hz`?".to_string())]
        );
    }

    #[test]
    fn lists_valid_parameters_when_nothing_is_close() {
        assert_eq!(
            errors::<Filter>("hz: 1\nfoo: 2"),
            [(at(2, 1), "unknown parameter `foo` (valid: `hz`, `order`)".to_string())]
        );
    }

    #[test]
    fn says_when_a_type_takes_no_parameters() {
        assert_eq!(
            errors::<Empty>("{ x: 1 }"),
            [(at(1, 3), "unknown parameter `x` (this takes no parameters)".to_string())]
        );
        assert_eq!(decode::<Empty>(&node("{}")).unwrap(), Empty {});
    }

    #[test]
    fn rejects_out_of_range_value_at_the_value() {
        assert_eq!(
            errors::<Emulator>("channels: 64"),
            [(at(1, 11), "`channels` = 64 is out of range (1 to 32)".to_string())]
        );
        assert_eq!(
            errors::<Emulator>("channels: 0"),
            [(at(1, 11), "`channels` = 0 is out of range (1 to 32)".to_string())]
        );
        assert!(decode::<Emulator>(&node("channels: 32")).is_ok());
    }

    #[test]
    fn checks_exclusive_bounds() {
        assert_eq!(
            errors::<Emulator>("channels: 1\namplitude_uv: 0"),
            [(at(2, 15), "`amplitude_uv` = 0 is out of range (greater than 0)".to_string())]
        );
        assert_eq!(
            errors::<Emulator>("channels: 1\namplitude_uv: -0.5"),
            [(at(2, 15), "`amplitude_uv` = -0.5 is out of range (greater than 0)".to_string())]
        );
        assert!(decode::<Emulator>(&node("channels: 1\namplitude_uv: 0.1")).is_ok());
    }

    #[test]
    fn checks_the_range_of_the_integer_format() {
        assert_eq!(
            errors::<Emulator>("channels: 1\ngain: 300"),
            [(at(2, 7), "`gain` = 300 is out of range (0 to 255)".to_string())]
        );
        assert_eq!(
            errors::<Emulator>("channels: 1\ngain: -1"),
            [(at(2, 7), "`gain` = -1 is out of range (0 to 255)".to_string())]
        );
    }

    #[test]
    fn describes_one_sided_ranges() {
        assert_eq!(errors::<Chain>("n: 10"), [(at(1, 4), "`n` = 10 is out of range (0 to 9)".to_string())]);
        let b = |v: i64, exclusive| Bound { value: v.into(), exclusive };
        assert_eq!(describe_range(Some(&b(1, false)), None), "at least 1");
        assert_eq!(describe_range(None, Some(&b(5, true))), "less than 5");
        assert_eq!(describe_range(Some(&b(0, true)), Some(&b(5, false))), "greater than 0 and at most 5");
    }

    #[test]
    fn rejects_enum_value_with_suggestion() {
        assert_eq!(
            errors::<Emulator>("channels: 1\nsignal: sinus"),
            [(
                at(2, 9),
                "`signal` = \"sinus\" is not one of `eeg`, `sine`, `test`; did you mean `sine`?".to_string()
            )]
        );
    }

    #[test]
    fn rejects_enum_value_inside_option_and_of_other_type() {
        assert_eq!(
            errors::<Emulator>("channels: 1\nshadow: noise"),
            [(at(2, 9), "`shadow` = \"noise\" is not one of `eeg`, `sine`, `test`".to_string())]
        );
        assert_eq!(
            errors::<Emulator>("channels: 1\nsignal: 3"),
            [(at(2, 9), "`signal` = 3 is not one of `eeg`, `sine`, `test`".to_string())]
        );
    }

    #[test]
    fn checks_nested_structs_maps_and_lists() {
        let src = "\
channels: 1
filter: { hzz: 50 }
groups:
  a: { hz: 1, order: 9 }
taps:
  - { hz: 1 }
  - { hz: 2, ordr: 3 }
";
        assert_eq!(
            errors::<Emulator>(src),
            [
                (at(2, 11), "unknown parameter `hzz`; did you mean `hz`?".to_string()),
                (at(4, 22), "`groups.a.order` = 9 is out of range (1 to 8)".to_string()),
                (at(7, 14), "unknown parameter `ordr`; did you mean `order`?".to_string()),
            ]
        );
    }

    #[test]
    fn follows_recursive_schemas() {
        assert_eq!(
            errors::<Chain>("n: 1\nnext: { n: 2, next: { n: 99, nxt: ~ } }"),
            [
                (at(2, 26), "`next.next.n` = 99 is out of range (0 to 9)".to_string()),
                (at(2, 30), "unknown parameter `nxt`; did you mean `next`?".to_string()),
            ]
        );
    }

    #[test]
    fn reports_three_mistakes_at_once() {
        let src = "channels: 64\nsignal: sinus\nchanels: 8\n";
        assert_eq!(
            errors::<Emulator>(src),
            [
                (at(1, 11), "`channels` = 64 is out of range (1 to 32)".to_string()),
                (
                    at(2, 9),
                    "`signal` = \"sinus\" is not one of `eeg`, `sine`, `test`; did you mean `sine`?"
                        .to_string()
                ),
                (at(3, 1), "unknown parameter `chanels`; did you mean `channels`?".to_string()),
            ]
        );
    }

    #[test]
    fn reports_wrong_type_at_the_value_quoting_it() {
        assert_eq!(
            errors::<Filter>("hz: 50\norder: four"),
            [(at(2, 8), "`order`: invalid type: string \"four\", expected u8".to_string())]
        );
        assert_eq!(
            errors::<Emulator>("channels: 1\ntaps: [ { hz: x } ]"),
            [(at(2, 15), "`taps[0].hz`: invalid type: string \"x\", expected f64".to_string())]
        );
    }

    #[test]
    fn reports_missing_field_at_the_map() {
        assert_eq!(
            errors::<Emulator>("channels: 1\nfilter: { order: 2 }"),
            [(at(2, 9), "`filter`: missing field `hz`".to_string())]
        );
        assert_eq!(errors::<Filter>("{}"), [(at(1, 1), "missing field `hz`".to_string())]);
    }

    #[test]
    fn rejects_a_list_where_a_struct_is_expected() {
        // serde alone would decode `[1, 2]` as `Filter { hz: 1, order: 2 }`.
        assert_eq!(errors::<Filter>("[1, 2]"), [(at(1, 1), "expected a map, found a list".to_string())]);
        assert_eq!(
            errors::<Emulator>(
                "channels: 1
filter: 50
groups: [a]"
            ),
            [
                (at(2, 9), "`filter`: expected a map, found an integer".to_string()),
                (at(3, 9), "`groups`: expected a map, found a list".to_string()),
            ]
        );
    }

    #[test]
    fn serde_errors_wait_for_schema_errors() {
        // The wrong type of `order` is not reported while an unknown key is.
        assert_eq!(
            errors::<Filter>("hz: 1\norder: four\nextra: 1"),
            [(at(3, 1), "unknown parameter `extra` (valid: `hz`, `order`)".to_string())]
        );
    }

    #[test]
    fn names_values_by_their_path_in_the_file() {
        let n = node("order: 0\nhz: 1");
        let path = [PathSeg::Key("queue".into())];
        let d = decode_at::<Filter>(&n, &path).unwrap_err();
        assert_eq!(d[0].message, "`queue.order` = 0 is out of range (1 to 8)");
        let d = decode_at::<Filter>(&node("order: 2"), &path).unwrap_err();
        assert_eq!(d[0].message, "`queue`: missing field `hz`");
        let d = decode_at::<Signal>(&node("sin"), &[PathSeg::Key("signal".into())]).unwrap_err();
        assert_eq!(
            d[0].message,
            "`signal` = \"sin\" is not one of `eeg`, `sine`, `test`; did you mean `sine`?"
        );
    }

    #[test]
    fn decodes_a_bare_enum() {
        assert_eq!(decode::<Signal>(&node("test")).unwrap(), Signal::Test);
        let d = decode::<Signal>(&node("x")).unwrap_err();
        assert_eq!(d[0].message, "\"x\" is not one of `eeg`, `sine`, `test`");
    }

    #[test]
    fn schema_has_properties_ranges_and_defs() {
        let s = schema_of::<Emulator>();
        assert_eq!(s["additionalProperties"], Json::Bool(false));
        assert_eq!(s["properties"]["channels"]["maximum"], 32);
        assert!(s["$defs"]["Filter"].is_object());
    }
}
