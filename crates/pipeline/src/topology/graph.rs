//! From a parsed pipeline file to a checked, built graph: stage types, parameters, names,
//! inputs, cycles, packet kinds and thread groups, every error reported at once.
use super::diag::{did_you_mean, Diagnostic, Diagnostics, Span};
use super::file::{parse_file, ErrorPolicy, Overflow, PipelineFile, RecordingConfig, RuntimeConfig};
use super::limits;
use crate::stage::{
    lookup, param_diagnostic, registry, BuildCx, BuiltStage, DynStage, ErasedParams, Registration, Role,
    Upstream,
};
use crate::stream::StreamInfo;
use std::collections::{BTreeMap, HashMap};

/// One stage, checked and built, ready to run.
pub struct PlannedStage {
    pub name: String,
    pub type_name: &'static str,
    pub role: Role,
    /// Indices (into [`Plan::stages`]) of the stages feeding each input, in order.
    pub inputs: Vec<usize>,
    pub group: String,
    pub on_error: ErrorPolicy,
    /// Capacity and overflow of this stage's input edges that cross threads.
    pub queue_capacity: usize,
    pub overflow: Overflow,
    pub output: Option<StreamInfo>,
    pub stage: Box<dyn DynStage>,
    pub span: Span,
}

/// A pipeline that passed every check. Stages are in topological order (every stage after its
/// inputs).
pub struct Plan {
    pub stages: Vec<PlannedStage>,
    pub runtime: RuntimeConfig,
    pub recording: RecordingConfig,
    /// Values per packet in the pool: the largest packet any stream carries.
    pub pool_words: usize,
    /// Packets in the pool.
    pub pool_packets: usize,
    /// The file as given, so a session can store the exact running configuration.
    pub source: String,
}

impl Plan {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// The stage whose output a recording takes: `recording.input`, else the `to_voltage`
    /// stage, else the first source.
    pub fn recording_input(&self) -> Option<usize> {
        match &self.recording.input {
            Some(n) => self.index_of(n),
            None => self
                .stages
                .iter()
                .position(|s| s.type_name == "to_voltage")
                .or_else(|| self.stages.iter().position(|s| s.role == Role::Source)),
        }
    }
}

struct Decl<'a> {
    file: &'a super::file::StageDecl,
    reg: &'static Registration,
    params: Box<dyn ErasedParams>,
    inputs: Vec<(usize, Span)>,
}

/// Parses, checks and builds a pipeline file. `file` names it in the diagnostics.
pub fn plan(file: &str, src: &str) -> Result<Plan, Diagnostics> {
    let fail = |items: Vec<Diagnostic>| Diagnostics { file: file.to_string(), items };
    let (parsed, mut diags) = parse_file(src);
    let Some(parsed) = parsed else { return Err(fail(diags)) };
    match check(&parsed, &mut diags) {
        Some(plan) if diags.is_empty() => Ok(Plan { source: src.to_string(), ..plan }),
        _ => Err(fail(diags)),
    }
}

