//! `null_sink`: counts and drops.
use pipeline::stage::{BuildCx, ParamError};
use pipeline::{Kind, Role, Stage, StageType, StreamInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `null_sink` (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NullSinkParams {}

/// Takes every packet and drops it; the runtime counts them. For benchmarks and tests.
pub struct NullSink;

impl Stage for NullSink {}

impl StageType for NullSink {
    type Params = NullSinkParams;
    const NAME: &'static str = "null_sink";
    const ROLE: Role = Role::Sink;
    const ACCEPTS: &'static [Kind] = Kind::ANY;
    const DOC: &'static str =
        "Counts and drops every packet (for benchmarks).\n\nInputs: any kind. Outputs: none.";
    const EXAMPLE: &'static str = "stages:\n  - emulator: {}\n  - null_sink: {}\n";

    fn build(
        _: &Self::Params,
        _: &[StreamInfo],
        _: &BuildCx<'_>,
    ) -> Result<(Self, Option<StreamInfo>), ParamError> {
        Ok((NullSink, None))
    }
}

pipeline::register_stage!(NullSink);
