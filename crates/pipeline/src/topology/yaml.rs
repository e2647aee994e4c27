//! A YAML tree that remembers where every node is, so later checks can point at the line and
//! column of a bad key or value.
//!
//! [`parse`] reads one YAML document (JSON text too: YAML is a superset) with saphyr's marked
//! loader and converts it into [`Node`]s: plain data plus a 1-based [`Span`]. Map keys are
//! always strings here (a pipeline file has no other kind; an odd key such as `1` or `[a, b]`
//! is turned into its text), and a map keeps every entry in file order, duplicates included,
//! so that [`duplicate_keys`] can report each of them with its position.
//!
//! Tags (`!foo`) are ignored and anchors/aliases are expanded by the loader.

use super::diag::{Diagnostic, Span};
use saphyr::{LoadableYamlNode, MarkedYamlOwned, Marker, ScalarOwned, ScanError, YamlDataOwned};
use std::collections::HashMap;
use std::fmt::Write as _;

/// A YAML value and where it starts in the file.
///
/// For a map entry, the key node's span is the key's first character and the value node's span
/// the value's first character (`{` of a flow map, the first key of a block map, the first
/// content line of a block scalar, the end of the line for an empty value).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; keys are always [`Value::Str`]; may hold duplicate keys.
    Map(Vec<(Node, Node)>),
}

/// One step down a tree: a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// `a.b[2].c`, the way messages name a nested value.
pub fn path_to_string(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) if out.is_empty() => out.push_str(k),
            PathSeg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            PathSeg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

impl Node {
    pub fn new(span: Span, value: Value) -> Self {
        Self { span, value }
    }

    /// A tree from JSON, every span [`Span::default`] (no position). For values that did not
    /// come from a file, such as a live reconfiguration.
    pub fn from_json(json: &serde_json::Value) -> Self {
        let value = match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(items) => Value::Seq(items.iter().map(Self::from_json).collect()),
            serde_json::Value::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| (Self::new(Span::default(), Value::Str(k.clone())), Self::from_json(v)))
                    .collect(),
            ),
        };
        Self::new(Span::default(), value)
    }

    /// The same data as JSON, for serde. Infinities and NaN, which JSON cannot hold, become the
    /// strings `.inf`, `-.inf` and `.nan` so that a bad float is reported as what was written.
    /// With duplicate keys the last one wins.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => J::Number(n),
                None => J::String(yaml_float(*f)),
            },
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Self::to_json).collect()),
            Value::Map(entries) => {
                J::Object(entries.iter().map(|(k, v)| (key_text(k), v.to_json())).collect())
            }
        }
    }

    /// The value of the first entry named `key`, if this is a map that has one.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.value == Value::Null
    }

    /// What this is, for messages: "expected a map, found a string".
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    /// The node at `path` below this one.
    pub fn at_path(&self, path: &[PathSeg]) -> Option<&Node> {
        path.iter().try_fold(self, |node, seg| match seg {
            PathSeg::Key(k) => node.get(k),
            PathSeg::Index(i) => node.as_seq()?.get(*i),
        })
    }
}

/// The text of a map key (always a string once parsed; other values only in hand-built trees).
fn key_text(key: &Node) -> String {
    match &key.value {
        Value::Str(s) => s.clone(),
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => yaml_float(*f),
        Value::Seq(_) | Value::Map(_) => key.to_json().to_string(),
    }
}

fn yaml_float(f: f64) -> String {
    if f.is_nan() {
        ".nan".to_string()
    } else if f == f64::INFINITY {
        ".inf".to_string()
    } else if f == f64::NEG_INFINITY {
        "-.inf".to_string()
    } else {
        format!("{f:?}")
    }
}

/// The message saphyr gives a mapping with a repeated key; it stops loading there.
const DUPLICATE_KEY: &str = "duplicated key in mapping";

/// First of the private-use characters (U+E000..U+F8FF) that stand in for the first character
/// of a repeated key, one per repeat, so saphyr loads the rest of the file.
const STAND_IN_FIRST: u32 = 0xE000;
const STAND_INS: usize = 0x1900;

