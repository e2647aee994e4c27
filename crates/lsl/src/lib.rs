//! Lab Streaming Layer for eegd: liblsl loaded at run time, safe handles over the few C
//! functions eegd uses, and the pure logic around them (clock mapping, stream descriptions,
//! queries) that is tested without liblsl.
//!
//! **Why this crate has `unsafe`.** It is the project's only place besides `crates/pipeline`
//! that may: it calls liblsl's C API through function pointers. No maintained crate binds liblsl
//! without building its C++ from source, and the crates.io `lsl` crate's bundled C++ (old Boost,
//! `PTHREAD_STACK_MIN` as a constant) no longer builds with today's glibc. Loading the shared
//! library with `libloading` instead means `cargo build` never needs liblsl, and a pipeline
//! without LSL stages never loads it. Every `unsafe` block says why it holds (`// SAFETY:`).
//!
//! **Where liblsl is looked for** ([`api`]): if `EEGD_LIBLSL` is set, that file only; otherwise
//! the dynamic loader's search path (`liblsl.so.2`, `liblsl.so`). When it is absent, every entry
//! point returns [`LslError::NotInstalled`], whose message says how to install it.
//!
//! Real-time contract: [`Outlet::push_chunk`] and the inlet pulls take caller buffers and never
//! allocate on the Rust side (liblsl itself keeps its own buffers). Everything else (creating
//! streams, resolving, descriptions) allocates and is for start-up.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod clock;
pub mod desc;
mod ffi;
pub mod query;

pub use clock::ClockMap;
pub use desc::DescNode;
pub use query::Query;

use ffi::Api;
use std::ffi::{c_char, CStr, CString};
use std::sync::OnceLock;

/// The environment variable naming liblsl's file.
pub const ENV_LIBLSL: &str = "EEGD_LIBLSL";

/// Names the dynamic loader is asked for when `EEGD_LIBLSL` is not set.
const SYSTEM_NAMES: &[&str] = &["liblsl.so.2", "liblsl.so"];

/// How to install liblsl; part of [`LslError::NotInstalled`]'s message.
pub const INSTALL_HINT: &str = "install liblsl: a release package from \
https://github.com/sccn/liblsl/releases (`sudo apt install ./liblsl-<version>-<distro>_<arch>.deb`), \
or `pip install pylsl` and set EEGD_LIBLSL to the wheel's `pylsl/lib/liblsl.so`";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LslError {
    /// liblsl could not be loaded.
    #[error("liblsl (Lab Streaming Layer) is not available ({0}); {INSTALL_HINT}")]
    NotInstalled(String),
    #[error("{0}")]
    Call(String),
}

/// The loaded library, or why it could not be loaded. Loaded on first use, once per process.
pub fn api() -> Result<&'static Api, LslError> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(|e| LslError::NotInstalled(e.clone()))
}

/// Checks that liblsl can be loaded (and loads it).
pub fn available() -> Result<(), LslError> {
    api().map(|_| ())
}

fn load() -> Result<Api, String> {
    if let Some(path) = std::env::var_os(ENV_LIBLSL) {
        return Api::open(&path).map_err(|e| format!("{ENV_LIBLSL}={}: {e}", path.to_string_lossy()));
    }
    let mut tried = Vec::new();
    for name in SYSTEM_NAMES {
        match Api::open(std::ffi::OsStr::new(name)) {
            Ok(a) => return Ok(a),
            Err(e) => tried.push(format!("{name}: {e}")),
        }
    }
    Err(format!("not on the library path and {ENV_LIBLSL} is not set; tried {}", tried.join("; ")))
}

/// liblsl's version, e.g. 118 for 1.18.
pub fn library_version() -> Result<i32, LslError> {
    let a = api()?;
    // SAFETY: takes no arguments and returns a constant.
    Ok(unsafe { (a.library_version)() })
}

