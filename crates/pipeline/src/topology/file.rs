//! The pipeline file model (docs/pipeline.md) and its structural checks.
//!
//! [`parse_file`] turns the text into a [`PipelineFile`]: the `stages` list as [`StageDecl`]s
//! (type, reserved keys, and the remaining parameters as a positioned [`Node`]), plus the
//! decoded `runtime:` and `recording:` sections. It reports every structural error at once and
//! knows nothing of the stage registry: stage types, their parameters, names, inputs, cycles
//! and packet kinds are checked by the graph builder (`graph.rs`).
//!
//! ```yaml
//! stages:
//!   - emulator: { channels: 8, rate: 4000 }
//!   - notch: { hz: 50, name: mains, group: dsp, on_error: fatal }
//!   - websocket_sink: { inputs: [mains], queue: { capacity: 16, overflow: drop_oldest } }
//! runtime: { mlockall: true, groups: { dsp: { cpu: 1, priority: 80 } } }
//! recording: { format: edf }
//! ```

use super::decode::decode_at;
use super::diag::{did_you_mean, list_names, Diagnostic, Span};
use super::limits;
use super::yaml::{self, Node, PathSeg, Value};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What happens when a stage fails on a packet (returns an error or panics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorPolicy {
    /// Stop the whole pipeline; its state becomes `failed`.
    Fatal,
    /// Stop this stage and what only it feeds; other branches go on.
    DrainThenStop,
    /// Drop that packet, count it, go on.
    SkipPacket,
}

/// What a full queue does with a new packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Wait for room: lossless back-pressure. The only policy allowed into a recording sink.
    #[default]
    Block,
    /// Drop the oldest queued packet (and count it): for live views and network outputs.
    DropOldest,
}

/// The queue on a stage's input edges that cross threads (`queue:` in a stage).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Packets the queue holds; default `runtime.queue_capacity`.
    #[schemars(range(min = 1, max = 65536))]
    pub capacity: Option<usize>,
    /// Default `block`.
    pub overflow: Option<Overflow>,
}

/// One thread group's placement (`runtime.groups.NAME`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Pin the group's thread to this CPU core.
    pub cpu: Option<usize>,
    /// `SCHED_FIFO` priority for the group's thread; default `runtime.realtime_priority`.
    #[schemars(range(min = 1, max = 99))]
    pub priority: Option<u8>,
}

/// Packets per cross-thread edge when neither the stage nor `runtime` says otherwise.
pub const DEFAULT_QUEUE_CAPACITY: usize = 64;

/// The `runtime:` section: threads, memory and queues. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Thread groups by name, for pinning and priorities.
    pub groups: BTreeMap<String, GroupConfig>,
    /// Packets per cross-thread edge unless a stage's `queue.capacity` says otherwise.
    #[schemars(range(min = 1, max = 65536))]
    pub queue_capacity: usize,
    /// Packets in the pool; by default the graph builder computes it from the graph.
    #[schemars(range(min = 1, max = super::limits::MAX_POOL_PACKETS))]
    pub pool_packets: Option<usize>,
    /// Lock the process's memory (`mlockall`) so the data path never page-faults.
    pub mlockall: bool,
    /// `SCHED_FIFO` priority for every group that does not set its own; default none.
    #[schemars(range(min = 1, max = 99))]
    pub realtime_priority: Option<u8>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            groups: BTreeMap::new(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            pool_packets: None,
            mlockall: false,
            realtime_priority: None,
        }
    }
}

/// The file format of recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingFormat {
    /// BioSemi Data Format, 24-bit.
    #[default]
    Bdf,
    /// European Data Format, 16-bit.
    Edf,
    Csv,
    /// A run of a BIDS-EEG dataset under `<data_dir>/bids/` (BDF data, BIDS sidecars).
    Bids,
}