/// Parses one YAML document. An empty file is a null node at 1:1.
///
/// A syntax error is one [`Diagnostic`] at the position saphyr reports. Duplicate keys are
/// not an error here; they stay in the tree for [`duplicate_keys`].
pub fn parse(src: &str) -> Result<Node, Diagnostic> {
    // saphyr refuses a repeated key and keeps one value per key. To report every repeat and
    // still check the rest of the file, each repeated key it reports has its first character
    // swapped for a unique stand-in, the text is loaded again, and the character is put back in
    // the tree. Keys that do not start with a letter, digit or `_` (rare) cannot be renamed
    // this way and stay a syntax error.
    let mut renamed: HashMap<usize, char> = HashMap::new();
    let mut text: Option<Vec<char>> = None;
    loop {
        let loaded = match &text {
            None => MarkedYamlOwned::load_from_str(src),
            Some(chars) => MarkedYamlOwned::load_from_str(&chars.iter().collect::<String>()),
        };
        match loaded {
            Ok(docs) => return Converter { renamed: &renamed }.document(docs),
            Err(e) if e.info() == DUPLICATE_KEY => {
                let chars = text.get_or_insert_with(|| src.chars().collect());
                let key_at = e.marker().index();
                let Some(original) = rename_key(chars, key_at, renamed.len()) else {
                    return Err(Diagnostic::at(span_of(e.marker()), "duplicate key"));
                };
                renamed.insert(key_at, original);
            }
            Err(e) => return Err(syntax_error(&e)),
        }
    }
}

/// Swaps the first character of the key starting at `key_at` for the `n`th stand-in and
/// returns the original character, or `None` when the key cannot be renamed safely.
fn rename_key(chars: &mut [char], key_at: usize, n: usize) -> Option<char> {
    if n >= STAND_INS {
        return None;
    }
    let first = match chars.get(key_at)? {
        '"' | '\'' => key_at + 1,
        _ => key_at,
    };
    let original = *chars.get(first)?;
    if !(original.is_alphanumeric() || original == '_') {
        return None;
    }
    chars[first] = char::from_u32(STAND_IN_FIRST + u32::try_from(n).ok()?)?;
    Some(original)
}

fn syntax_error(e: &ScanError) -> Diagnostic {
    Diagnostic::at(span_of(e.marker()), format!("invalid YAML: {}", e.info()))
}

/// saphyr's lines are 1-based and its columns 0-based; ours are both 1-based.
fn span_of(m: &Marker) -> Span {
    Span::new(m.line().max(1), m.col() + 1)
}

struct Converter<'a> {
    /// Renamed duplicate keys: the char index where the key starts → its first character.
    renamed: &'a HashMap<usize, char>,
}

impl Converter<'_> {
    fn document(&self, docs: Vec<MarkedYamlOwned>) -> Result<Node, Diagnostic> {
        let mut docs = docs.into_iter();
        let Some(first) = docs.next() else {
            return Ok(Node::new(Span::new(1, 1), Value::Null));
        };
        if let Some(second) = docs.next() {
            return Err(Diagnostic::at(
                span_of(&second.span.start),
                format!("expected one YAML document, found {}; remove the `---` line", 2 + docs.len()),
            ));
        }
        self.node(&first, span_of(&first.span.start))
    }

    /// `span` is passed in because a tagged node's inner value has no position of its own.
    fn node(&self, m: &MarkedYamlOwned, span: Span) -> Result<Node, Diagnostic> {
        let value = match &m.data {
            YamlDataOwned::Value(scalar) => match scalar {
                ScalarOwned::Null => Value::Null,
                ScalarOwned::Boolean(b) => Value::Bool(*b),
                ScalarOwned::Integer(i) => Value::Int(*i),
                ScalarOwned::FloatingPoint(f) => Value::Float(f.into_inner()),
                ScalarOwned::String(s) => Value::Str(s.clone()),
            },
            YamlDataOwned::Representation(s, _, _) => Value::Str(s.clone()),
            YamlDataOwned::Sequence(items) => Value::Seq(
                items.iter().map(|i| self.node(i, span_of(&i.span.start))).collect::<Result<_, _>>()?,
            ),
            YamlDataOwned::Mapping(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((self.key(k)?, self.node(v, span_of(&v.span.start))?)))
                    .collect::<Result<_, Diagnostic>>()?,
            ),
            YamlDataOwned::Tagged(_, inner) => return self.node(inner, span),
            YamlDataOwned::Alias(_) => return Err(Diagnostic::at(span, "unresolved YAML alias")),
            YamlDataOwned::BadValue => {
                return Err(Diagnostic::at(span, "invalid YAML: the value does not match its tag"))
            }
        };
        Ok(Node::new(span, value))
    }

    /// A key as a string node, with a renamed duplicate's first character restored.
    fn key(&self, m: &MarkedYamlOwned) -> Result<Node, Diagnostic> {
        let node = self.node(m, span_of(&m.span.start))?;
        let mut text = key_text(&node);
        if let Some(&original) = self.renamed.get(&m.span.start.index()) {
            let rest: String = text.chars().skip(1).collect();
            text = format!("{original}{rest}");
        }
        Ok(Node::new(node.span, Value::Str(text)))
    }
}

/// Every repeated key in every map of the tree, at the repeat: "duplicate key `x`".
pub fn duplicate_keys(node: &Node) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    collect_duplicates(node, &mut out);
    out
}

