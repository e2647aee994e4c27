//! A YAML tree that remembers where every node is, so later checks can point at the line and
//! column of a bad key or value.
//!
//! [`parse`] reads one YAML document (JSON text too: YAML is a superset) with saphyr's marked
//! loader and converts it into [`Node`]s: plain data plus a 1-based [`Span`]. Map keys are
//! always strings here (a pipeline file has no other kind; an odd key such as `1` or `[a, b]`
//! is turned into its text), and a map keeps every entry in file order, duplicates included,
//! so that [`duplicate_keys`] can report each of them with its position.
//!
//! Tags (`!foo`) are ignored and aliases are expanded, within the bounds of
//! [`limits`](super::limits).

use super::diag::{Diagnostic, Span};
use super::limits;
use saphyr::{Marker, Scalar, ScanError};
use saphyr_parser::{Event, Parser};
use std::borrow::Cow;
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

/// Parses one YAML document. An empty file is a null node at 1:1.
///
/// A syntax error is one [`Diagnostic`] at the position saphyr reports. Duplicate keys are
/// not an error here; they stay in the tree for [`duplicate_keys`].
///
/// The tree is built from saphyr's event stream in one pass, under the bounds of
/// [`limits`](super::limits): the text's size, the nesting depth, and the values and text the
/// document holds once aliases are expanded (an alias costs what its anchor holds). Exceeding
/// one stops the parse at once with an error at the node that went over, so a small file of
/// aliases cannot expand to gigabytes, nor deep nesting overflow the stack.
pub fn parse(src: &str) -> Result<Node, Diagnostic> {
    if src.len() > limits::MAX_FILE_BYTES {
        return Err(Diagnostic::at(
            Span::new(1, 1),
            format!(
                "the file is {} bytes; a pipeline file may have at most {}",
                src.len(),
                limits::bytes_text(limits::MAX_FILE_BYTES)
            ),
        ));
    }
    let mut parser = Parser::new_from_str(src);
    let mut builder = Builder::default();
    let mut documents = 0usize;
    let mut second_doc: Option<Span> = None;
    while let Some(next) = parser.next_event() {
        let (event, at) = next.map_err(|e| syntax_error(&e))?;
        let span = span_of(&at.start);
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents == 2 {
                    second_doc = Some(span);
                }
            }
            // A later document is only checked for syntax and counted.
            _ if documents > 1 => {}
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            event => builder.event(event, span)?,
        }
    }
    if let Some(span) = second_doc {
        return Err(Diagnostic::at(
            span,
            format!("expected one YAML document, found {documents}; remove the `---` line"),
        ));
    }
    Ok(builder.root.unwrap_or_else(|| Node::new(Span::new(1, 1), Value::Null)))
}

fn syntax_error(e: &ScanError) -> Diagnostic {
    Diagnostic::at(span_of(e.marker()), format!("invalid YAML: {}", e.info()))
}

/// saphyr's lines are 1-based and its columns 0-based; ours are both 1-based.
fn span_of(m: &Marker) -> Span {
    Span::new(m.line().max(1), m.col() + 1)
}

/// What a node holds: values (itself and everything under it) and bytes of scalar text.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    values: usize,
    text: usize,
}

/// A list or map being read, with the cost counters as they were when it opened (so its own
/// cost is known when it closes, for an anchor on it).
struct Open {
    node: Node,
    /// The key read, waiting for its value (maps only).
    key: Option<Node>,
    anchor: usize,
    cost_at_start: Cost,
}