/// The `recording:` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    /// The stage whose output a session records; default the `to_voltage` stage, else the
    /// first source.
    pub input: Option<String>,
    pub format: RecordingFormat,
    /// Where sessions are written; default chosen by the daemon.
    pub data_dir: Option<PathBuf>,
    /// The BIDS task label of recordings in format `bids` (default `rest`).
    pub task: Option<String>,
    /// Physical range ±`range_uv` of the session's BDF/EDF file, µV: values at or beyond it are
    /// written as its limit and counted (`samples_clipped`). Default: EDF ±3000 µV, BDF the
    /// ADC's full scale.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub range_uv: Option<f64>,
}

/// One item of `stages`, as written: not yet checked against the stage registry.
#[derive(Debug, Clone, PartialEq)]
pub struct StageDecl {
    /// The stage type: the item's single key.
    pub type_name: String,
    pub type_span: Span,
    /// `name:`, or the type name (then `name_span` is `type_span`).
    pub name: String,
    pub name_span: Span,
    /// `inputs:` (a single name counts as a list of one); `None` means the stage above, which
    /// the graph builder resolves.
    pub inputs: Option<Vec<(String, Span)>>,
    pub group: Option<String>,
    pub on_error: Option<ErrorPolicy>,
    pub queue: Option<QueueConfig>,
    /// The parameters: the item's value without the reserved keys, always a map (empty for
    /// `{}` or no value; then its span is the type's).
    pub params: Node,
    /// The list item.
    pub span: Span,
}

/// A pipeline file whose structure is usable.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineFile {
    pub stages: Vec<StageDecl>,
    pub runtime: RuntimeConfig,
    pub recording: RecordingConfig,
    /// The whole tree, for checks that need positions of other keys.
    pub root: Node,
}

/// Keys every stage may have besides its parameters.
pub const RESERVED_KEYS: [&str; 5] = ["name", "inputs", "group", "on_error", "queue"];

/// The keys a pipeline file may have at the top.
pub const TOP_LEVEL_KEYS: [&str; 3] = ["stages", "runtime", "recording"];

/// Parses a pipeline file and checks its structure, reporting every error found.
///
/// Returns the file whenever its structure is usable, even with diagnostics, so the graph
/// builder can add its own: that is, unless the YAML does not parse, the top is not a map,
/// `stages` is missing, not a list or empty, or an item of it is not a single-key map with a
/// map (or nothing) as its value. Errors in reserved keys leave that key unset, and errors in
/// `runtime:` or `recording:` leave that section at its defaults.
///
/// A reserved key with no value (`group:`) counts as not given.
pub fn parse_file(src: &str) -> (Option<PipelineFile>, Vec<Diagnostic>) {
    let root = match yaml::parse(src) {
        Ok(root) => root,
        Err(d) => return (None, vec![d]),
    };
    let mut diags = yaml::duplicate_keys(&root);
    let file = check_file(root, &mut diags);
    (file, diags)
}

fn check_file(root: Node, diags: &mut Vec<Diagnostic>) -> Option<PipelineFile> {
    let Some(entries) = root.as_map() else {
        let message = if root.is_null() {
            "the file is empty; a pipeline file needs a `stages` list".to_string()
        } else {
            format!("expected a map with a `stages` list, found {}", root.type_name())
        };
        diags.push(Diagnostic::at(root.span, message));
        return None;
    };
    for (key, _) in entries {
        let name = key.as_str().unwrap_or_default();
        if !TOP_LEVEL_KEYS.contains(&name) {
            diags.push(Diagnostic::at(key.span, unknown_top_level_message(name)));
        }
    }
    let stages = check_stages(&root, diags);
    let runtime = section::<RuntimeConfig>(&root, "runtime", diags);
    let recording = section::<RecordingConfig>(&root, "recording", diags);
    Some(PipelineFile { stages: stages?, runtime, recording, root })
}

fn unknown_top_level_message(name: &str) -> String {
    match did_you_mean(name, TOP_LEVEL_KEYS) {
        hint if hint.is_empty() => {
            format!("unknown top-level key `{name}` (valid: {})", list_names(TOP_LEVEL_KEYS))
        }
        hint => format!("unknown top-level key `{name}`{hint}"),
    }
}