fn check(f: &PipelineFile, diags: &mut Vec<Diagnostic>) -> Option<Plan> {
    let names: Vec<&'static str> = registry().iter().map(|r| r.name).collect();

    // Tier 1: types and parameters.
    let mut decls: Vec<Option<Decl>> = Vec::with_capacity(f.stages.len());
    for s in &f.stages {
        let Some(reg) = lookup(&s.type_name) else {
            diags.push(Diagnostic::at(
                s.type_span,
                format!(
                    "unknown stage type `{}`{}",
                    s.type_name,
                    did_you_mean(&s.type_name, names.iter().copied())
                ),
            ));
            decls.push(None);
            continue;
        };
        match (reg.decode)(&s.params) {
            Ok(params) => decls.push(Some(Decl { file: s, reg, params, inputs: Vec::new() })),
            Err(mut d) => {
                for d in &mut d {
                    d.message = format!("`{}`: {}", s.name, d.message);
                }
                diags.append(&mut d);
                decls.push(None);
            }
        }
    }

    // Resources: sinks and open files.
    over_limit(f, &decls, |r| r.role == Role::Sink, limits::MAX_SINKS, "sink stages", diags);
    over_limit(f, &decls, |r| r.opens_file, limits::MAX_FILES, "stages that open a file", diags);

    // Tier 2: names.
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, s) in f.stages.iter().enumerate() {
        if let Some(&first) = by_name.get(s.name.as_str()) {
            diags.push(Diagnostic::at(
                s.name_span,
                format!(
                    "duplicate stage name `{}` (first at line {}); give this one a `name:`",
                    s.name, f.stages[first].span.line
                ),
            ));
        } else {
            by_name.insert(&s.name, i);
        }
    }

    // Tier 3: inputs.
    let all_names: Vec<&str> = f.stages.iter().map(|s| s.name.as_str()).collect();
    for i in 0..f.stages.len() {
        let s = &f.stages[i];
        let role = decls[i].as_ref().map(|d| d.reg.role);
        let mut inputs = Vec::new();
        // An input named but not found: the stage cannot be built (its type would be handed
        // fewer inputs than it takes), so it is left out of the later tiers.
        let mut unresolved = false;
        match &s.inputs {
            Some(list) => {
                if role == Some(Role::Source) && !list.is_empty() {
                    diags.push(Diagnostic::at(
                        s.type_span,
                        format!("`{}` is a source and takes no `inputs`", s.name),
                    ));
                }
                for (name, span) in list {
                    match by_name.get(name.as_str()) {
                        Some(&j) if j == i => {
                            unresolved = true;
                            diags.push(Diagnostic::at(
                                *span,
                                format!("`{}` cannot take its own output", s.name),
                            ))
                        }
                        Some(&j) => inputs.push((j, *span)),
                        None => {
                            unresolved = true;
                            diags.push(Diagnostic::at(
                                *span,
                                format!(
                                    "`{}`: unknown input `{name}`{}",
                                    s.name,
                                    did_you_mean(name, all_names.iter().copied())
                                ),
                            ))
                        }
                    }
                }
                if list.is_empty() && role.is_some_and(|r| r != Role::Source) {
                    unresolved = true;
                    diags.push(Diagnostic::at(
                        s.type_span,
                        format!("`{}` needs an input, and `inputs` is empty", s.name),
                    ));
                }
            }
            None if role == Some(Role::Source) || role.is_none() => {}
            None if i == 0 => {
                unresolved = true;
                diags.push(Diagnostic::at(
                    s.type_span,
                    format!("`{}` needs an input, and there is no stage above it; add `inputs:`", s.name),
                ))
            }
            None => inputs.push((i - 1, s.type_span)),
        }
        for &(j, span) in &inputs {
            if decls[j].as_ref().is_some_and(|d| d.reg.role == Role::Sink) {
                diags.push(Diagnostic::at(
                    span,
                    format!(
                        "`{}` takes input from `{}`, a sink, which gives no output{}",
                        s.name,
                        f.stages[j].name,
                        if s.inputs.is_none() { "; add `inputs:` to say which stage feeds it" } else { "" }
                    ),
                ));
            }
        }
        if let Some(d) = decls[i].as_mut() {
            if d.reg.role != Role::Source && !d.reg.multi_input && inputs.len() > 1 {
                unresolved = true;
                diags.push(Diagnostic::at(
                    s.type_span,
                    format!("`{}` takes one input, not {}", s.name, inputs.len()),
                ));
            }
            if d.reg.multi_input && s.inputs.as_ref().is_none_or(|l| l.len() < 2) {
                unresolved = true;
                diags.push(Diagnostic::at(
                    s.type_span,
                    format!("`{}` joins streams: list two or more `inputs`", s.name),
                ));
            }
            d.inputs = inputs;
        }
        if unresolved {
            decls[i] = None;
        }
    }

    // Tier 4: cycles (Kahn's algorithm over the edges we could resolve).
    let n = f.stages.len();
    let edges: Vec<Vec<usize>> = (0..n)
        .map(|i| decls[i].as_ref().map(|d| d.inputs.iter().map(|x| x.0).collect()).unwrap_or_default())
        .collect();
    let order = topo_order(&edges);
    if order.len() < n {
        let in_order: Vec<bool> = (0..n).map(|i| order.contains(&i)).collect();
        for i in (0..n).filter(|&i| !in_order[i]) {
            if let Some(cycle) = find_cycle(&edges, i) {
                if cycle[0] == i {
                    let path: Vec<&str> =
                        cycle.iter().chain(std::iter::once(&i)).map(|&k| f.stages[k].name.as_str()).collect();
                    diags.push(Diagnostic::at(
                        f.stages[i].span,
                        format!("`{}` is part of a cycle: {}", f.stages[i].name, path.join(" → ")),
                    ));
                }
            }
        }
        return None;
    }
    // Recording input must name a stage.
    if let Some(input) = &f.recording.input {
        if !by_name.contains_key(input.as_str()) {
            let span =
                f.root.get("recording").and_then(|r| r.get("input")).map(|n| n.span).unwrap_or_default();
            diags.push(Diagnostic::at(
                span,
                format!(
                    "`recording.input`: unknown stage `{input}`{}",
                    did_you_mean(input, all_names.iter().copied())
                ),
            ));
        }
    }
    if decls.iter().any(|d| d.is_none()) {
        return None;
    }
    let decls: Vec<Decl> = decls.into_iter().flatten().collect();

    // Tier 5: kinds and build, in topological order.
    let mut outputs: Vec<Option<StreamInfo>> = vec![None; n];
    let mut built: Vec<Option<BuiltStage>> = (0..n).map(|_| None).collect();
    let mut next_stream = 0u16;
    for &i in &order {
        let d = &decls[i];
        let mut ins = Vec::with_capacity(d.inputs.len());
        let mut ok = true;
        for &(j, span) in &d.inputs {
            match &outputs[j] {
                Some(info) if !d.reg.accepts.contains(&info.kind) => {
                    let takes: Vec<&str> = d.reg.accepts.iter().map(|k| k.name()).collect();
                    diags.push(Diagnostic::at(
                        span,
                        format!(
                            "`{}` gives {} but `{}` ({}) takes only {}",
                            decls[j].file.name,
                            info.kind.name(),
                            d.file.name,
                            d.reg.name,
                            takes.join(" or ")
                        ),
                    ));
                    ok = false;
                }
                Some(info) => ins.push(info.clone()),
                None => ok = false,
            }
        }
        if !ok {
            continue;
        }
        let up = upstream_of(i, &decls, &order, &built);
        let cx = BuildCx { name: &d.file.name, stream_id: next_stream, upstream: &up };
        if d.reg.role == Role::Source {
            next_stream += 1;
        }
        match d.params.build(&ins, &cx) {
            Ok((stage, out)) => {
                outputs[i] = out.clone();
                built[i] = Some((stage, out));
            }
            Err(e) => {
                let mut diag = param_diagnostic(&d.file.params, &e);
                diag.message = format!("`{}`: {}", d.file.name, diag.message);
                diags.push(diag);
            }
        }
    }
    if built.iter().any(|b| b.is_none()) {
        return None;
    }

    // Tier 6: queues and thread groups.
    let rt = &f.runtime;
    let groups = assign_groups(&decls, &order);
    let src_groups: Vec<&str> = decls
        .iter()
        .enumerate()
        .filter(|(_, e)| e.reg.role == Role::Source)
        .map(|(j, _)| groups[j].as_str())
        .collect();
    for (i, d) in decls.iter().enumerate() {
        let overflow = d.file.queue.as_ref().and_then(|q| q.overflow).unwrap_or_default();
        if d.reg.records && overflow == Overflow::DropOldest {
            let span = d.file.params.span;
            diags.push(Diagnostic::at(
                span,
                format!(
                    "`{}` records data and never drops: its queue must use `overflow: block`",
                    d.file.name
                ),
            ));
        }
        if d.reg.role == Role::Source && src_groups.iter().filter(|g| **g == groups[i]).count() > 1 {
            diags.push(Diagnostic::at(
                d.file.span,
                format!("group `{}` holds two sources; each source needs a thread of its own", groups[i]),
            ));
        }
    }
    let mut seen_groups: Vec<&str> = Vec::new();
    for &i in &order {
        if !seen_groups.contains(&groups[i].as_str()) {
            seen_groups.push(&groups[i]);
            if seen_groups.len() == limits::MAX_GROUPS + 1 {
                diags.push(Diagnostic::at(
                    decls[i].file.span,
                    format!(
                        "more than {} thread groups (`{}` is the first one over); put stages in fewer groups",
                        limits::MAX_GROUPS,
                        groups[i]
                    ),
                ));
            }
        }
    }
    if let Some(cycle) = group_cycle(&decls, &groups) {
        diags.push(Diagnostic::new(format!(
            "thread groups form a cycle ({}); a full queue could deadlock it — regroup the stages",
            cycle.join(" → ")
        )));
    }
    for (g, _) in rt.groups.iter() {
        if !groups.iter().any(|x| x == g) {
            let span =
                f.root.get("runtime").and_then(|r| r.get("groups")).and_then(|gs| gs.get(g)).map(|n| n.span);
            let msg = format!(
                "`runtime.groups`: no stage is in group `{g}`{}",
                did_you_mean(g, groups.iter().map(|s| s.as_str()))
            );
            diags.push(match span {
                Some(s) => Diagnostic::at(s, msg),
                None => Diagnostic::new(msg),
            });
        }
    }
    if !diags.is_empty() {
        return None;
    }

    let pool_words = outputs.iter().flatten().map(|o| o.words()).max().unwrap_or(1).max(1);
    let mut stages = Vec::with_capacity(n);
    let mut position = vec![0usize; n];
    for (k, &i) in order.iter().enumerate() {
        position[i] = k;
    }
    let mut cross_edges = 0usize;
    for &i in &order {
        let d = &decls[i];
        let (stage, output) = built[i].take()?;
        let q = d.file.queue.clone().unwrap_or_default();
        let capacity = q.capacity.unwrap_or(rt.queue_capacity);
        cross_edges += d.inputs.iter().filter(|(j, _)| groups[*j] != groups[i]).count() * capacity;
        stages.push(PlannedStage {
            name: d.file.name.clone(),
            type_name: d.reg.name,
            role: d.reg.role,
            inputs: d.inputs.iter().map(|&(j, _)| position[j]).collect(),
            group: groups[i].clone(),
            on_error: d.file.on_error.unwrap_or(d.reg.on_error),
            queue_capacity: capacity,
            overflow: q.overflow.unwrap_or_default(),
            output,
            stage,
            span: d.file.span,
        });
    }
    // Every packet a queue can hold, plus a few in flight per stage (a packet being processed,
    // one being emitted, what a fan-in holds while it waits for its partner).
    let pool_packets = rt.pool_packets.unwrap_or(cross_edges + 8 * n + 16);
    check_pool(f, pool_packets, pool_words, diags);
    if !diags.is_empty() {
        return None;
    }
    Some(Plan {
        stages,
        runtime: rt.clone(),
        recording: f.recording.clone(),
        pool_words,
        pool_packets,
        source: String::new(),
    })
}