/// liblsl's clock (`lsl_local_clock`): seconds on this machine's monotonic clock.
pub fn local_clock() -> Result<f64, LslError> {
    let a = api()?;
    // SAFETY: takes no arguments; reads the steady clock.
    Ok(unsafe { (a.local_clock)() })
}

/// A value's C string; LSL strings cannot hold NUL.
fn cstr(s: &str, what: &str) -> Result<CString, LslError> {
    CString::new(s).map_err(|_| LslError::Call(format!("{what} contains a NUL character")))
}

/// Copies a C string liblsl owns (null gives "").
fn owned(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: liblsl returns NUL-terminated strings that stay valid while their owner (a
    // stream info or XML node) lives; we copy before returning.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// What an inlet call can report besides data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullError {
    /// The outlet is gone and will not come back (`recover` off, or no `source_id`).
    Lost,
    /// Any other liblsl error code.
    Code(i32),
}

fn check(ec: i32) -> Result<(), PullError> {
    match ec {
        ffi::ERR_NONE | ffi::ERR_TIMEOUT => Ok(()),
        ffi::ERR_LOST => Err(PullError::Lost),
        c => Err(PullError::Code(c)),
    }
}

/// Sample formats eegd makes outlets of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Float32,
    String,
}

/// A stream's description (`lsl_streaminfo`): made for an outlet, or found by a resolve.
pub struct StreamInfo {
    api: &'static Api,
    ptr: ffi::StreamInfoPtr,
}

// SAFETY: a streaminfo is a heap object owned by this handle alone; liblsl does not tie it to
// the thread that made it.
unsafe impl Send for StreamInfo {}

impl StreamInfo {
    pub fn new(
        name: &str,
        type_: &str,
        channels: usize,
        rate: f64,
        format: Format,
        source_id: &str,
    ) -> Result<StreamInfo, LslError> {
        let api = api()?;
        let (n, t, s) = (cstr(name, "`name`")?, cstr(type_, "`type`")?, cstr(source_id, "`source_id`")?);
        let fmt = match format {
            Format::Float32 => ffi::CFT_FLOAT32,
            Format::String => ffi::CFT_STRING,
        };
        // SAFETY: the strings are NUL-terminated and outlive the call (liblsl copies them).
        let ptr = unsafe {
            (api.create_streaminfo)(n.as_ptr(), t.as_ptr(), channels as i32, rate, fmt, s.as_ptr())
        };
        if ptr.is_null() {
            return Err(LslError::Call(format!("liblsl refused the stream `{name}` ({channels} channels)")));
        }
        Ok(StreamInfo { api, ptr })
    }

    /// Appends `node`'s children under the description's root (`<desc>`).
    pub fn write_desc(&mut self, node: &DescNode) -> Result<(), LslError> {
        // SAFETY: `ptr` is a live streaminfo; the desc node belongs to it.
        let root = unsafe { (self.api.get_desc)(self.ptr) };
        for c in &node.children {
            self.append(root, c)?;
        }
        Ok(())
    }

    fn append(&self, parent: ffi::XmlPtr, node: &DescNode) -> Result<(), LslError> {
        let name = cstr(&node.name, "a description element")?;
        let el = match &node.value {
            Some(v) => {
                let v = cstr(v, "a description value")?;
                // SAFETY: `parent` is a node of this live streaminfo; strings are copied.
                unsafe { (self.api.append_child_value)(parent, name.as_ptr(), v.as_ptr()) };
                return Ok(());
            }
            // SAFETY: as above.
            None => unsafe { (self.api.append_child)(parent, name.as_ptr()) },
        };
        for c in &node.children {
            self.append(el, c)?;
        }
        Ok(())
    }

    pub fn name(&self) -> String {
        // SAFETY: live streaminfo; the string is copied at once.
        owned(unsafe { (self.api.get_name)(self.ptr) })
    }

    pub fn type_(&self) -> String {
        // SAFETY: as for `name`.
        owned(unsafe { (self.api.get_type)(self.ptr) })
    }