/// Builds the tree from parser events (an explicit stack: no recursion).
#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    /// Anchor id → the anchored node and its cost.
    anchors: HashMap<usize, (Node, Cost)>,
    cost: Cost,
    root: Option<Node>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Diagnostic> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.spend(Cost { values: 1, text: text.len() }, span)?;
                let scalar = match tag.as_deref() {
                    Some(tag) if tag.is_yaml_core_schema() => {
                        Scalar::parse_from_cow_and_metadata(text, style, Some(&Cow::Borrowed(tag)))
                    }
                    // Other tags (`!foo`) are ignored.
                    _ => Scalar::parse_from_cow_and_metadata(text, style, None),
                };
                let value = match scalar {
                    Some(Scalar::Null) => Value::Null,
                    Some(Scalar::Boolean(b)) => Value::Bool(b),
                    Some(Scalar::Integer(i)) => Value::Int(i),
                    Some(Scalar::FloatingPoint(f)) => Value::Float(f.into_inner()),
                    Some(Scalar::String(s)) => Value::Str(s.into_owned()),
                    None => {
                        return Err(Diagnostic::at(span, "invalid YAML: the value does not match its tag"))
                    }
                };
                let node = Node::new(span, value);
                if anchor > 0 {
                    self.anchors
                        .insert(anchor, (node.clone(), Cost { values: 1, text: node_text_len(&node) }));
                }
                self.insert(node);
            }
            Event::SequenceStart(anchor, _) => self.open(Value::Seq(Vec::new()), anchor, span)?,
            Event::MappingStart(anchor, _) => self.open(Value::Map(Vec::new()), anchor, span)?,
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = self.stack.pop() else { return Ok(()) };
                if open.anchor > 0 {
                    let cost = Cost {
                        values: self.cost.values - open.cost_at_start.values,
                        text: self.cost.text - open.cost_at_start.text,
                    };
                    self.anchors.insert(open.anchor, (open.node.clone(), cost));
                }
                self.insert(open.node);
            }
            Event::Alias(id) => {
                let Some((node, cost)) = self.anchors.get(&id) else {
                    return Err(Diagnostic::at(span, "unresolved YAML alias"));
                };
                let (mut node, cost) = (node.clone(), *cost);
                self.spend(cost, span)?;
                node.span = span;
                self.insert(node);
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
        Ok(())
    }

    fn open(&mut self, value: Value, anchor: usize, span: Span) -> Result<(), Diagnostic> {
        if self.stack.len() >= limits::MAX_DEPTH {
            return Err(Diagnostic::at(
                span,
                format!("maps and lists nest deeper than {} levels", limits::MAX_DEPTH),
            ));
        }
        let cost_at_start = self.cost;
        self.spend(Cost { values: 1, text: 0 }, span)?;
        self.stack.push(Open { node: Node::new(span, value), key: None, anchor, cost_at_start });
        Ok(())
    }

    /// Counts `cost` against the limits; an error once either is exceeded.
    fn spend(&mut self, cost: Cost, span: Span) -> Result<(), Diagnostic> {
        self.cost.values = self.cost.values.saturating_add(cost.values);
        self.cost.text = self.cost.text.saturating_add(cost.text);
        if self.cost.values > limits::MAX_VALUES {
            return Err(Diagnostic::at(
                span,
                format!(
                    "the file holds more than {} values (aliases expanded); simplify it",
                    limits::MAX_VALUES
                ),
            ));
        }
        if self.cost.text > limits::MAX_TEXT_BYTES {
            return Err(Diagnostic::at(
                span,
                format!(
                    "the file holds more than {} of text (aliases expanded); simplify it",
                    limits::bytes_text(limits::MAX_TEXT_BYTES)
                ),
            ));
        }
        Ok(())
    }

    /// Puts a finished node where it belongs: an item of the open list, a key or value of the
    /// open map, or the root.
    fn insert(&mut self, node: Node) {
        let Some(open) = self.stack.last_mut() else {
            self.root = Some(node);
            return;
        };
        match &mut open.node.value {
            Value::Seq(items) => items.push(node),
            Value::Map(entries) => match open.key.take() {
                None => open.key = Some(Node::new(node.span, Value::Str(key_text(&node)))),
                Some(key) => entries.push((key, node)),
            },
            _ => {}
        }
    }
}

