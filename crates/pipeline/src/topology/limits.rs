//! Every limit a pipeline file is held to, in one place.
//!
//! A pipeline file comes from a user or over the network (`PUT /api/pipeline`), so everything
//! it can make the process spend is bounded here, and exceeding a bound is a positioned
//! [`Diagnostic`](super::Diagnostic) (exit 2 from `eegd validate`/`run`, 400 from the daemon),
//! never a crash, an abort or a stall. The bounds are far above any real pipeline: the largest
//! ready-made file in `pipelines/` has a dozen stages. README.md ("Limits") lists them for
//! users; keep the two in step.

/// Bytes of pipeline-file text. The daemon refuses a larger request body with 413 first.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Nesting depth of maps and lists. A pipeline needs four or five levels; this bound keeps
/// every recursive walk of the tree (checks, decoding, `Drop`) far from the stack's end.
pub const MAX_DEPTH: usize = 64;

/// YAML values (scalars, lists, maps) in the file once aliases are expanded. An alias costs
/// what its anchor holds, so a few hundred bytes of anchors cannot expand to gigabytes.
pub const MAX_VALUES: usize = 100_000;

/// Bytes of scalar text in the file once aliases are expanded.
pub const MAX_TEXT_BYTES: usize = 4 << 20;

/// Stages in one pipeline. Inside a thread group a packet moves by nested calls, one per
/// stage along a chain, so this also bounds that depth.
pub const MAX_STAGES: usize = 256;

/// Thread groups (each is a thread), counting the defaults the graph builder assigns.
pub const MAX_GROUPS: usize = 32;

/// Sink stages. (The scipy interop test writes every filter's output to a file: 40 sinks.)
pub const MAX_SINKS: usize = 128;

/// Stages that open a file (`file_source`, `csv_sink`, `bdf_sink`, `edf_sink`).
pub const MAX_FILES: usize = 128;

/// Packets in the pool (`runtime.pool_packets`, or what the graph builder computes).
pub const MAX_POOL_PACKETS: usize = 1 << 16;

/// Bytes the pool may take (packets × the largest packet); the pool is allocated in full at
/// start.
pub const MAX_POOL_BYTES: usize = 256 << 20;

/// `1048576` as `1 MiB`, for messages.
pub fn bytes_text(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}
