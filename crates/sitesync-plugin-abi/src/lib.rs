//! The C ABI between sitesync and its transform plugins, version 1.0.
//!
//! Nothing with a Rust layout crosses the boundary: these are hand-written `#[repr(C)]` types, and
//! `sitesync_plugin.h` in this crate states the same layout for plugins written in C or Zig. The
//! crate has no dependencies so any plugin can use it. The rules:
//! - a plugin exports `sitesync_plugin_v1` ([`ENTRY_SYMBOL`]), a function returning a pointer to a
//!   static [`PluginV1`] table that starts with `abi_major`, `abi_minor` and `struct_size`, fields
//!   every future major keeps in place so a host can always say which version a library was built
//!   for;
//! - **borrowed in, copied out**: the host passes a batch of [`EntryView`]s borrowing host memory for
//!   the duration of one call; the plugin hands results back through the host's [`EmitFn`] and the
//!   host copies them before the callback returns. Error messages travel the same way
//!   ([`ErrorSink`]). Nothing allocated on one side is freed on the other;
//! - every function returns a [`Status`] and must not unwind: a panic is caught in the plugin and
//!   reported as [`STATUS_PANIC`] with a message.

#![no_std]

use core::ffi::c_void;

/// The major version: a change that breaks either side. It is part of the entry symbol's name.
pub const ABI_MAJOR: u32 = 1;
/// The minor version: additions a newer host can handle but an older one cannot.
pub const ABI_MINOR: u32 = 0;
/// The name of the exported entry function, NUL-terminated.
pub const ENTRY_SYMBOL: &[u8] = b"sitesync_plugin_v1\0";

/// Outcome of a call.
pub type Status = i32;
pub const STATUS_OK: Status = 0;
/// The plugin refused (bad configuration, bad input); the message says why.
pub const STATUS_ERROR: Status = 1;
/// The plugin panicked; the panic was caught and the message holds its payload.
pub const STATUS_PANIC: Status = 2;

/// A UTF-8 string that is not NUL-terminated. A null `ptr` means "absent", which differs from
/// the empty string (non-null `ptr`, `len` 0).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Str {
    pub ptr: *const u8,
    pub len: usize,
}

impl Str {
    pub const ABSENT: Str = Str { ptr: core::ptr::null(), len: 0 };

    pub const fn new(s: &str) -> Str {
        Str { ptr: s.as_ptr(), len: s.len() }
    }

    pub fn from_option(s: Option<&str>) -> Str {
        s.map_or(Str::ABSENT, Str::new)
    }

    pub fn is_absent(&self) -> bool {
        self.ptr.is_null()
    }

    /// The bytes viewed.
    ///
    /// # Safety
    /// `ptr` must be null or point to `len` readable bytes that outlive `'a`.
    pub unsafe fn as_bytes<'a>(&self) -> Option<&'a [u8]> {
        if self.ptr.is_null() {
            None
        } else if self.len == 0 {
            Some(&[])
        } else {
            // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
            Some(unsafe { core::slice::from_raw_parts(self.ptr, self.len) })
        }
    }
}

/// One user metadata pair (`x-amz-meta-KEY: VALUE`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct KeyValue {
    pub key: Str,
    pub value: Str,
}

/// The object headers of an entry; absent strings are not sent.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Headers {
    pub cache_control: Str,
    pub content_type: Str,
    pub content_encoding: Str,
    pub content_disposition: Str,
    pub content_language: Str,
    pub storage_class: Str,
    pub website_redirect_location: Str,
    pub metadata: *const KeyValue,
    pub metadata_len: usize,
}

/// An entry as the host passes it in; valid only during the call that received it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EntryView {
    /// The key relative to the target prefix.
    pub key: Str,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub headers: Headers,
}

/// An entry as the plugin hands it back. The file it publishes is that of input entry `source`
/// (an index into the batch of the current call); the key and headers are the plugin's. Emitting
/// several entries with the same `source` publishes one file under several keys: the host uploads
/// it once and makes the others by server-side copy.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EntryOut {
    pub source: usize,
    pub key: Str,
    pub headers: Headers,
}

/// Host callback receiving `n` output entries; the host copies them before it returns. Returns
/// [`STATUS_OK`], or [`STATUS_ERROR`] when an entry is invalid (the plugin should then stop and
/// return [`STATUS_ERROR`]; the host already holds the message).
pub type EmitFn = unsafe extern "C" fn(ctx: *mut c_void, entries: *const EntryOut, n: usize) -> Status;

/// Host callback receiving an error message; the host copies it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ErrorSink {
    pub ctx: *mut c_void,
    pub report: unsafe extern "C" fn(ctx: *mut c_void, message: Str),
}

/// Makes a plugin instance from its `sync.toml` table, serialised as a JSON object (the `plugin`
/// key removed), and stores its opaque state in `*state`.
pub type CreateFn = unsafe extern "C" fn(config_json: Str, state: *mut *mut c_void, error: ErrorSink) -> Status;

/// Transforms one batch of `n` entries, emitting the results through `emit`, in any number of
/// calls. Dropping an entry is not emitting it. The host calls an instance from one thread at a
/// time, not always the same thread.
pub type TransformFn = unsafe extern "C" fn(
    state: *mut c_void,
    entries: *const EntryView,
    n: usize,
    emit: EmitFn,
    emit_ctx: *mut c_void,
    error: ErrorSink,
) -> Status;

/// Frees the state made by `create`. The host calls it once, at the end of a run.
pub type DestroyFn = unsafe extern "C" fn(state: *mut c_void);

/// The table the entry symbol returns; it must live as long as the library (a `static`).
#[repr(C)]
#[derive(Debug)]
pub struct PluginV1 {
    pub abi_major: u32,
    pub abi_minor: u32,
    /// `size_of::<PluginV1>()` as the plugin was compiled; later minors only append fields.
    pub struct_size: usize,
    /// The plugin's name and version, for logs and the chain fingerprint: bump the version when
    /// the output for the same input and configuration changes.
    pub name: Str,
    pub version: Str,
    pub create: CreateFn,
    pub transform: TransformFn,
    pub destroy: DestroyFn,
}

// SAFETY: the table is immutable and its strings point to static data.
unsafe impl Sync for PluginV1 {}

/// The entry symbol's type: `const PluginV1 *sitesync_plugin_v1(void)`.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginV1;

/// The fields every version of the table starts with: enough to read the version of a library
/// built for another major.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TableHead {
    pub abi_major: u32,
    pub abi_minor: u32,
    pub struct_size: usize,
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;
    use core::mem::size_of;

    /// The sizes a C compiler gives the structs of `sitesync_plugin.h` on 64-bit targets.
    #[test]
    fn layout_matches_the_c_header() {
        assert_eq!(size_of::<Str>(), 16);
        assert_eq!(size_of::<Headers>(), 128);
        assert_eq!(size_of::<EntryView>(), 160);
        assert_eq!(size_of::<EntryOut>(), 152);
        assert_eq!(size_of::<PluginV1>(), 72);
        assert_eq!(size_of::<TableHead>(), 16);
    }
}
