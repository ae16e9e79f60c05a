//! Writing a sitesync transform plugin in safe Rust: implement [`Transform`], then call
//! [`export_plugin!`] once.
//!
//! The macro exports the C entry symbol of [`abi`] and wraps the trait in the ABI's rules: input
//! entries are borrowed views ([`EntryRef`]), results are handed to the host in one callback per batch and
//! copied by it, and every call runs under `catch_unwind`, so a panic becomes a status and a
//! message instead of unwinding into the host.
//!
//! ```no_run
//! use sitesync_plugin_sdk::{Entry, EntryRef, Transform, export_plugin};
//!
//! struct Upper;
//! impl Transform for Upper {
//!     fn new(_config: serde_json::Value) -> Result<Self, String> { Ok(Upper) }
//!     fn transform(&mut self, batch: &[EntryRef<'_>]) -> Result<Vec<Entry>, String> {
//!         Ok(batch.iter().map(|e| e.to_entry().with_key(e.key().to_uppercase())).collect())
//!     }
//! }
//! export_plugin!(Upper);
//! ```

pub use serde_json;
pub use sitesync_plugin_abi as abi;

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use abi::{EntryOut, EntryView, ErrorSink, Headers as RawHeaders, KeyValue, Status, Str};

/// A plugin: made once per run from its `sync.toml` table, then called once per batch.
pub trait Transform: Sized + 'static {
    /// Builds the plugin from its table (every key but `plugin`), as a JSON object.
    fn new(config: serde_json::Value) -> Result<Self, String>;

    /// Returns the entries to publish for this batch: keep an entry with [`EntryRef::to_entry`],
    /// drop it by not returning it, and publish its file under more keys by returning several
    /// entries made from it.
    fn transform(&mut self, batch: &[EntryRef<'_>]) -> Result<Vec<Entry>, String>;
}

/// Object headers; `None` is not sent (and Content-Type is then guessed from the key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pub cache_control: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub storage_class: Option<String>,
    pub website_redirect_location: Option<String>,
    /// User metadata (`x-amz-meta-NAME`).
    pub metadata: Vec<(String, String)>,
}

/// An input entry, borrowed from the host for one call.
#[derive(Clone, Copy)]
pub struct EntryRef<'a> {
    index: usize,
    view: &'a EntryView,
}

impl<'a> EntryRef<'a> {
    /// The entry's position in the batch.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The key relative to the target prefix.
    pub fn key(&self) -> &'a str {
        // SAFETY: the host passes valid UTF-8 that lives for the call.
        unsafe { str_of(self.view.key) }.unwrap_or("")
    }

    pub fn size(&self) -> u64 {
        self.view.size
    }

    /// Modification time of the file, nanoseconds since the Unix epoch.
    pub fn mtime_ns(&self) -> i64 {
        self.view.mtime_ns
    }

    /// The headers earlier transforms set, copied.
    pub fn headers(&self) -> Headers {
        let h = &self.view.headers;
        let owned = |s: Str| unsafe { str_of(s) }.map(str::to_owned);
        let metadata = unsafe { slice_of(h.metadata, h.metadata_len) }
            .iter()
            .filter_map(|kv| Some((owned(kv.key)?, owned(kv.value)?)))
            .collect();
        Headers {
            cache_control: owned(h.cache_control),
            content_type: owned(h.content_type),
            content_encoding: owned(h.content_encoding),
            content_disposition: owned(h.content_disposition),
            content_language: owned(h.content_language),
            storage_class: owned(h.storage_class),
            website_redirect_location: owned(h.website_redirect_location),
            metadata,
        }
    }

    /// This entry unchanged, as an output.
    pub fn to_entry(&self) -> Entry {
        Entry { source: self.index, key: self.key().to_owned(), headers: self.headers() }
    }
}

/// An output entry: the file of input entry `source`, published under `key` with `headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub source: usize,
    pub key: String,
    pub headers: Headers,
}

impl Entry {
    pub fn with_key(mut self, key: impl Into<String>) -> Entry {
        self.key = key.into();
        self
    }

    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Entry {
        self.headers.content_type = Some(content_type.into());
        self
    }
}

unsafe fn str_of<'a>(s: Str) -> Option<&'a str> {
    // SAFETY: forwarded to the caller.
    let bytes = unsafe { s.as_bytes() }?;
    std::str::from_utf8(bytes).ok()
}

unsafe fn slice_of<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    // SAFETY: forwarded to the caller.
    if ptr.is_null() || len == 0 { &[] } else { unsafe { std::slice::from_raw_parts(ptr, len) } }
}

fn report(error: &ErrorSink, message: &str) {
    // SAFETY: the host's callback copies the message during the call.
    unsafe { (error.report)(error.ctx, Str::new(message)) }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".into());
    format!("panicked: {what}")
}

