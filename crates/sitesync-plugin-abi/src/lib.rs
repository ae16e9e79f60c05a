//! The C ABI between sitesync and its transform plugins, version 1.1.
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
//!   reported as [`STATUS_PANIC`] with a message;
//! - **minors only append**: a minor version adds fields at the end of [`PluginV1`] and
//!   [`EntryOut`], never elsewhere. The table's `abi_minor` says which layout the plugin was built
//!   with, for the table and for the entries it emits (an array of 1.0 [`EntryOut`]s is an array
//!   of [`EntryOutV1_0`]). A host loads every minor up to its own.
//!
//! What 1.1 added: an emitted entry may carry its own bytes ([`EntryOut::body`], an inline body)
//! instead of its source's file, and then needs no source ([`NO_SOURCE`]); and the table's
//! optional [`PluginV1::finish`], called once after the last batch, may emit entries too.

#![no_std]

use core::ffi::c_void;

/// The major version: a change that breaks either side. It is part of the entry symbol's name.
pub const ABI_MAJOR: u32 = 1;
/// The minor version: additions a newer host can handle but an older one cannot.
pub const ABI_MINOR: u32 = 1;
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

/// Bytes that are not text (an inline body). A null `ptr` means "absent", which differs from no
/// bytes (non-null `ptr`, `len` 0).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Bytes {
    pub ptr: *const u8,
    pub len: usize,
}

impl Bytes {
    pub const ABSENT: Bytes = Bytes { ptr: core::ptr::null(), len: 0 };

    pub const fn new(bytes: &[u8]) -> Bytes {
        Bytes { ptr: bytes.as_ptr(), len: bytes.len() }
    }

    pub fn from_option(bytes: Option<&[u8]>) -> Bytes {
        bytes.map_or(Bytes::ABSENT, Bytes::new)
    }

    pub fn is_absent(&self) -> bool {
        self.ptr.is_null()
    }

    /// The bytes viewed.
    ///
    /// # Safety
    /// `ptr` must be null or point to `len` readable bytes that outlive `'a`.
    pub unsafe fn as_bytes<'a>(&self) -> Option<&'a [u8]> {
        // SAFETY: the same contract as `Str`'s.
        unsafe { Str { ptr: self.ptr, len: self.len }.as_bytes() }
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

impl Headers {
    /// No header set and no metadata.
    pub const NONE: Headers = Headers {
        cache_control: Str::ABSENT,
        content_type: Str::ABSENT,
        content_encoding: Str::ABSENT,
        content_disposition: Str::ABSENT,
        content_language: Str::ABSENT,
        storage_class: Str::ABSENT,
        website_redirect_location: Str::ABSENT,
        metadata: core::ptr::null(),
        metadata_len: 0,
    };
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

/// The `source` of an emitted entry that publishes no input entry's file: a page the plugin
/// generated. Allowed only with an inline [`body`](EntryOut::body) (1.1).
pub const NO_SOURCE: usize = usize::MAX;

/// An entry as the plugin hands it back: the file of input entry `source` (an index into the
/// batch of the current call) published under `key` with `headers`. Emitting several entries with
/// the same `source` publishes one file under several keys: the host uploads it once and makes
/// the others by server-side copy.
///
/// Since 1.1, an entry may carry its own bytes in `body` instead of its source's file; its size
/// is then their length, its modification time its source's, and with `source` [`NO_SOURCE`] (a
/// generated page, the only source allowed in [`PluginV1::finish`]) 0. The host copies the bytes
/// during the callback and compares them with the object by content; an entry with a body is
/// always uploaded under its own key, never copied from another. Start from a zeroed entry so
/// that a field a later minor appends is absent.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EntryOut {
    pub source: usize,
    pub key: Str,
    pub headers: Headers,
    /// 1.1: the bytes to publish; absent (null) publishes the source's file.
    pub body: Bytes,
}

/// An emitted entry as ABI 1.0 laid it out, the start of [`EntryOut`]: what a plugin whose table
/// says 1.0 passes to [`EmitFn`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EntryOutV1_0 {
    pub source: usize,
    pub key: Str,
    pub headers: Headers,
}

/// Host callback receiving `n` output entries, laid out as the minor of the plugin's table says
/// ([`EntryOut`], or [`EntryOutV1_0`] for a 1.0 table); the host copies them before it returns. Returns
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

/// 1.1: called once after the last batch, for the entries a plugin can only make once it has seen
/// every entry (an index of a folder). It emits them through `emit` like `transform`; each needs
/// an inline body and [`NO_SOURCE`], as there is no batch to name. Not called when the run
/// stopped before the end, or when the walk of the source failed.
pub type FinishFn =
    unsafe extern "C" fn(state: *mut c_void, emit: EmitFn, emit_ctx: *mut c_void, error: ErrorSink) -> Status;

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
    /// 1.1: may be `None` (a null pointer): the plugin has nothing to emit at the end.
    pub finish: Option<FinishFn>,
}

// SAFETY: the table is immutable and its strings point to static data.
unsafe impl Sync for PluginV1 {}

/// The table as ABI 1.0 laid it out, the start of [`PluginV1`]: what a 1.0 plugin returns (its
/// `struct_size` says so), with no `finish`.
#[repr(C)]
#[derive(Debug)]
pub struct PluginV1_0 {
    pub abi_major: u32,
    pub abi_minor: u32,
    pub struct_size: usize,
    pub name: Str,
    pub version: Str,
    pub create: CreateFn,
    pub transform: TransformFn,
    pub destroy: DestroyFn,
}

// SAFETY: as for `PluginV1`.
unsafe impl Sync for PluginV1_0 {}

/// The smallest table a plugin built for `minor` may return: `size_of` that minor's table.
pub const fn table_size(minor: u32) -> usize {
    match minor {
        0 => core::mem::size_of::<PluginV1_0>(),
        _ => core::mem::size_of::<PluginV1>(),
    }
}

/// The size of one emitted entry of a plugin built for `minor`: the stride of the array it passes
/// to [`EmitFn`].
pub const fn entry_out_size(minor: u32) -> usize {
    match minor {
        0 => core::mem::size_of::<EntryOutV1_0>(),
        _ => core::mem::size_of::<EntryOut>(),
    }
}

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
        assert_eq!(size_of::<Bytes>(), 16);
        assert_eq!(size_of::<Headers>(), 128);
        assert_eq!(size_of::<EntryView>(), 160);
        assert_eq!(size_of::<EntryOut>(), 168);
        assert_eq!(size_of::<PluginV1>(), 80);
        assert_eq!(size_of::<TableHead>(), 16);
        assert_eq!(size_of::<Option<FinishFn>>(), 8, "a nullable function pointer");
    }

    /// 1.1 only appended: a 1.0 table and a 1.0 entry are the start of 1.1's.
    #[test]
    fn version_1_0_is_the_start_of_1_1() {
        assert_eq!(size_of::<EntryOutV1_0>(), 152);
        assert_eq!(size_of::<PluginV1_0>(), 72);
        assert_eq!(core::mem::offset_of!(EntryOut, body), size_of::<EntryOutV1_0>());
        assert_eq!(core::mem::offset_of!(EntryOut, headers), core::mem::offset_of!(EntryOutV1_0, headers));
        assert_eq!(core::mem::offset_of!(PluginV1, finish), size_of::<PluginV1_0>());
        assert_eq!(core::mem::offset_of!(PluginV1, destroy), core::mem::offset_of!(PluginV1_0, destroy));
        assert_eq!((table_size(0), table_size(1)), (72, 80));
        assert_eq!((entry_out_size(0), entry_out_size(1)), (152, 168));
    }
}
