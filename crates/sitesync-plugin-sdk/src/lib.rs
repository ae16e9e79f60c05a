//! Writing a sitesync transform plugin in safe Rust: implement [`Transform`], then call
//! [`export_plugin!`] once.
//!
//! The macro exports the C entry symbol of [`abi`] and wraps the trait in the ABI's rules: input
//! entries are borrowed views ([`EntryRef`]), results are handed to the host in one callback per batch and
//! copied by it, and every call runs under `catch_unwind`, so a panic becomes a status and a
//! message instead of unwinding into the host. The table it exports is of ABI 1.1: an entry may
//! carry its own bytes ([`Entry::generated`], [`Entry::with_body`]), and [`Transform::finish`]
//! runs once after the last batch.
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

use abi::{Bytes, EntryOut, EntryView, ErrorSink, Headers as RawHeaders, KeyValue, Status, Str};

/// A plugin: made once per run from its `sync.toml` table, then called once per batch.
pub trait Transform: Sized + 'static {
    /// Builds the plugin from its table (every key but `plugin`), as a JSON object.
    fn new(config: serde_json::Value) -> Result<Self, String>;

    /// Returns the entries to publish for this batch: keep an entry with [`EntryRef::to_entry`],
    /// drop it by not returning it, and publish its file under more keys by returning several
    /// entries made from it.
    fn transform(&mut self, batch: &[EntryRef<'_>]) -> Result<Vec<Entry>, String>;

    /// Returns the entries to publish once every batch was seen (the index of a folder): each
    /// must be [`Entry::generated`], as there is no batch to take a file from. Not called when the
    /// run stopped early or the walk of the source failed. By default, nothing.
    fn finish(&mut self) -> Result<Vec<Entry>, String> {
        Ok(Vec::new())
    }
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
        Entry { source: Some(self.index), key: self.key().to_owned(), headers: self.headers(), body: None }
    }
}

/// An output entry: published under `key` with `headers`, with the file of input entry `source`
/// or, when it has one, its own `body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The input entry (its index in the batch) whose file this publishes; `None` for a generated
    /// entry, which needs a `body`.
    pub source: Option<usize>,
    pub key: String,
    pub headers: Headers,
    /// Bytes to publish instead of the source's file: an inline body. sitesync compares them
    /// with the object by content, and uploads them from memory.
    pub body: Option<Vec<u8>>,
}