    pub fn source_id(&self) -> String {
        // SAFETY: as for `name`.
        owned(unsafe { (self.api.get_source_id)(self.ptr) })
    }

    pub fn channel_count(&self) -> usize {
        // SAFETY: live streaminfo.
        unsafe { (self.api.get_channel_count)(self.ptr) }.max(0) as usize
    }

    pub fn nominal_srate(&self) -> f64 {
        // SAFETY: live streaminfo.
        unsafe { (self.api.get_nominal_srate)(self.ptr) }
    }

    /// True for string (marker) streams.
    pub fn is_string(&self) -> bool {
        // SAFETY: live streaminfo.
        unsafe { (self.api.get_channel_format)(self.ptr) == ffi::CFT_STRING }
    }

    /// `(label, unit)` of each `desc/channels/channel`, as far as the description has them.
    pub fn channels(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let (channels, channel) = (c"channels", c"channel");
        let (label, unit) = (c"label", c"unit");
        // SAFETY: every node pointer comes from this live streaminfo's tree; `lsl_child` and
        // `lsl_next_sibling_n` return an empty node (never null) at the end, which `lsl_empty`
        // detects; strings are copied at once.
        unsafe {
            let root = (self.api.get_desc)(self.ptr);
            let mut ch = (self.api.child)((self.api.child)(root, channels.as_ptr()), channel.as_ptr());
            while !ch.is_null() && (self.api.empty)(ch) == 0 && out.len() < 65536 {
                out.push((
                    owned((self.api.child_value_n)(ch, label.as_ptr())),
                    owned((self.api.child_value_n)(ch, unit.as_ptr())),
                ));
                ch = (self.api.next_sibling_n)(ch, channel.as_ptr());
            }
        }
        out
    }
}

impl Drop for StreamInfo {
    fn drop(&mut self) {
        // SAFETY: we own `ptr` and drop it once.
        unsafe { (self.api.destroy_streaminfo)(self.ptr) }
    }
}

/// Finds the first stream matching `query`, waiting up to `timeout_s`.
pub fn resolve(query: &Query, timeout_s: f64) -> Result<Option<StreamInfo>, LslError> {
    let api = api()?;
    let mut buf: [ffi::StreamInfoPtr; 8] = [std::ptr::null_mut(); 8];
    let n = match query.as_call() {
        query::Call::Prop(p, v) => {
            let (p, v) = (cstr(p, "the property")?, cstr(v, "the value")?);
            // SAFETY: `buf` has room for 8 results; strings outlive the call.
            unsafe {
                (api.resolve_byprop)(buf.as_mut_ptr(), buf.len() as u32, p.as_ptr(), v.as_ptr(), 1, timeout_s)
            }
        }
        query::Call::Pred(pred) => {
            let pred = cstr(&pred, "`predicate`")?;
            // SAFETY: as above.
            unsafe { (api.resolve_bypred)(buf.as_mut_ptr(), buf.len() as u32, pred.as_ptr(), 1, timeout_s) }
        }
    };
    if n < 0 {
        return Err(LslError::Call(format!("resolving {query}: liblsl error {n}")));
    }
    let mut found: Vec<StreamInfo> = buf[..n as usize].iter().map(|&ptr| StreamInfo { api, ptr }).collect();
    Ok(if found.is_empty() { None } else { Some(found.swap_remove(0)) })
}

/// A stream this process publishes (`lsl_outlet`).
pub struct Outlet {
    api: &'static Api,
    ptr: ffi::OutletPtr,
    channels: usize,
}

// SAFETY: liblsl outlets may be used from any thread (one at a time; `&mut self` ensures that).
unsafe impl Send for Outlet {}