/// Reports the first stage past `limit` of those whose type `counts`.
fn over_limit(
    f: &PipelineFile,
    decls: &[Option<Decl>],
    counts: impl Fn(&Registration) -> bool,
    limit: usize,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) {
    let mut matching = decls.iter().zip(&f.stages).filter(|(d, _)| d.as_ref().is_some_and(|d| counts(d.reg)));
    if let Some((_, s)) = matching.nth(limit) {
        diags.push(Diagnostic::at(
            s.type_span,
            format!("`{}`: a pipeline may have at most {limit} {what}; this is one more", s.name),
        ));
    }
}

/// The pool is allocated in full at start: its packets and bytes must stay within the limits.
fn check_pool(f: &PipelineFile, packets: usize, words: usize, diags: &mut Vec<Diagnostic>) {
    let bytes = packets.saturating_mul(words).saturating_mul(4);
    let message = if packets > limits::MAX_POOL_PACKETS {
        format!("the pool would hold {packets} packets; the limit is {}", limits::MAX_POOL_PACKETS)
    } else if bytes > limits::MAX_POOL_BYTES {
        format!(
            "the pool would take {} MiB ({packets} packets of {words} values); the limit is {}; \
             lower `runtime.pool_packets`, queue capacities or packet sizes",
            bytes >> 20,
            limits::bytes_text(limits::MAX_POOL_BYTES)
        )
    } else {
        return;
    };
    let given = f.root.get("runtime").and_then(|r| r.get("pool_packets")).map(|n| n.span);
    diags.push(match given {
        Some(span) => Diagnostic::at(span, format!("`runtime.pool_packets`: {message}")),
        None => Diagnostic::new(message),
    });
}

