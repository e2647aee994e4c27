//! Lab Streaming Layer in the daemon and the CLI: the liblsl check a pipeline with LSL stages
//! needs before it starts.
use pipeline::topology::graph::Plan;

/// The stage types that need liblsl.
pub const LSL_STAGES: &[&str] = &["lsl_sink", "lsl_source"];

/// Does `plan` use liblsl? Then liblsl must load, or the pipeline does not start: the error
/// names the first LSL stage and says how to install liblsl. A plan without LSL stages never
/// loads it.
pub fn check_liblsl(plan: &Plan) -> Result<(), String> {
    let Some(s) = plan.stages.iter().find(|s| LSL_STAGES.contains(&s.type_name)) else { return Ok(()) };
    lsl::available().map_err(|e| format!("`{}` ({}): {e}", s.name, s.type_name))
}