impl Outlet {
    /// Publishes `info`; `max_buffered_s` is how much data liblsl keeps for a slow consumer.
    pub fn new(info: &StreamInfo, max_buffered_s: i32) -> Result<Outlet, LslError> {
        // SAFETY: `info` is live; liblsl copies it.
        let ptr = unsafe { (info.api.create_outlet)(info.ptr, 0, max_buffered_s) };
        if ptr.is_null() {
            return Err(LslError::Call(format!("liblsl could not create the outlet `{}`", info.name())));
        }
        Ok(Outlet { api: info.api, ptr, channels: info.channel_count() })
    }

    /// Pushes `timestamps.len()` samples, sample-major in `data` (channels values each), each
    /// with its own LSL timestamp. Never allocates on the Rust side.
    pub fn push_chunk(&mut self, data: &[f32], timestamps: &[f64]) -> Result<(), LslError> {
        if data.len() != timestamps.len() * self.channels {
            return Err(LslError::Call("chunk size does not match the timestamps".into()));
        }
        // SAFETY: `data` has `len` floats and `timestamps` one per sample, as checked above;
        // liblsl copies both before returning.
        let ec = unsafe {
            (self.api.push_chunk_ftnp)(self.ptr, data.as_ptr(), data.len() as _, timestamps.as_ptr(), 1)
        };
        if ec < 0 {
            return Err(LslError::Call(format!("liblsl push failed ({ec})")));
        }
        Ok(())
    }

    /// Pushes one string sample (a marker) at LSL time `timestamp`.
    pub fn push_string(&mut self, text: &str, timestamp: f64) -> Result<(), LslError> {
        let s = cstr(text, "a marker")?;
        let one = [s.as_ptr()];
        // SAFETY: a one-channel string outlet takes an array of one C string, copied by liblsl.
        let ec = unsafe { (self.api.push_sample_strtp)(self.ptr, one.as_ptr(), timestamp, 1) };
        if ec < 0 {
            return Err(LslError::Call(format!("liblsl push failed ({ec})")));
        }
        Ok(())
    }
}

impl Drop for Outlet {
    fn drop(&mut self) {
        // SAFETY: we own `ptr` and drop it once.
        unsafe { (self.api.destroy_outlet)(self.ptr) }
    }
}

/// A subscription to another program's stream (`lsl_inlet`).
pub struct Inlet {
    api: &'static Api,
    ptr: ffi::InletPtr,
    channels: usize,
}

// SAFETY: liblsl inlets may be used from any thread (one at a time; `&mut self` ensures that).
unsafe impl Send for Inlet {}

impl Inlet {
    /// Subscribes to `info`. `recover`: liblsl re-resolves the stream by its `source_id` when
    /// its outlet goes away and comes back.
    pub fn new(info: &StreamInfo, max_buffered_s: i32, recover: bool) -> Result<Inlet, LslError> {
        // SAFETY: `info` is live; liblsl copies it.
        let ptr = unsafe { (info.api.create_inlet)(info.ptr, max_buffered_s, 0, recover as i32) };
        if ptr.is_null() {
            return Err(LslError::Call(format!("liblsl could not open an inlet to `{}`", info.name())));
        }
        Ok(Inlet { api: info.api, ptr, channels: info.channel_count() })
    }

    /// The stream's full description (with `desc`), waiting up to `timeout_s`.
    pub fn full_info(&mut self, timeout_s: f64) -> Result<StreamInfo, LslError> {
        let mut ec = 0;
        // SAFETY: live inlet; `ec` is a valid out-pointer.
        let ptr = unsafe { (self.api.get_fullinfo)(self.ptr, timeout_s, &mut ec) };
        if ptr.is_null() || ec != ffi::ERR_NONE {
            return Err(LslError::Call(format!(
                "could not read the stream's description (liblsl error {ec})"
            )));
        }
        Ok(StreamInfo { api: self.api, ptr })
    }