/// Kahn's algorithm: the stages in an order where inputs come first (file order among equals).
/// Stages on a cycle are left out.
fn topo_order(inputs: &[Vec<usize>]) -> Vec<usize> {
    let n = inputs.len();
    let mut pending: Vec<usize> = inputs.iter().map(|v| v.len()).collect();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ins) in inputs.iter().enumerate() {
        for &j in ins {
            consumers[j].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &c in &consumers[i] {
            pending[c] -= 1;
            if pending[c] == 0 {
                ready.insert(c);
            }
        }
    }
    order
}

/// A cycle through `start` following inputs, if there is one, as a list beginning at its
/// lowest index (so each cycle is reported once).
fn find_cycle(inputs: &[Vec<usize>], start: usize) -> Option<Vec<usize>> {
    fn dfs(
        inputs: &[Vec<usize>],
        at: usize,
        start: usize,
        path: &mut Vec<usize>,
        seen: &mut Vec<bool>,
    ) -> bool {
        for &j in &inputs[at] {
            if j == start {
                return true;
            }
            if !seen[j] {
                seen[j] = true;
                path.push(j);
                if dfs(inputs, j, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start];
    let mut seen = vec![false; inputs.len()];
    if !dfs(inputs, start, start, &mut path, &mut seen) {
        return None;
    }
    // path follows inputs (consumer → producer); report in data-flow order from the lowest.
    path.reverse();
    let lowest = path.iter().enumerate().min_by_key(|(_, &v)| v).map(|(k, _)| k).unwrap_or(0);
    path.rotate_left(lowest);
    Some(path)
}

/// The stages upstream of `i`, in topological order (sources first), as already built.
fn upstream_of(i: usize, decls: &[Decl], order: &[usize], built: &[Option<BuiltStage>]) -> Vec<Upstream> {
    let mut seen = vec![false; decls.len()];
    let mut stack: Vec<usize> = decls[i].inputs.iter().map(|&(j, _)| j).collect();
    while let Some(j) = stack.pop() {
        if !std::mem::replace(&mut seen[j], true) {
            stack.extend(decls[j].inputs.iter().map(|&(k, _)| k));
        }
    }
    order
        .iter()
        .filter(|&&j| seen[j])
        .filter_map(|&j| {
            let (stage, _) = built[j].as_ref()?;
            Some(Upstream {
                name: decls[j].file.name.clone(),
                type_name: decls[j].reg.name,
                params: stage.params_json(),
            })
        })
        .collect()
}

/// Default thread groups: each source its own (`acquire`, or `acquire.<name>` when there are
/// several); sinks doing blocking I/O `io`; everything else the group of its first input, so a
/// packet's path stays on one thread as long as it can.
fn assign_groups(decls: &[Decl], order: &[usize]) -> Vec<String> {
    let sources = decls.iter().filter(|d| d.reg.role == Role::Source).count();
    let mut groups = vec![String::new(); decls.len()];
    for &i in order {
        let d = &decls[i];
        groups[i] = match (&d.file.group, d.reg.role) {
            (Some(g), _) => g.clone(),
            (None, Role::Source) if sources > 1 => format!("acquire.{}", d.file.name),
            (None, Role::Source) => "acquire".to_string(),
            (None, _) if d.reg.blocking_io => "io".to_string(),
            (None, _) => d.inputs.first().map(|&(j, _)| groups[j].clone()).unwrap_or_else(|| "main".into()),
        };
    }
    groups
}

/// A cycle among thread groups (group A feeds B feeds A), which blocking queues could deadlock.
fn group_cycle(decls: &[Decl], groups: &[String]) -> Option<Vec<String>> {
    let names: Vec<String> = {
        let mut v: Vec<String> = groups.to_vec();
        v.sort();
        v.dedup();
        v
    };
    let idx: BTreeMap<&str, usize> = names.iter().enumerate().map(|(k, g)| (g.as_str(), k)).collect();
    let mut ins: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (i, d) in decls.iter().enumerate() {
        for &(j, _) in &d.inputs {
            let (a, b) = (idx[groups[j].as_str()], idx[groups[i].as_str()]);
            if a != b && !ins[b].contains(&a) {
                ins[b].push(a);
            }
        }
    }
    if topo_order(&ins).len() == names.len() {
        return None;
    }
    (0..names.len()).find_map(|g| find_cycle(&ins, g)).map(|c| c.iter().map(|&k| names[k].clone()).collect())
}
