//! The host side of the plugin ABI: loading a listed library, checking its version, and calling
//! it once per batch.
//!
//! A library is loaded only when a `[[transform]]` table names it, in chain order, and is never
//! unloaded (its handle is leaked): code or static data of a plugin may be referenced until the
//! process exits. Entries go in as views borrowing the batch for one call; results come back
//! through [`emit`], which copies them into new [`LocalFile`]s before returning. Nothing the
//! plugin allocated is freed here, and nothing allocated here is freed by the plugin.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sitesync_plugin_abi as abi;

use super::Transform;
use crate::model::{LocalFile, ObjectMeta};

/// `[[transform]] plugin = "plugins/<file>"`, with the plugin's own settings.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The library, resolved against the config file's directory.
    pub path: PathBuf,
    /// The path as written in the config, for messages.
    pub shown: String,
    /// Every other key of the table: handed to the plugin as JSON when it is created.
    pub settings: Map<String, Value>,
}

/// A loaded, version-checked library.
#[derive(Debug)]
pub struct LoadedPlugin {
    pub shown: String,
    pub name: String,
    pub version: String,
    pub abi_minor: u32,
    table: &'static abi::PluginV1,
}

/// The range of ABI versions this host loads, for messages.
fn supported() -> String {
    format!("{}.0 to {}.{}", abi::ABI_MAJOR, abi::ABI_MAJOR, abi::ABI_MINOR)
}

/// Loads `path` (shown as `shown` in messages) and checks that it is a plugin this host can use.
pub fn load(path: &Path, shown: &str) -> Result<&'static LoadedPlugin, String> {
    if !path.is_file() {
        return Err(format!("{shown}: no such file ({})", path.display()));
    }
    // SAFETY: loading runs the library's initialisers. Only libraries the configuration lists are
    // loaded: a plugin is trusted native code, like the sitesync binary itself.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("{shown}: cannot be loaded as a shared library: {e}"))?;
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    // SAFETY: the symbol's type is the one the ABI defines for this name.
    let entry = match unsafe { library.get::<abi::EntryFn>(abi::ENTRY_SYMBOL) } {
        Ok(entry) => *entry,
        Err(_) => return Err(other_major(library, shown)),
    };
    // SAFETY: the entry function takes nothing and returns a pointer to a static table.
    let table = unsafe { entry() };
    if table.is_null() {
        return Err(format!("{shown}: sitesync_plugin_v1 returned no table"));
    }
    // SAFETY: every table starts with the head, whatever its version.
    let head = unsafe { *table.cast::<abi::TableHead>() };
    if head.abi_major != abi::ABI_MAJOR || head.abi_minor > abi::ABI_MINOR {
        return Err(format!(
            "{shown} was built for plugin ABI {}.{}, but this sitesync loads plugin ABI {}; rebuild the plugin against sitesync-plugin-abi {}.{}",
            head.abi_major,
            head.abi_minor,
            supported(),
            abi::ABI_MAJOR,
            abi::ABI_MINOR
        ));
    }
    if head.struct_size < std::mem::size_of::<abi::PluginV1>() {
        return Err(format!(
            "{shown}: its plugin table is {} bytes, smaller than the {} of ABI {}.{}",
            head.struct_size,
            std::mem::size_of::<abi::PluginV1>(),
            head.abi_major,
            head.abi_minor
        ));
    }
    // SAFETY: checked above: a 1.x table at least as large as 1.0's.
    let table: &'static abi::PluginV1 = unsafe { &*table };
    let text =
        |s: abi::Str| unsafe { s.as_bytes() }.map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    let plugin = LoadedPlugin {
        shown: shown.to_owned(),
        name: text(table.name),
        version: text(table.version),
        abi_minor: head.abi_minor,
        table,
    };
    tracing::debug!(
        "plugin: loaded {} from {} ({} {}, plugin ABI {}.{})",
        shown,
        path.display(),
        plugin.name,
        plugin.version,
        abi::ABI_MAJOR,
        plugin.abi_minor
    );
    Ok(Box::leak(Box::new(plugin)))
}