    /// Opens the data connection now rather than on the first pull.
    pub fn open(&mut self, timeout_s: f64) -> Result<(), LslError> {
        let mut ec = 0;
        // SAFETY: live inlet; `ec` is a valid out-pointer.
        unsafe { (self.api.open_stream)(self.ptr, timeout_s, &mut ec) };
        if ec != ffi::ERR_NONE {
            return Err(LslError::Call(format!("could not open the stream (liblsl error {ec})")));
        }
        Ok(())
    }

    /// Seconds to add to the outlet's timestamps to put them on this machine's LSL clock.
    pub fn time_correction(&mut self, timeout_s: f64) -> Result<Option<f64>, PullError> {
        let mut ec = 0;
        // SAFETY: live inlet; `ec` is a valid out-pointer.
        let tc = unsafe { (self.api.time_correction)(self.ptr, timeout_s, &mut ec) };
        check(ec)?;
        Ok((ec == ffi::ERR_NONE).then_some(tc))
    }

    /// Waits up to `timeout_s` for one sample into `sample` (one value per channel); its
    /// timestamp, or `None` on timeout.
    pub fn pull_sample(&mut self, sample: &mut [f32], timeout_s: f64) -> Result<Option<f64>, PullError> {
        let n = sample.len().min(self.channels);
        let mut ec = 0;
        // SAFETY: `sample` has room for `n` floats; `ec` is a valid out-pointer.
        let ts =
            unsafe { (self.api.pull_sample_f)(self.ptr, sample.as_mut_ptr(), n as i32, timeout_s, &mut ec) };
        check(ec)?;
        Ok((ts != 0.0).then_some(ts))
    }

    /// Takes the samples already received, without waiting, into `data` (sample-major) and
    /// `timestamps`; how many samples.
    pub fn pull_available(&mut self, data: &mut [f32], timestamps: &mut [f64]) -> Result<usize, PullError> {
        let samples = timestamps.len().min(data.len() / self.channels.max(1));
        if samples == 0 {
            return Ok(0);
        }
        let mut ec = 0;
        // SAFETY: both buffers have room for `samples` samples; `ec` is a valid out-pointer.
        let got = unsafe {
            (self.api.pull_chunk_f)(
                self.ptr,
                data.as_mut_ptr(),
                timestamps.as_mut_ptr(),
                (samples * self.channels) as _,
                samples as _,
                0.0,
                &mut ec,
            )
        };
        check(ec)?;
        Ok(got as usize / self.channels.max(1))
    }

    /// Waits up to `timeout_s` for a string sample (a marker): its text and timestamp.
    pub fn pull_string(&mut self, timeout_s: f64) -> Result<Option<(String, f64)>, PullError> {
        let mut s: *mut c_char = std::ptr::null_mut();
        let mut ec = 0;
        // SAFETY: room for one string pointer, which liblsl fills with a string we must free.
        let ts = unsafe { (self.api.pull_sample_str)(self.ptr, &mut s, 1, timeout_s, &mut ec) };
        let text = if s.is_null() {
            None
        } else {
            let t = owned(s);
            // SAFETY: `s` was allocated by liblsl for us and is freed once.
            unsafe { (self.api.destroy_string)(s) };
            Some(t)
        };
        check(ec)?;
        Ok(match (text, ts != 0.0) {
            (Some(t), true) => Some((t, ts)),
            _ => None,
        })
    }
}

impl Drop for Inlet {
    fn drop(&mut self) {
        // SAFETY: we own `ptr` and drop it once.
        unsafe { (self.api.destroy_inlet)(self.ptr) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_says_how_to_install_it() {
        // EEGD_LIBLSL naming nothing is the only place looked.
        let e = Api::open(std::ffi::OsStr::new("/nonexistent/liblsl.so")).err().map(|e| e.to_string());
        let msg = LslError::NotInstalled(e.unwrap_or_default()).to_string();
        assert!(
            msg.contains("liblsl") && msg.contains("EEGD_LIBLSL") && msg.contains("pip install pylsl"),
            "{msg}"
        );
    }
}