/// The machinery behind [`export_plugin!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub unsafe extern "C" fn create<T: Transform>(config: Str, state: *mut *mut c_void, error: ErrorSink) -> Status {
        let run = || -> Result<*mut c_void, String> {
            // SAFETY: the host passes UTF-8 that lives for the call.
            let text = unsafe { str_of(config) }.ok_or("configuration is not UTF-8")?;
            let value = serde_json::from_str(text).map_err(|e| format!("configuration is not JSON: {e}"))?;
            let plugin = T::new(value)?;
            Ok(Box::into_raw(Box::new(plugin)).cast())
        };
        match catch_unwind(AssertUnwindSafe(run)) {
            Ok(Ok(ptr)) => {
                // SAFETY: the host passes a writable pointer.
                unsafe { *state = ptr };
                abi::STATUS_OK
            }
            Ok(Err(message)) => {
                report(&error, &message);
                abi::STATUS_ERROR
            }
            Err(payload) => {
                report(&error, &panic_message(&*payload));
                abi::STATUS_PANIC
            }
        }
    }

    pub unsafe extern "C" fn transform<T: Transform>(
        state: *mut c_void,
        entries: *const EntryView,
        n: usize,
        emit: abi::EmitFn,
        emit_ctx: *mut c_void,
        error: ErrorSink,
    ) -> Status {
        let run = || -> Result<(), String> {
            // SAFETY: `state` is what `create::<T>` returned; the host calls one instance at a time.
            let plugin = unsafe { &mut *state.cast::<T>() };
            // SAFETY: the host passes `n` views that live for the call.
            let views = unsafe { slice_of(entries, n) };
            let batch: Vec<EntryRef<'_>> =
                views.iter().enumerate().map(|(index, view)| EntryRef { index, view }).collect();
            let out = plugin.transform(&batch)?;
            // All metadata pairs first, so the pointers into `kvs` stay valid; then one emit.
            let kvs: Vec<KeyValue> = out
                .iter()
                .flat_map(|e| e.headers.metadata.iter())
                .map(|(k, v)| KeyValue { key: Str::new(k), value: Str::new(v) })
                .collect();
            let mut at = 0;
            let raw: Vec<EntryOut> = out
                .iter()
                .map(|entry| {
                    let h = &entry.headers;
                    let opt = |s: &Option<String>| Str::from_option(s.as_deref());
                    let metadata = kvs[at..at + h.metadata.len()].as_ptr();
                    at += h.metadata.len();
                    EntryOut {
                        source: entry.source,
                        key: Str::new(&entry.key),
                        headers: RawHeaders {
                            cache_control: opt(&h.cache_control),
                            content_type: opt(&h.content_type),
                            content_encoding: opt(&h.content_encoding),
                            content_disposition: opt(&h.content_disposition),
                            content_language: opt(&h.content_language),
                            storage_class: opt(&h.storage_class),
                            website_redirect_location: opt(&h.website_redirect_location),
                            metadata,
                            metadata_len: h.metadata.len(),
                        },
                    }
                })
                .collect();
            // SAFETY: the host copies the entries during the call.
            if !raw.is_empty() && unsafe { emit(emit_ctx, raw.as_ptr(), raw.len()) } != abi::STATUS_OK {
                return Err(String::new());
            }
            Ok(())
        };
        match catch_unwind(AssertUnwindSafe(run)) {
            Ok(Ok(())) => abi::STATUS_OK,
            Ok(Err(message)) => {
                if !message.is_empty() {
                    report(&error, &message);
                }
                abi::STATUS_ERROR
            }
            Err(payload) => {
                report(&error, &panic_message(&*payload));
                abi::STATUS_PANIC
            }
        }
    }

    pub unsafe extern "C" fn destroy<T: Transform>(state: *mut c_void) {
        if state.is_null() {
            return;
        }
        // SAFETY: `state` is what `create::<T>` returned, freed once, by this side.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(state.cast::<T>()) })));
    }
}

/// Exports `$ty` (a [`Transform`]) as a sitesync plugin: the entry symbol `sitesync_plugin_v1`
/// returning a static table, named after the crate and versioned with its version.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn sitesync_plugin_v1() -> *const $crate::abi::PluginV1 {
            static TABLE: $crate::abi::PluginV1 = $crate::abi::PluginV1 {
                abi_major: $crate::abi::ABI_MAJOR,
                abi_minor: $crate::abi::ABI_MINOR,
                struct_size: ::core::mem::size_of::<$crate::abi::PluginV1>(),
                name: $crate::abi::Str::new(env!("CARGO_PKG_NAME")),
                version: $crate::abi::Str::new(env!("CARGO_PKG_VERSION")),
                create: $crate::__private::create::<$ty>,
                transform: $crate::__private::transform::<$ty>,
                destroy: $crate::__private::destroy::<$ty>,
            };
            &TABLE
        }
    };
}