fn collect_duplicates(node: &Node, out: &mut Vec<Diagnostic>) {
    match &node.value {
        Value::Seq(items) => items.iter().for_each(|i| collect_duplicates(i, out)),
        Value::Map(entries) => {
            let mut first: HashMap<String, Span> = HashMap::new();
            for (k, v) in entries {
                let name = key_text(k);
                match first.get(&name) {
                    Some(at) => out.push(Diagnostic::at(
                        k.span,
                        format!("duplicate key `{name}` (first at line {})", at.line),
                    )),
                    None => {
                        first.insert(name, k.span);
                    }
                }
                collect_duplicates(v, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(line: usize, col: usize) -> Span {
        Span::new(line, col)
    }

    fn key_span(node: &Node, key: &str) -> Span {
        let map = node.as_map().unwrap_or_else(|| panic!("not a map: {node:?}"));
        map.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(k, _)| k.span).unwrap()
    }

    const PIPELINE: &str = "\
stages:
  - emulator: { channels: 8, rate: 4000 }
  - to_voltage:
  - bandpass:
      low_hz: 1
      high_hz: 40
runtime: {}
";

    #[test]
    fn converts_scalars_lists_and_maps() {
        let n = parse("a: 1\nb: 2.5\nc: true\nd: ~\ne: text\nf: [1, x]\n").unwrap();
        assert_eq!(n.to_json(), json!({"a": 1, "b": 2.5, "c": true, "d": null, "e": "text", "f": [1, "x"]}));
    }

    #[test]
    fn spans_are_one_based() {
        let n = parse("a: 1\n").unwrap();
        assert_eq!(n.span, at(1, 1));
        assert_eq!(key_span(&n, "a"), at(1, 1));
        assert_eq!(n.get("a").unwrap().span, at(1, 4));
    }

    #[test]
    fn span_points_at_block_keys_and_values() {
        let n = parse(PIPELINE).unwrap();
        assert_eq!(key_span(&n, "stages"), at(1, 1));
        assert_eq!(key_span(&n, "runtime"), at(7, 1));
        assert_eq!(n.get("runtime").unwrap().span, at(7, 10));
        let bandpass = n.at_path(&[PathSeg::Key("stages".into()), PathSeg::Index(2)]).unwrap();
        assert_eq!(bandpass.span, at(4, 5), "a list item's map starts at its first key");
        let params = bandpass.get("bandpass").unwrap();
        assert_eq!(params.span, at(5, 7));
        assert_eq!(key_span(params, "high_hz"), at(6, 7));
        assert_eq!(params.get("high_hz").unwrap().span, at(6, 16));
    }

    #[test]
    fn span_points_at_flow_map_key() {
        let n = parse(PIPELINE).unwrap();
        let emulator = n
            .at_path(&[PathSeg::Key("stages".into()), PathSeg::Index(0), PathSeg::Key("emulator".into())])
            .unwrap();
        assert_eq!(emulator.span, at(2, 15), "a flow map starts at its brace");
        assert_eq!(key_span(emulator, "channels"), at(2, 17));
        assert_eq!(key_span(emulator, "rate"), at(2, 30));
        assert_eq!(emulator.get("rate").unwrap().span, at(2, 36));
    }

    #[test]
    fn empty_value_is_null() {
        let n = parse(PIPELINE).unwrap();
        let v =
            n.at_path(&[PathSeg::Key("stages".into()), PathSeg::Index(1), PathSeg::Key("to_voltage".into())]);
        assert!(v.unwrap().is_null());
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let n = parse("{ \"µV\": 1, b: 2 }").unwrap();
        assert_eq!(key_span(&n, "b"), at(1, 12));
    }

    #[test]
    fn parses_json_text() {
        let n =
            parse("{\"stages\": [{\"notch\": {\"hz\": 50}}],\n \"runtime\": {\"mlockall\": true}}").unwrap();
        assert_eq!(n.to_json(), json!({"stages": [{"notch": {"hz": 50}}], "runtime": {"mlockall": true}}));
        assert_eq!(key_span(&n, "runtime"), at(2, 2));
    }

    #[test]
    fn empty_document_is_null_at_start() {
        for src in ["", "# only a comment\n", "\n\n"] {
            let n = parse(src).unwrap();
            assert_eq!(n, Node::new(at(1, 1), Value::Null), "{src:?}");
        }
    }

    #[test]
    fn reports_syntax_error_with_position() {
        let e = parse("stages:\n  - notch: { hz: 50\n").unwrap_err();
        assert_eq!(e.span, Some(at(3, 1)));
        assert!(e.message.starts_with("invalid YAML: "), "{}", e.message);
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.span.is_some());
    }

    #[test]
    fn rejects_several_documents() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.span, Some(at(3, 1)));
        assert!(e.message.contains("found 2"), "{}", e.message);
    }

    #[test]
    fn keeps_duplicate_keys_in_order() {
        let n = parse("a: 1\nb: 2\na: 3\n").unwrap();
        let keys: Vec<_> =
            n.as_map().unwrap().iter().map(|(k, v)| (k.as_str().unwrap(), v.to_json())).collect();
        assert_eq!(keys, [("a", json!(1)), ("b", json!(2)), ("a", json!(3))]);
        assert_eq!(n.get("a").unwrap().to_json(), json!(1), "get returns the first");
    }

    #[test]
    fn reports_every_duplicate_key_at_the_repeat() {
        let src = "\
stages:
  - emulator: { rate: 1, rate: 2, \"rate\": 3 }
  - notch: { hz: 50 }
stages: []
runtime: { mlockall: true, 'mlockall': false }
";
        let n = parse(src).unwrap();
        let d = duplicate_keys(&n);
        let got: Vec<_> = d.iter().map(|d| (d.span.unwrap(), d.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (at(2, 26), "duplicate key `rate` (first at line 2)"),
                (at(2, 35), "duplicate key `rate` (first at line 2)"),
                (at(4, 1), "duplicate key `stages` (first at line 1)"),
                (at(5, 28), "duplicate key `mlockall` (first at line 5)"),
            ]
        );
    }

    #[test]
    fn finds_no_duplicates_in_distinct_maps() {
        let n = parse("a: { x: 1 }\nb: { x: 2 }\nc: [ { x: 1 }, { x: 2 } ]\n").unwrap();
        assert!(duplicate_keys(&n).is_empty());
    }

    #[test]
    fn odd_duplicate_key_is_a_syntax_error() {
        let e = parse("[a]: 1\n[a]: 2\n").unwrap_err();
        assert_eq!(e.span.map(|s| s.line), Some(2));
        assert_eq!(e.message, "duplicate key");
    }

    #[test]
    fn stringifies_non_string_keys() {
        let n = parse("1: a\ntrue: b\n~: c\n").unwrap();
        assert_eq!(n.to_json(), json!({"1": "a", "true": "b", "null": "c"}));
        assert_eq!(n.get("1").unwrap().as_str(), Some("a"));
    }

    #[test]
    fn ignores_tags_and_expands_aliases() {
        let n = parse("a: !custom 5\nb: !!str 7\nc: &x { q: 1 }\nd: *x\n").unwrap();
        assert_eq!(n.to_json(), json!({"a": 5, "b": "7", "c": {"q": 1}, "d": {"q": 1}}));
        assert_eq!(n.get("a").unwrap().span, at(1, 4));
    }

    #[test]
    fn unknown_alias_is_an_error() {
        assert!(parse("a: *nope\n").is_err());
    }

    #[test]
    fn non_finite_floats_become_yaml_strings_in_json() {
        let n = parse("a: .inf\nb: -.inf\nc: .nan\n").unwrap();
        assert_eq!(n.to_json(), json!({"a": ".inf", "b": "-.inf", "c": ".nan"}));
    }

    #[test]
    fn at_path_walks_keys_and_indices() {
        let n = parse(PIPELINE).unwrap();
        let path = [
            PathSeg::Key("stages".into()),
            PathSeg::Index(0),
            PathSeg::Key("emulator".into()),
            PathSeg::Key("channels".into()),
        ];
        assert_eq!(n.at_path(&path).unwrap().value, Value::Int(8));
        assert_eq!(n.at_path(&[]), Some(&n));
        assert!(n.at_path(&[PathSeg::Key("stages".into()), PathSeg::Index(9)]).is_none());
        assert!(n.at_path(&[PathSeg::Index(0)]).is_none());
    }

    #[test]
    fn names_types_for_messages() {
        let n = parse("[~, true, 1, 1.5, s, [], {}]").unwrap();
        let names: Vec<_> = n.as_seq().unwrap().iter().map(Node::type_name).collect();
        assert_eq!(names, ["null", "a boolean", "an integer", "a number", "a string", "a list", "a map"]);
    }

    #[test]
    fn json_round_trips_through_from_json() {
        let v = json!({"a": [1, 2.5, "x", null, true], "b": {"c": -3}});
        let n = Node::from_json(&v);
        assert_eq!(n.to_json(), v);
        assert_eq!(n.span, Span::default());
    }

    #[test]
    fn formats_paths() {
        let p = [PathSeg::Key("queue".into()), PathSeg::Key("capacity".into())];
        assert_eq!(path_to_string(&p), "queue.capacity");
        let p = [PathSeg::Key("v".into()), PathSeg::Index(2), PathSeg::Key("x".into())];
        assert_eq!(path_to_string(&p), "v[2].x");
        assert_eq!(path_to_string(&[PathSeg::Index(0)]), "[0]");
        assert_eq!(path_to_string(&[]), "");
    }
}