/// Bytes of text of a scalar node (0 for others).
fn node_text_len(node: &Node) -> usize {
    match &node.value {
        Value::Str(s) => s.len(),
        _ => 0,
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
        assert_eq!(e.span, Some(at(2, 1)), "at the `---` line");
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
    fn reports_odd_duplicate_keys_by_their_text() {
        let n = parse("[a]: 1\n[a]: 2\n").unwrap();
        let d = duplicate_keys(&n);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].span, Some(at(2, 1)));
        assert_eq!(d[0].message, "duplicate key `[\"a\"]` (first at line 1)");
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

    /// Ten levels of eight aliases each: under 1 KB that would expand to 10^9 values.
    fn alias_bomb(as_keys: bool) -> String {
        let mut src = String::from("a0: &a0 [x,x,x,x,x,x,x,x]\n");
        for level in 1..10 {
            let prev = level - 1;
            let items: Vec<String> = (0..8)
                .map(|k| if as_keys { format!("*a{prev} : {k}") } else { format!("*a{prev}") })
                .collect();
            let (open, close) = if as_keys { ('{', '}') } else { ('[', ']') };
            src.push_str(&format!("a{level}: &a{level} {open}{}{close}\n", items.join(",")));
        }
        src
    }

    #[test]
    fn refuses_aliases_that_expand_too_far() {
        for as_keys in [false, true] {
            let src = alias_bomb(as_keys);
            assert!(src.len() < 1000, "{}", src.len());
            let e = parse(&src).unwrap_err();
            assert!(e.message.contains("aliases expanded"), "{}", e.message);
            assert!(e.span.is_some_and(|s| s.line > 1), "{e:?}");
        }
    }

    #[test]
    fn counts_an_alias_of_a_long_string_by_its_text() {
        let long = "y".repeat(100_000);
        let src = format!("a: &s {long}\nb: [{}]\n", vec!["*s"; 50].join(", "));
        let e = parse(&src).unwrap_err();
        assert!(e.message.contains("of text"), "{}", e.message);
    }

    #[test]
    fn allows_modest_aliases() {
        let n = parse("a: &x { q: 1 }\nb: [*x, *x]\n").unwrap();
        assert_eq!(n.to_json(), json!({"a": {"q": 1}, "b": [{"q": 1}, {"q": 1}]}));
    }

    #[test]
    fn refuses_deep_nesting_at_the_level_that_goes_over() {
        for depth in [limits::MAX_DEPTH + 1, 10_000, 200_000] {
            let src = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let e = parse(&src).unwrap_err();
            // Our bound, or for flow lists saphyr's own scanner bound, which it meets first as
            // it scans ahead.
            assert!(e.span.is_some_and(|s| s.line == 1 && s.col <= 257), "{depth}: {e:?}");
            assert!(
                e.message.contains("nest deeper") || e.message.contains("recursion limit"),
                "{}",
                e.message
            );
        }
        let block: String = (0..1_000).map(|k| format!("{}a:\n", " ".repeat(k))).collect();
        let e = parse(&block).unwrap_err();
        assert!(e.message.contains("nest deeper"), "{e:?}");
        let ok = format!("{}{}", "[".repeat(limits::MAX_DEPTH), "]".repeat(limits::MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn refuses_a_file_over_the_size_limit() {
        let src = format!("a: \"{}\"\n", "z".repeat(limits::MAX_FILE_BYTES));
        let e = parse(&src).unwrap_err();
        assert_eq!(e.span, Some(at(1, 1)));
        assert!(e.message.contains("at most 1 MiB"), "{}", e.message);
    }

    #[test]
    fn reports_thousands_of_duplicate_keys_in_one_parse() {
        // Each repeat used to cost a full re-parse of the file (quadratic); now one pass.
        let src: String = (0..2000).map(|k| format!("key: {k}\n")).collect();
        let n = parse(&src).unwrap();
        let d = duplicate_keys(&n);
        assert_eq!(d.len(), 1999);
        assert_eq!(d[1998].span, Some(at(2000, 1)));
    }
}