/// The message for a library without the v1 entry symbol: which major it was built for, when it
/// exports another version's symbol, or that it is not a plugin.
fn other_major(library: &libloading::Library, shown: &str) -> String {
    for major in (0..=16u32).filter(|m| *m != abi::ABI_MAJOR) {
        let name = format!("sitesync_plugin_v{major}\0");
        // SAFETY: every major's entry function returns a table that starts with the head.
        if let Ok(entry) = unsafe { library.get::<abi::EntryFn>(name.as_bytes()) } {
            let table = unsafe { entry() };
            let minor = if table.is_null() { 0 } else { unsafe { (*table.cast::<abi::TableHead>()).abi_minor } };
            return format!(
                "{shown} was built for plugin ABI {major}.{minor}, but this sitesync loads plugin ABI {}",
                supported()
            );
        }
    }
    format!("{shown} is not a sitesync plugin: it exports no `sitesync_plugin_v{}` function", abi::ABI_MAJOR)
}

/// A created plugin: its opaque state and buffers reused between batches.
pub struct Instance {
    plugin: &'static LoadedPlugin,
    state: *mut c_void,
}

// SAFETY: the ABI lets the host call an instance from any thread, one call at a time; `&mut self`
// on every call ensures the latter.
unsafe impl Send for Instance {}

impl Instance {
    pub fn create(plugin: &'static LoadedPlugin, settings: &str) -> Result<Instance, String> {
        let mut state: *mut c_void = std::ptr::null_mut();
        let mut message = String::new();
        // SAFETY: the config string lives for the call; the error sink copies what it receives.
        let status = unsafe { (plugin.table.create)(abi::Str::new(settings), &mut state, error_sink(&mut message)) };
        match status {
            abi::STATUS_OK => Ok(Instance { plugin, state }),
            status => Err(format!("{}: cannot create the plugin: {}", plugin.shown, failure(status, message))),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: the state came from this plugin's `create` and is destroyed once.
        unsafe { (self.plugin.table.destroy)(self.state) };
    }
}

fn failure(status: abi::Status, message: String) -> String {
    let message = if message.is_empty() { "no message".to_owned() } else { message };
    match status {
        abi::STATUS_PANIC => format!("it panicked: {message}"),
        abi::STATUS_ERROR => message,
        other => format!("unknown status {other}: {message}"),
    }
}

fn error_sink(message: &mut String) -> abi::ErrorSink {
    abi::ErrorSink { ctx: (message as *mut String).cast(), report }
}

unsafe extern "C" fn report(ctx: *mut c_void, message: abi::Str) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `String` of `error_sink`; the message lives for the call.
        let out = unsafe { &mut *ctx.cast::<String>() };
        let bytes = unsafe { message.as_bytes() }.unwrap_or_default();
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&String::from_utf8_lossy(bytes));
    }));
}

/// What `emit` writes into during one call.
struct Emitted<'a> {
    input: &'a [LocalFile],
    out: Vec<LocalFile>,
    error: Option<String>,
}

unsafe extern "C" fn emit(ctx: *mut c_void, entries: *const abi::EntryOut, n: usize) -> abi::Status {
    let copied = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `Emitted` of the current call; the plugin passes `n` entries.
        let emitted = unsafe { &mut *ctx.cast::<Emitted<'_>>() };
        let entries =
            if n == 0 || entries.is_null() { &[][..] } else { unsafe { std::slice::from_raw_parts(entries, n) } };
        for entry in entries {
            match copy_out(emitted.input, entry) {
                Ok(file) => emitted.out.push(file),
                Err(why) => {
                    emitted.error.get_or_insert(why);
                    return abi::STATUS_ERROR;
                }
            }
        }
        abi::STATUS_OK
    }));
    copied.unwrap_or(abi::STATUS_ERROR)
}

