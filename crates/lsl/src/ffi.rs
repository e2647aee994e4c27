//! The liblsl C functions eegd uses, looked up once from the shared library.
//!
//! Only the functions named here are bound; each is declared exactly as in liblsl's `lsl_c.h`
//! (liblsl 1.14 and later: every one of them is in the stable C API since 1.13).
use libloading::Library;
use std::ffi::{c_char, c_double, c_int, c_ulong, c_void};

pub type StreamInfoPtr = *mut c_void;
pub type XmlPtr = *mut c_void;
pub type OutletPtr = *mut c_void;
pub type InletPtr = *mut c_void;

/// `lsl_channel_format_t`.
pub const CFT_FLOAT32: c_int = 1;
pub const CFT_STRING: c_int = 3;

/// `lsl_error_code_t`.
pub const ERR_NONE: i32 = 0;
pub const ERR_TIMEOUT: i32 = -1;
pub const ERR_LOST: i32 = -2;

/// The bound functions. The `Library` is kept alive for as long as the pointers are.
pub struct Api {
    pub create_streaminfo: unsafe extern "C" fn(
        *const c_char,
        *const c_char,
        i32,
        c_double,
        c_int,
        *const c_char,
    ) -> StreamInfoPtr,
    pub destroy_streaminfo: unsafe extern "C" fn(StreamInfoPtr),
    pub get_desc: unsafe extern "C" fn(StreamInfoPtr) -> XmlPtr,
    pub append_child: unsafe extern "C" fn(XmlPtr, *const c_char) -> XmlPtr,
    pub append_child_value: unsafe extern "C" fn(XmlPtr, *const c_char, *const c_char) -> XmlPtr,
    pub child: unsafe extern "C" fn(XmlPtr, *const c_char) -> XmlPtr,
    pub next_sibling_n: unsafe extern "C" fn(XmlPtr, *const c_char) -> XmlPtr,
    pub child_value_n: unsafe extern "C" fn(XmlPtr, *const c_char) -> *const c_char,
    pub empty: unsafe extern "C" fn(XmlPtr) -> i32,
    pub get_name: unsafe extern "C" fn(StreamInfoPtr) -> *const c_char,
    pub get_type: unsafe extern "C" fn(StreamInfoPtr) -> *const c_char,
    pub get_source_id: unsafe extern "C" fn(StreamInfoPtr) -> *const c_char,
    pub get_channel_count: unsafe extern "C" fn(StreamInfoPtr) -> i32,
    pub get_nominal_srate: unsafe extern "C" fn(StreamInfoPtr) -> c_double,
    pub get_channel_format: unsafe extern "C" fn(StreamInfoPtr) -> c_int,
    pub create_outlet: unsafe extern "C" fn(StreamInfoPtr, i32, i32) -> OutletPtr,
    pub destroy_outlet: unsafe extern "C" fn(OutletPtr),
    pub push_chunk_ftnp: unsafe extern "C" fn(OutletPtr, *const f32, c_ulong, *const c_double, i32) -> i32,
    pub push_sample_strtp: unsafe extern "C" fn(OutletPtr, *const *const c_char, c_double, i32) -> i32,
    pub local_clock: unsafe extern "C" fn() -> c_double,
    pub resolve_byprop:
        unsafe extern "C" fn(*mut StreamInfoPtr, u32, *const c_char, *const c_char, i32, c_double) -> i32,
    pub resolve_bypred: unsafe extern "C" fn(*mut StreamInfoPtr, u32, *const c_char, i32, c_double) -> i32,
    pub create_inlet: unsafe extern "C" fn(StreamInfoPtr, i32, i32, i32) -> InletPtr,
    pub destroy_inlet: unsafe extern "C" fn(InletPtr),
    pub get_fullinfo: unsafe extern "C" fn(InletPtr, c_double, *mut i32) -> StreamInfoPtr,
    pub open_stream: unsafe extern "C" fn(InletPtr, c_double, *mut i32),
    pub time_correction: unsafe extern "C" fn(InletPtr, c_double, *mut i32) -> c_double,
    pub pull_sample_f: unsafe extern "C" fn(InletPtr, *mut f32, i32, c_double, *mut i32) -> c_double,
    pub pull_chunk_f: unsafe extern "C" fn(
        InletPtr,
        *mut f32,
        *mut c_double,
        c_ulong,
        c_ulong,
        c_double,
        *mut i32,
    ) -> c_ulong,
    pub pull_sample_str:
        unsafe extern "C" fn(InletPtr, *mut *mut c_char, i32, c_double, *mut i32) -> c_double,
    pub destroy_string: unsafe extern "C" fn(*mut c_char),
    pub library_version: unsafe extern "C" fn() -> i32,
    _lib: Library,
}

impl Api {
    /// Opens the library at `path` (a file path, or a bare name the dynamic loader searches
    /// for) and looks up every function.
    pub fn open(path: &std::ffi::OsStr) -> Result<Api, libloading::Error> {
        // SAFETY: loading liblsl runs its static initialisers, which only set up its own
        // globals; we load only files named liblsl (or the user's explicit EEGD_LIBLSL).
        let lib = unsafe { Library::new(path)? };
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the field's type is the function's C signature from `lsl_c.h`, and the
                // pointer is used only while `_lib` (moved into the same `Api`) keeps it loaded.
                *unsafe { lib.get(concat!($name, "\0").as_bytes())? }
            };
        }
        Ok(Api {
            create_streaminfo: sym!("lsl_create_streaminfo"),
            destroy_streaminfo: sym!("lsl_destroy_streaminfo"),
            get_desc: sym!("lsl_get_desc"),
            append_child: sym!("lsl_append_child"),
            append_child_value: sym!("lsl_append_child_value"),
            child: sym!("lsl_child"),
            next_sibling_n: sym!("lsl_next_sibling_n"),
            child_value_n: sym!("lsl_child_value_n"),
            empty: sym!("lsl_empty"),
            get_name: sym!("lsl_get_name"),
            get_type: sym!("lsl_get_type"),
            get_source_id: sym!("lsl_get_source_id"),
            get_channel_count: sym!("lsl_get_channel_count"),
            get_nominal_srate: sym!("lsl_get_nominal_srate"),
            get_channel_format: sym!("lsl_get_channel_format"),
            create_outlet: sym!("lsl_create_outlet"),
            destroy_outlet: sym!("lsl_destroy_outlet"),
            push_chunk_ftnp: sym!("lsl_push_chunk_ftnp"),
            push_sample_strtp: sym!("lsl_push_sample_strtp"),
            local_clock: sym!("lsl_local_clock"),
            resolve_byprop: sym!("lsl_resolve_byprop"),
            resolve_bypred: sym!("lsl_resolve_bypred"),
            create_inlet: sym!("lsl_create_inlet"),
            destroy_inlet: sym!("lsl_destroy_inlet"),
            get_fullinfo: sym!("lsl_get_fullinfo"),
            open_stream: sym!("lsl_open_stream"),
            time_correction: sym!("lsl_time_correction"),
            pull_sample_f: sym!("lsl_pull_sample_f"),
            pull_chunk_f: sym!("lsl_pull_chunk_f"),
            pull_sample_str: sym!("lsl_pull_sample_str"),
            destroy_string: sym!("lsl_destroy_string"),
            library_version: sym!("lsl_library_version"),
            _lib: lib,
        })
    }
}
