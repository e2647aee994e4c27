// The binary data frame of `/ws/data` (docs/protocol.md), little-endian:
// "EEGD" | u16 version | u16 kind | u32 channels | u32 samples | f64 rate | u64 seq | i64 ts_ns | f32[ch × n]
export const KIND_TIMESERIES = 1;
export const KIND_SPECTRUM = 2;
export const KIND_BANDS = 3;
export const HEADER_BYTES = 40;

/** Parses one frame; throws on anything that is not a version-1 frame. The samples are a view, not a copy. */
export function parseFrame(buf) {
  if (buf.byteLength < HEADER_BYTES) throw new Error(`frame of ${buf.byteLength} bytes is shorter than its header`);
  const v = new DataView(buf);
  if (v.getUint32(0, false) !== 0x45454744) throw new Error('frame does not start with EEGD');
  const version = v.getUint16(4, true);
  if (version !== 1) throw new Error(`unsupported frame version ${version}`);
  const kind = v.getUint16(6, true);
  const channels = v.getUint32(8, true);
  const samples = v.getUint32(12, true);
  const rate = v.getFloat64(16, true);
  const seq = Number(v.getBigUint64(24, true));
  const tsNs = v.getBigInt64(32, true);
  const need = HEADER_BYTES + channels * samples * 4;
  if (buf.byteLength < need) throw new Error(`frame holds ${buf.byteLength} bytes, its header says ${need}`);
  // Offset 40 is a multiple of 4, so the samples can be viewed in place on little-endian hosts.
  const data = new Float32Array(buf, HEADER_BYTES, channels * samples);
  return { kind, channels, samples, rate, seq, tsNs, data };
}