/// Copies one output entry into a new entry for the file of its source.
fn copy_out(input: &[LocalFile], entry: &abi::EntryOut) -> Result<LocalFile, String> {
    let source = input
        .get(entry.source)
        .ok_or_else(|| format!("emitted an entry for source {} of a batch of {}", entry.source, input.len()))?;
    let text = |s: abi::Str, what: &str| -> Result<Option<String>, String> {
        // SAFETY: the plugin's strings live for the duration of the callback.
        match unsafe { s.as_bytes() } {
            None => Ok(None),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(t) => Ok(Some(t.to_owned())),
                Err(_) => Err(format!("emitted a {what} that is not UTF-8 (for {})", source.key)),
            },
        }
    };
    let key = text(entry.key, "key")?.ok_or_else(|| format!("emitted an entry without a key (for {})", source.key))?;
    let h = &entry.headers;
    let pairs = if h.metadata.is_null() || h.metadata_len == 0 {
        &[][..]
    } else {
        // SAFETY: the plugin passes `metadata_len` pairs that live for the callback.
        unsafe { std::slice::from_raw_parts(h.metadata, h.metadata_len) }
    };
    let mut meta = ObjectMeta {
        cache_control: text(h.cache_control, "header")?,
        content_type: text(h.content_type, "header")?,
        content_encoding: text(h.content_encoding, "header")?,
        content_disposition: text(h.content_disposition, "header")?,
        content_language: text(h.content_language, "header")?,
        storage_class: text(h.storage_class, "header")?,
        website_redirect_location: text(h.website_redirect_location, "header")?,
        ..ObjectMeta::default()
    };
    for kv in pairs {
        if let (Some(k), Some(v)) = (text(kv.key, "metadata name")?, text(kv.value, "metadata value")?) {
            meta.metadata.insert(k, v);
        }
    }
    Ok(LocalFile {
        key,
        body: source.body.clone(),
        size: source.size,
        mtime: source.mtime,
        meta: (!meta.is_empty()).then(|| Box::new(meta)),
        copy_of: source.copy_of.clone(),
    })
}

/// Views of one batch, borrowing it for one call.
fn views(batch: &[LocalFile], pairs: &mut Vec<abi::KeyValue>) -> Vec<abi::EntryView> {
    let opt = |s: &Option<String>| abi::Str::from_option(s.as_deref());
    pairs.clear();
    for f in batch {
        if let Some(m) = &f.meta {
            pairs.extend(
                m.metadata.iter().map(|(k, v)| abi::KeyValue { key: abi::Str::new(k), value: abi::Str::new(v) }),
            );
        }
    }
    let mut at = 0;
    batch
        .iter()
        .map(|f| {
            let none = abi::Str::ABSENT;
            let mut headers = abi::Headers {
                cache_control: none,
                content_type: none,
                content_encoding: none,
                content_disposition: none,
                content_language: none,
                storage_class: none,
                website_redirect_location: none,
                metadata: std::ptr::null(),
                metadata_len: 0,
            };
            if let Some(m) = &f.meta {
                headers.cache_control = opt(&m.cache_control);
                headers.content_type = opt(&m.content_type);
                headers.content_encoding = opt(&m.content_encoding);
                headers.content_disposition = opt(&m.content_disposition);
                headers.content_language = opt(&m.content_language);
                headers.storage_class = opt(&m.storage_class);
                headers.website_redirect_location = opt(&m.website_redirect_location);
                headers.metadata = pairs[at..at + m.metadata.len()].as_ptr();
                headers.metadata_len = m.metadata.len();
                at += m.metadata.len();
            }
            abi::EntryView { key: abi::Str::new(&f.key), size: f.size, mtime_ns: f.mtime.0, headers }
        })
        .collect()
}

impl Transform for Instance {
    fn apply(&mut self, batch: Vec<LocalFile>) -> Result<Vec<LocalFile>, String> {
        let mut pairs = Vec::new();
        let views = views(&batch, &mut pairs);
        let mut emitted = Emitted { input: &batch, out: Vec::with_capacity(batch.len()), error: None };
        let mut message = String::new();
        // SAFETY: the views and `batch` outlive the call; `emit` and `report` copy what they get.
        let status = unsafe {
            (self.plugin.table.transform)(
                self.state,
                views.as_ptr(),
                views.len(),
                emit,
                (&mut emitted as *mut Emitted<'_>).cast(),
                error_sink(&mut message),
            )
        };
        if let Some(why) = emitted.error {
            return Err(why);
        }
        match status {
            abi::STATUS_OK => Ok(emitted.out),
            status => Err(failure(status, message)),
        }
    }
}