/// `runtime:` or `recording:` decoded, or its defaults when absent, empty or wrong.
fn section<T: Default + DeserializeOwned + JsonSchema>(
    root: &Node,
    key: &str,
    diags: &mut Vec<Diagnostic>,
) -> T {
    match root.get(key) {
        Some(node) if !node.is_null() => {
            decode_at(node, &[PathSeg::Key(key.to_string())]).unwrap_or_else(|mut d| {
                diags.append(&mut d);
                T::default()
            })
        }
        _ => T::default(),
    }
}

fn check_stages(root: &Node, diags: &mut Vec<Diagnostic>) -> Option<Vec<StageDecl>> {
    let Some(node) = root.get("stages") else {
        diags.push(Diagnostic::at(root.span, "missing `stages`: the list of the pipeline's stages"));
        return None;
    };
    let items = match &node.value {
        Value::Seq(items) if !items.is_empty() => items,
        Value::Seq(_) | Value::Null => {
            diags.push(Diagnostic::at(node.span, "`stages` is empty; a pipeline needs at least one stage"));
            return None;
        }
        _ => {
            diags.push(Diagnostic::at(
                node.span,
                format!("`stages` must be a list of stages, found {}", node.type_name()),
            ));
            return None;
        }
    };
    if let Some(extra) = items.get(limits::MAX_STAGES) {
        diags.push(Diagnostic::at(
            extra.span,
            format!(
                "{} stages; a pipeline may have at most {} (this is the first one over)",
                items.len(),
                limits::MAX_STAGES
            ),
        ));
        return None;
    }
    // Every item is checked, even after a broken one, so all errors show at once.
    let decls: Vec<Option<StageDecl>> = items.iter().map(|item| check_stage(item, diags)).collect();
    decls.into_iter().collect()
}

const STAGE_SHAPE: &str = "a stage is a single-key map such as `- notch: { hz: 50 }`";

pub(crate) fn check_stage(item: &Node, diags: &mut Vec<Diagnostic>) -> Option<StageDecl> {
    let (type_key, value) = match item.as_map() {
        Some([(key, value)]) => (key, value),
        Some([]) => {
            diags.push(Diagnostic::at(item.span, format!("{STAGE_SHAPE}, found an empty map")));
            return None;
        }
        Some(entries @ [(first, first_value), (second, _), ..]) => {
            let keys = list_names(entries.iter().filter_map(|(k, _)| k.as_str()));
            let first = first.as_str().unwrap_or_default();
            let hint = if first_value.is_null() {
                format!("indent the parameters of `{first}` under it")
            } else {
                "give each stage its own `-` item".to_string()
            };
            diags.push(Diagnostic::at(
                second.span,
                format!("{STAGE_SHAPE}, found {} keys ({keys}); {hint}", entries.len()),
            ));
            return None;
        }
        None => {
            diags.push(Diagnostic::at(item.span, format!("{STAGE_SHAPE}, found {}", item.type_name())));
            return None;
        }
    };
    let type_name = type_key.as_str().unwrap_or_default().to_string();
    let entries: &[(Node, Node)] = match &value.value {
        Value::Map(entries) => entries,
        Value::Null => &[],
        _ => {
            diags.push(Diagnostic::at(
                value.span,
                format!("`{type_name}`: the parameters must be a map, found {}", value.type_name()),
            ));
            return None;
        }
    };
    // The first of a repeated key counts, as in `Node::get`; the repeat is reported already.
    let reserved =
        |key: &str| entries.iter().find(|(k, v)| k.as_str() == Some(key) && !v.is_null()).map(|(_, v)| v);

    let (name, name_span) = match reserved("name") {
        Some(node) => match node.as_str() {
            Some(name) => (name.to_string(), node.span),
            None => {
                diags.push(Diagnostic::at(
                    node.span,
                    format!("`{type_name}`: `name` must be a string, found {}", node.type_name()),
                ));
                (type_name.clone(), type_key.span)
            }
        },
        None => (type_name.clone(), type_key.span),
    };
    // From here on, messages name the stage as the rest of the checks do.
    let mut report = |d: Diagnostic| {
        diags.push(Diagnostic { message: format!("`{name}`: {}", d.message), ..d });
    };

    let inputs = reserved("inputs").and_then(|node| check_inputs(node, &mut report));
    let group = reserved("group").and_then(|node| match node.as_str() {
        Some(group) => Some(group.to_string()),
        None => {
            report(Diagnostic::at(
                node.span,
                format!("`group` must be a thread group name, found {}", node.type_name()),
            ));
            None
        }
    });
    let on_error = reserved("on_error").and_then(|node| decode_reserved(node, "on_error", &mut report));
    let queue = reserved("queue").and_then(|node| decode_reserved(node, "queue", &mut report));

    let params = entries
        .iter()
        .filter(|(k, _)| !k.as_str().is_some_and(|k| RESERVED_KEYS.contains(&k)))
        .cloned()
        .collect();
    let params_span = if value.is_null() { type_key.span } else { value.span };
    Some(StageDecl {
        type_name,
        type_span: type_key.span,
        name,
        name_span,
        inputs,
        group,
        on_error,
        queue,
        params: Node::new(params_span, Value::Map(params)),
        span: item.span,
    })
}