impl Entry {
    /// A page of the plugin's own, from no input entry: `bytes` published under `key`.
    pub fn generated(key: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Entry {
        Entry { source: None, key: key.into(), headers: Headers::default(), body: Some(bytes.into()) }
    }

    /// Publishes `bytes` instead of the source's file (the key and headers stay).
    pub fn with_body(mut self, bytes: impl Into<Vec<u8>>) -> Entry {
        self.body = Some(bytes.into());
        self
    }

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
            hand_over(&out, emit, emit_ctx)
        };
        settle(catch_unwind(AssertUnwindSafe(run)), &error)
    }

    pub unsafe extern "C" fn finish<T: Transform>(
        state: *mut c_void,
        emit: abi::EmitFn,
        emit_ctx: *mut c_void,
        error: ErrorSink,
    ) -> Status {
        let run = || -> Result<(), String> {
            // SAFETY: `state` is what `create::<T>` returned; the host calls one instance at a time.
            let plugin = unsafe { &mut *state.cast::<T>() };
            let out = plugin.finish()?;
            if let Some(entry) = out.iter().find(|e| e.source.is_some() || e.body.is_none()) {
                return Err(format!(
                    "finish returned {}, which is not a generated entry (Entry::generated)",
                    entry.key
                ));
            }
            hand_over(&out, emit, emit_ctx)
        };
        settle(catch_unwind(AssertUnwindSafe(run)), &error)
    }

    /// Hands `out` to the host in one callback, which copies it.
    fn hand_over(out: &[Entry], emit: abi::EmitFn, emit_ctx: *mut c_void) -> Result<(), String> {
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
                    source: entry.source.unwrap_or(abi::NO_SOURCE),
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
                    body: Bytes::from_option(entry.body.as_deref()),
                }
            })
            .collect();
        // SAFETY: the host copies the entries during the call.
        if !raw.is_empty() && unsafe { emit(emit_ctx, raw.as_ptr(), raw.len()) } != abi::STATUS_OK {
            return Err(String::new());
        }
        Ok(())
    }

    /// The status of a call, its message reported (an empty one: the host already holds why).
    fn settle(outcome: std::thread::Result<Result<(), String>>, error: &ErrorSink) -> Status {
        match outcome {
            Ok(Ok(())) => abi::STATUS_OK,
            Ok(Err(message)) => {
                if !message.is_empty() {
                    report(error, &message);
                }
                abi::STATUS_ERROR
            }
            Err(payload) => {
                report(error, &panic_message(&*payload));
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
                finish: Some($crate::__private::finish::<$ty>),
            };
            &TABLE
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps every entry, rewrites the body of `page.html`, and makes `made.txt` at the end; or,
    /// told so, returns an entry with a source from `finish`.
    struct Pages {
        wrong_finish: bool,
    }

    impl Transform for Pages {
        fn new(config: serde_json::Value) -> Result<Self, String> {
            Ok(Pages { wrong_finish: config.get("wrong").is_some() })
        }

        fn transform(&mut self, batch: &[EntryRef<'_>]) -> Result<Vec<Entry>, String> {
            Ok(batch
                .iter()
                .map(|e| if e.key() == "page.html" { e.to_entry().with_body("<p>new</p>") } else { e.to_entry() })
                .collect())
        }

        fn finish(&mut self) -> Result<Vec<Entry>, String> {
            match self.wrong_finish {
                true => Ok(vec![Entry { source: Some(0), ..Entry::generated("x", "y") }]),
                false => Ok(vec![Entry::generated("made.txt", "made").with_content_type("text/plain")]),
            }
        }
    }

    /// An emitted entry as the host copied it: source, key, body, Content-Type.
    type Copied = (usize, String, Option<Vec<u8>>, Option<String>);

    /// What the host's callbacks received, copied as the host would.
    #[derive(Default)]
    struct Host {
        entries: Vec<Copied>,
        message: String,
    }

    unsafe extern "C" fn emit(ctx: *mut c_void, entries: *const EntryOut, n: usize) -> Status {
        let host = unsafe { &mut *ctx.cast::<Host>() };
        for e in unsafe { std::slice::from_raw_parts(entries, n) } {
            let text = |s: Str| unsafe { str_of(s) }.map(str::to_owned);
            let body = unsafe { e.body.as_bytes() }.map(<[u8]>::to_vec);
            host.entries.push((e.source, text(e.key).unwrap(), body, text(e.headers.content_type)));
        }
        abi::STATUS_OK
    }

    unsafe extern "C" fn report(ctx: *mut c_void, message: Str) {
        let host = unsafe { &mut *ctx.cast::<Host>() };
        host.message.push_str(unsafe { str_of(message) }.unwrap());
    }

    fn created(config: &str) -> *mut c_void {
        let mut state = std::ptr::null_mut();
        let mut host = Host::default();
        let sink = ErrorSink { ctx: (&mut host as *mut Host).cast(), report };
        let status = unsafe { __private::create::<Pages>(Str::new(config), &mut state, sink) };
        assert_eq!(status, abi::STATUS_OK, "{}", host.message);
        state
    }

    fn view(key: &str) -> EntryView {
        let headers = RawHeaders::NONE;
        EntryView { key: Str::new(key), size: 1, mtime_ns: 0, headers }
    }

    #[test]
    fn bodies_and_generated_entries_reach_the_host() {
        let state = created("{}");
        let mut host = Host::default();
        let ctx = (&mut host as *mut Host).cast();
        let views = [view("a.css"), view("page.html")];
        let sink = ErrorSink { ctx, report };
        let status = unsafe { __private::transform::<Pages>(state, views.as_ptr(), 2, emit, ctx, sink) };
        assert_eq!(status, abi::STATUS_OK);
        assert_eq!(unsafe { __private::finish::<Pages>(state, emit, ctx, sink) }, abi::STATUS_OK);
        assert_eq!(
            host.entries,
            [
                (0, "a.css".into(), None, None),
                (1, "page.html".into(), Some(b"<p>new</p>".to_vec()), None),
                (abi::NO_SOURCE, "made.txt".into(), Some(b"made".to_vec()), Some("text/plain".into())),
            ]
        );
        unsafe { __private::destroy::<Pages>(state) };
    }

    #[test]
    fn finish_may_return_only_generated_entries() {
        let state = created(r#"{"wrong": true}"#);
        let mut host = Host::default();
        let ctx = (&mut host as *mut Host).cast();
        let status = unsafe { __private::finish::<Pages>(state, emit, ctx, ErrorSink { ctx, report }) };
        assert_eq!(status, abi::STATUS_ERROR);
        assert!(host.entries.is_empty());
        assert_eq!(host.message, "finish returned x, which is not a generated entry (Entry::generated)");
        unsafe { __private::destroy::<Pages>(state) };
    }
}