/// `inputs:` as a list of names; a single name is a list of one. Entries that are not names are
/// reported and left out.
fn check_inputs(node: &Node, report: &mut impl FnMut(Diagnostic)) -> Option<Vec<(String, Span)>> {
    match &node.value {
        Value::Str(name) => Some(vec![(name.clone(), node.span)]),
        Value::Seq(items) => Some(
            items
                .iter()
                .filter_map(|item| match item.as_str() {
                    Some(name) => Some((name.to_string(), item.span)),
                    None => {
                        report(Diagnostic::at(
                            item.span,
                            format!("`inputs` must list stage names, found {}", item.type_name()),
                        ));
                        None
                    }
                })
                .collect(),
        ),
        _ => {
            report(Diagnostic::at(
                node.span,
                format!("`inputs` must be a stage name or a list of them, found {}", node.type_name()),
            ));
            None
        }
    }
}

fn decode_reserved<T: DeserializeOwned + JsonSchema>(
    node: &Node,
    key: &str,
    report: &mut impl FnMut(Diagnostic),
) -> Option<T> {
    decode_at(node, &[PathSeg::Key(key.to_string())]).map_err(|d| d.into_iter().for_each(&mut *report)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The default pipeline, as docs/pipeline.md shows it.
    const DEFAULT_PIPELINE: &str = "\
# pipelines/default.yaml
stages:
  - emulator: { channels: 8, rate: 4000, gain: 24, line_hz: 50 }
  - to_voltage: {}
  - notch: { hz: 50 }
  - bandpass: { low_hz: 1, high_hz: 40, order: 4 }
  - websocket_sink: { topic: eeg, max_rate_hz: 60 }
  - downsample: { inputs: [bandpass], factor: 16 }       # 250 SPS for spectra
  - fft: { size: 256, hop: 64 }                            # ~1 Hz bins, ~4 spectra/s
  - websocket_sink: { name: spectrum_ws, topic: spectrum }
  - band_power: { inputs: [fft] }
  - websocket_sink: { name: bands_ws, topic: bands }
";

    fn at(line: usize, col: usize) -> Span {
        Span::new(line, col)
    }

    fn parsed(src: &str) -> PipelineFile {
        let (file, diags) = parse_file(src);
        assert!(diags.is_empty(), "unexpected diagnostics: {diags:#?}");
        file.expect("a usable file")
    }

    /// The diagnostics of a file, as `(line, col, message)`.
    fn diags_of(src: &str) -> (bool, Vec<(usize, usize, String)>) {
        let (file, diags) = parse_file(src);
        let list = diags
            .into_iter()
            .map(|d| {
                let s = d.span.expect("every structural error has a position");
                (s.line, s.col, d.message)
            })
            .collect();
        (file.is_some(), list)
    }

    fn one_error(src: &str) -> (usize, usize, String) {
        let (_, mut d) = diags_of(src);
        assert_eq!(d.len(), 1, "{d:#?}");
        d.remove(0)
    }

    #[test]
    fn parses_the_design_example() {
        let f = parsed(DEFAULT_PIPELINE);
        let names: Vec<_> = f.stages.iter().map(|s| (s.type_name.as_str(), s.name.as_str())).collect();
        assert_eq!(
            names,
            [
                ("emulator", "emulator"),
                ("to_voltage", "to_voltage"),
                ("notch", "notch"),
                ("bandpass", "bandpass"),
                ("websocket_sink", "websocket_sink"),
                ("downsample", "downsample"),
                ("fft", "fft"),
                ("websocket_sink", "spectrum_ws"),
                ("band_power", "band_power"),
                ("websocket_sink", "bands_ws"),
            ]
        );
        let downsample = &f.stages[5];
        assert_eq!(downsample.inputs, Some(vec![("bandpass".to_string(), at(8, 28))]));
        assert_eq!(downsample.params.to_json(), json!({"factor": 16}));
        assert_eq!(
            f.stages[0].params.to_json(),
            json!({"channels": 8, "rate": 4000, "gain": 24, "line_hz": 50})
        );
        assert_eq!(f.stages[0].inputs, None);
        assert_eq!(f.runtime, RuntimeConfig::default());
        assert_eq!(f.recording, RecordingConfig::default());
    }

    #[test]
    fn records_spans_of_item_type_name_and_params() {
        let f = parsed(DEFAULT_PIPELINE);
        let emulator = &f.stages[0];
        assert_eq!(emulator.span, at(3, 5));
        assert_eq!(emulator.type_span, at(3, 5));
        assert_eq!(emulator.name_span, emulator.type_span, "a default name points at the type");
        assert_eq!(emulator.params.span, at(3, 15));
        let rate = emulator.params.as_map().unwrap().iter().find(|(k, _)| k.as_str() == Some("rate"));
        assert_eq!(rate.unwrap().0.span, at(3, 30));
        let spectrum = &f.stages[7];
        assert_eq!(spectrum.name_span, at(10, 29));
        assert_eq!(spectrum.params.to_json(), json!({"topic": "spectrum"}), "reserved keys are removed");
    }

    #[test]
    fn params_is_an_empty_map_for_no_value_or_braces() {
        let f = parsed("stages:\n  - to_voltage:\n  - notch: {}\n");
        assert_eq!(f.stages[0].params, Node::new(at(2, 5), Value::Map(Vec::new())));
        assert_eq!(f.stages[1].params, Node::new(at(3, 12), Value::Map(Vec::new())));
    }

    #[test]
    fn reads_reserved_keys() {
        let f = parsed(
            "stages:\n  - notch:\n      hz: 50\n      name: mains\n      inputs: emulator\n      group: dsp\n      on_error: skip_packet\n      queue: { capacity: 16, overflow: drop_oldest }\n",
        );
        let s = &f.stages[0];
        assert_eq!((s.name.as_str(), s.name_span), ("mains", at(4, 13)));
        assert_eq!(s.inputs, Some(vec![("emulator".to_string(), at(5, 15))]), "one name is a list of one");
        assert_eq!(s.group.as_deref(), Some("dsp"));
        assert_eq!(s.on_error, Some(ErrorPolicy::SkipPacket));
        assert_eq!(s.queue, Some(QueueConfig { capacity: Some(16), overflow: Some(Overflow::DropOldest) }));
        assert_eq!(s.params.to_json(), json!({"hz": 50}));
        assert_eq!(s.params.span, at(3, 7));
    }

    #[test]
    fn empty_inputs_list_means_no_inputs() {
        let f = parsed("stages:\n  - emulator: { inputs: [] }\n");
        assert_eq!(f.stages[0].inputs, Some(Vec::new()));
    }

    #[test]
    fn reserved_key_without_value_counts_as_not_given() {
        let f = parsed(
            "stages:\n  - notch:\n      name:\n      inputs:\n      group:\n      on_error:\n      queue:\n",
        );
        let s = &f.stages[0];
        assert_eq!(s.name, "notch");
        assert_eq!((&s.inputs, &s.group, s.on_error, &s.queue), (&None, &None, None, &None));
        assert_eq!(s.params.to_json(), json!({}));
    }

    #[test]
    fn decodes_runtime_and_recording() {
        let f = parsed(
            "stages: [emulator: {}]\nruntime:\n  groups: { dsp: { cpu: 1, priority: 80 } }\n  queue_capacity: 128\n  mlockall: true\n  realtime_priority: 50\nrecording: { input: notch, format: edf, data_dir: /var/lib/eegd, range_uv: 500 }\n",
        );
        assert_eq!(f.runtime.groups["dsp"], GroupConfig { cpu: Some(1), priority: Some(80) });
        assert_eq!(f.runtime.queue_capacity, 128);
        assert_eq!(f.runtime.pool_packets, None);
        assert!(f.runtime.mlockall);
        assert_eq!(f.runtime.realtime_priority, Some(50));
        assert_eq!(
            f.recording,
            RecordingConfig {
                input: Some("notch".into()),
                format: RecordingFormat::Edf,
                data_dir: Some("/var/lib/eegd".into()),
                task: None,
                range_uv: Some(500.0),
            }
        );
    }

    #[test]
    fn empty_sections_take_defaults() {
        let f = parsed("stages: [emulator: {}]\nruntime:\nrecording: {}\n");
        assert_eq!(f.runtime.queue_capacity, DEFAULT_QUEUE_CAPACITY);
        assert_eq!(f.recording.format, RecordingFormat::Bdf);
    }

    #[test]
    fn parses_json_text() {
        let f = parsed(
            r#"{"stages": [{"emulator": {"channels": 8}}, {"notch": {"hz": 50}}], "runtime": {"mlockall": true}}"#,
        );
        assert_eq!(f.stages.len(), 2);
        assert!(f.runtime.mlockall);
    }

    #[test]
    fn rejects_unknown_top_level_key_with_suggestion() {
        let (usable, d) = diags_of("stages: [emulator: {}]\nruntim: {}\n");
        assert!(usable);
        assert_eq!(d, [(2, 1, "unknown top-level key `runtim`; did you mean `runtime`?".to_string())]);
    }

    #[test]
    fn lists_valid_top_level_keys_when_nothing_is_close() {
        assert_eq!(
            one_error("stages: [emulator: {}]\nthreads: 2\n"),
            (2, 1, "unknown top-level key `threads` (valid: `stages`, `runtime`, `recording`)".to_string())
        );
    }

    #[test]
    fn reports_missing_stages() {
        let (usable, d) = diags_of("stage:\n  - emulator: {}\n");
        assert!(!usable);
        assert_eq!(
            d,
            [
                (1, 1, "unknown top-level key `stage`; did you mean `stages`?".to_string()),
                (1, 1, "missing `stages`: the list of the pipeline's stages".to_string()),
            ]
        );
    }

    #[test]
    fn rejects_stages_that_are_not_a_list_or_empty() {
        let (usable, d) = diags_of("stages: { emulator: {} }\n");
        assert!(!usable);
        assert_eq!(d, [(1, 9, "`stages` must be a list of stages, found a map".to_string())]);
        for src in ["stages: []\n", "stages:\n"] {
            let (usable, d) = diags_of(src);
            assert!(!usable);
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].2, "`stages` is empty; a pipeline needs at least one stage", "{src:?}");
        }
    }

    #[test]
    fn rejects_an_empty_file_and_a_non_map_top() {
        assert_eq!(
            one_error(""),
            (1, 1, "the file is empty; a pipeline file needs a `stages` list".to_string())
        );
        assert_eq!(
            one_error("- emulator: {}\n"),
            (1, 1, "expected a map with a `stages` list, found a list".to_string())
        );
    }

    #[test]
    fn yaml_syntax_error_is_reported_alone() {
        let (usable, d) = diags_of("stages:\n  - notch: { hz: 50\n  - bandpass: {}\n");
        assert!(!usable);
        assert_eq!(d.len(), 1);
        assert!(d[0].2.starts_with("invalid YAML"), "{}", d[0].2);
    }

    #[test]
    fn rejects_stage_item_that_is_not_a_map() {
        let (usable, d) = diags_of("stages:\n  - emulator\n  - [notch]\n  - {}\n");
        assert!(!usable);
        assert_eq!(
            d,
            [
                (2, 5, format!("{STAGE_SHAPE}, found a string")),
                (3, 5, format!("{STAGE_SHAPE}, found a list")),
                (4, 5, format!("{STAGE_SHAPE}, found an empty map")),
            ]
        );
    }

    #[test]
    fn rejects_stage_with_unindented_params() {
        let (usable, d) = diags_of("stages:\n  - notch:\n    hz: 50\n");
        assert!(!usable);
        assert_eq!(
            d,
            [(
                3,
                5,
                format!(
                    "{STAGE_SHAPE}, found 2 keys (`notch`, `hz`); indent the parameters of `notch` under it"
                )
            )]
        );
    }

    #[test]
    fn rejects_two_stages_in_one_item() {
        assert_eq!(
            one_error("stages:\n  - { notch: {}, bandpass: {} }\n"),
            (
                2,
                18,
                format!(
                    "{STAGE_SHAPE}, found 2 keys (`notch`, `bandpass`); give each stage its own `-` item"
                )
            )
        );
    }

    #[test]
    fn rejects_params_that_are_not_a_map() {
        let (usable, d) = diags_of("stages:\n  - notch: 50\n  - bandpass: [1, 40]\n");
        assert!(!usable);
        assert_eq!(
            d,
            [
                (2, 12, "`notch`: the parameters must be a map, found an integer".to_string()),
                (3, 15, "`bandpass`: the parameters must be a map, found a list".to_string()),
            ]
        );
    }

    #[test]
    fn rejects_bad_reserved_keys_and_keeps_the_stage() {
        let src = "\
stages:
  - notch:
      name: 3
      inputs: 5
      group: [a]
  - bandpass:
      inputs: [notch, 2]
      on_error: skip
      queue: { capacity: 0, overflow: drop_newest, size: 3 }
";
        let (file, diags) = parse_file(src);
        let got: Vec<_> =
            diags.iter().map(|d| (d.span.unwrap().line, d.span.unwrap().col, d.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (3, 13, "`notch`: `name` must be a string, found an integer"),
                (4, 15, "`notch`: `inputs` must be a stage name or a list of them, found an integer"),
                (5, 14, "`notch`: `group` must be a thread group name, found a list"),
                (7, 23, "`bandpass`: `inputs` must list stage names, found an integer"),
                (
                    8,
                    17,
                    "`bandpass`: `on_error` = \"skip\" is not one of `drain_then_stop`, `fatal`, `skip_packet`; did you mean `skip_packet`?"
                ),
                (9, 26, "`bandpass`: `queue.capacity` = 0 is out of range (1 to 65536)"),
                (
                    9,
                    39,
                    "`bandpass`: `queue.overflow` = \"drop_newest\" is not one of `block`, `drop_oldest`; did you mean `drop_oldest`?"
                ),
                (9, 52, "`bandpass`: unknown parameter `size` (valid: `capacity`, `overflow`)"),
            ]
        );
        let file = file.expect("bad reserved values leave the structure usable");
        let notch = &file.stages[0];
        assert_eq!((notch.name.as_str(), notch.name_span), ("notch", notch.type_span));
        assert_eq!((&notch.inputs, &notch.group), (&None, &None));
        let bandpass = &file.stages[1];
        assert_eq!(bandpass.inputs, Some(vec![("notch".to_string(), at(7, 16))]));
        assert_eq!((bandpass.on_error, &bandpass.queue), (None, &None));
    }

    #[test]
    fn rejects_bad_runtime_and_recording_values() {
        let src = "\
stages: [emulator: {}]
runtime:
  queue_capacity: 0
  mlock: true
  groups:
    dsp: { priority: 120, core: 1 }
recording: { format: wav, input: 3, range_uv: -1 }
";
        let (file, diags) = parse_file(src);
        let got: Vec<_> =
            diags.iter().map(|d| (d.span.unwrap().line, d.span.unwrap().col, d.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (3, 19, "`runtime.queue_capacity` = 0 is out of range (1 to 65536)"),
                (4, 3, "unknown parameter `mlock`; did you mean `mlockall`?"),
                (6, 22, "`runtime.groups.dsp.priority` = 120 is out of range (1 to 99)"),
                (6, 27, "unknown parameter `core` (valid: `cpu`, `priority`)"),
                (7, 22, "`recording.format` = \"wav\" is not one of `bdf`, `bids`, `csv`, `edf`"),
                (7, 47, "`recording.range_uv` = -1 is out of range (greater than 0)"),
            ]
        );
        let file = file.expect("section errors leave the structure usable");
        assert_eq!(file.runtime, RuntimeConfig::default());
        assert_eq!(file.recording, RecordingConfig::default());
    }

    #[test]
    fn reports_wrong_type_in_a_section_after_schema_checks() {
        assert_eq!(
            one_error("stages: [emulator: {}]\nrecording: { input: [a] }\n"),
            (2, 21, "`recording.input`: invalid type: sequence, expected a string".to_string())
        );
    }

    #[test]
    fn reports_duplicate_keys_and_keeps_going() {
        let src = "stages:\n  - notch: { hz: 50, hz: 60 }\nruntime: {}\nruntime: { mlockall: true }\n";
        let (file, diags) = parse_file(src);
        let got: Vec<_> = diags.iter().map(|d| (d.span.unwrap(), d.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (at(2, 22), "duplicate key `hz` (first at line 2)"),
                (at(4, 1), "duplicate key `runtime` (first at line 3)"),
            ]
        );
        let file = file.unwrap();
        assert_eq!(file.stages[0].params.get("hz").unwrap().to_json(), json!(50), "the first counts");
    }

    #[test]
    fn reports_every_structural_error_at_once() {
        let src = "\
stagez: 1
stages:
  - emulator: { channels: 8 }
  - notch
  - bandpass: { on_error: ignore }
runtime: { queue_capacity: -1 }
recording: { fromat: csv }
";
        let (usable, d) = diags_of(src);
        assert!(!usable, "the broken stage item makes the list unusable");
        let lines: Vec<_> = d.iter().map(|(line, _, _)| *line).collect();
        assert_eq!(lines, [1, 4, 5, 6, 7], "{d:#?}");
    }

    #[test]
    fn parses_the_shipped_pipelines() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("the pipelines folder") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let src = std::fs::read_to_string(&path).expect("a readable file");
                let (file, diags) = parse_file(&src);
                assert!(diags.is_empty() && file.is_some(), "{}: {diags:#?}", path.display());
                seen += 1;
            }
        }
        assert!(seen > 0, "no pipeline files in {dir}");
    }

    #[test]
    fn keys_are_the_documented_ones() {
        let stage = crate::topology::decode::schema_of::<QueueConfig>();
        let props: Vec<_> = stage["properties"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(props, ["capacity", "overflow"]);
        assert_eq!(RESERVED_KEYS, ["name", "inputs", "group", "on_error", "queue"]);
    }
}
