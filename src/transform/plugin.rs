//! The host side of the plugin ABI: loading a listed library, checking its version, and calling
//! it once per batch, then once more at the end ([`Transform::finish`], for plugins of ABI 1.1
//! that have a `finish`).
//!
//! A library is loaded only when a `[[transform]]` table names it, in chain order, and is never
//! unloaded (its handle is leaked): code or static data of a plugin may be referenced until the
//! process exits. Its table is read field by field as far as its version has fields (a 1.0 table
//! ends before `finish`), and the entries it emits with the stride of its version. Entries go in
//! as views borrowing the batch for one call; results come back through [`emit`], which copies
//! them (an inline body's bytes too) into new [`LocalFile`]s before returning. Nothing the plugin
//! allocated is freed here, and nothing allocated here is freed by the plugin.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use sitesync_plugin_abi as abi;

use super::{StepError, Transform};
use crate::keys::target::MAX_PUT_BYTES;
use crate::model::fields::{FIELDS, Field, ObjectMeta};
use crate::model::{LocalFile, Time};

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

/// A loaded, version-checked library: what its table holds, copied.
#[derive(Debug)]
pub struct LoadedPlugin {
    pub shown: String,
    pub name: String,
    pub version: String,
    pub abi_minor: u32,
    create: abi::CreateFn,
    transform: abi::TransformFn,
    destroy: abi::DestroyFn,
    /// 1.1 and later; `None` for a 1.0 table, which has no such field.
    finish: Option<abi::FinishFn>,
}

/// The range of ABI versions this host loads, for messages.
fn supported() -> String {
    format!("{}.0 to {}.{}", abi::ABI_MAJOR, abi::ABI_MAJOR, abi::ABI_MINOR)
}

/// Why a library listed in the config cannot be used; each names the file as the config does.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{shown}: no such file ({})", path.display())]
    Missing { shown: String, path: PathBuf },
    #[error("{shown}: cannot be loaded as a shared library: {source}")]
    NotALibrary { shown: String, source: libloading::Error },
    #[error("{shown} is not a sitesync plugin: it exports no `sitesync_plugin_v{}` function", abi::ABI_MAJOR)]
    NotAPlugin { shown: String },
    #[error("{shown}: sitesync_plugin_v1 returned no table")]
    NoTable { shown: String },
    #[error(
        "{shown} was built for plugin ABI {major}.{minor}, but this sitesync loads plugin ABI {}; rebuild the plugin against sitesync-plugin-abi {}.{}",
        supported(),
        abi::ABI_MAJOR,
        abi::ABI_MINOR
    )]
    OtherVersion { shown: String, major: u32, minor: u32 },
    #[error("{shown}: its plugin table is {size} bytes, smaller than the {expected} of ABI {major}.{minor}")]
    TableTooSmall { shown: String, size: usize, expected: usize, major: u32, minor: u32 },
    #[error("{shown}: cannot create the plugin: {failure}")]
    Create { shown: String, failure: StepError },
}

/// Loads `path` (shown as `shown` in messages) and checks that it is a plugin this host can use.
pub fn load(path: &Path, shown: &str) -> Result<&'static LoadedPlugin, PluginError> {
    let shown = shown.to_owned();
    if !path.is_file() {
        return Err(PluginError::Missing { shown, path: path.to_owned() });
    }
    // SAFETY: loading runs the library's initialisers. Only libraries the configuration lists are
    // loaded: a plugin is trusted native code, like the sitesync binary itself.
    let library = match unsafe { libloading::Library::new(path) } {
        Ok(library) => library,
        Err(source) => return Err(PluginError::NotALibrary { shown, source }),
    };
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    // SAFETY: the symbol's type is the one the ABI defines for this name.
    let entry = match unsafe { library.get::<abi::EntryFn>(abi::ENTRY_SYMBOL) } {
        Ok(entry) => *entry,
        Err(_) => return Err(other_major(library, shown)),
    };
    // SAFETY: the entry function takes nothing and returns a pointer to a static table.
    let table = unsafe { entry() };
    // SAFETY: the entry symbol of this major returns a table that lives as long as the library.
    let plugin = unsafe { read_table(table, shown) }?;
    tracing::debug!(
        "plugin: loaded {} from {} ({} {}, plugin ABI {}.{})",
        plugin.shown,
        path.display(),
        plugin.name,
        plugin.version,
        abi::ABI_MAJOR,
        plugin.abi_minor
    );
    Ok(Box::leak(Box::new(plugin)))
}

/// Checks a table's version and size, and copies what it holds, reading only the fields its
/// version has.
///
/// # Safety
/// `table` must be null or point to a table of the v1 entry symbol, at least as large as its
/// `struct_size` says, whose strings live as long as the library.
unsafe fn read_table(table: *const abi::PluginV1, shown: String) -> Result<LoadedPlugin, PluginError> {
    if table.is_null() {
        return Err(PluginError::NoTable { shown });
    }
    // SAFETY: every table starts with the head, whatever its version.
    let head = unsafe { *table.cast::<abi::TableHead>() };
    let (major, minor) = (head.abi_major, head.abi_minor);
    if major != abi::ABI_MAJOR || minor > abi::ABI_MINOR {
        return Err(PluginError::OtherVersion { shown, major, minor });
    }
    let expected = abi::table_size(minor);
    if head.struct_size < expected {
        return Err(PluginError::TableTooSmall { shown, size: head.struct_size, expected, major, minor });
    }
    // SAFETY: checked above: a 1.x table at least as large as its minor's, which starts with 1.0's.
    let v1_0 = unsafe { &*table.cast::<abi::PluginV1_0>() };
    let finish = if minor >= 1 {
        // SAFETY: a 1.1 table holds `finish`; read through the raw pointer, as no reference to a
        // whole `PluginV1` may be made of a table that might be shorter.
        unsafe { (&raw const (*table).finish).read() }
    } else {
        None
    };
    let text =
        |s: abi::Str| unsafe { s.as_bytes() }.map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    Ok(LoadedPlugin {
        shown,
        name: text(v1_0.name),
        version: text(v1_0.version),
        abi_minor: minor,
        create: v1_0.create,
        transform: v1_0.transform,
        destroy: v1_0.destroy,
        finish,
    })
}

/// The error for a library without the v1 entry symbol: which major it was built for, when it
/// exports another version's symbol, or that it is not a plugin.
fn other_major(library: &libloading::Library, shown: String) -> PluginError {
    for major in (0..=16u32).filter(|m| *m != abi::ABI_MAJOR) {
        let name = format!("sitesync_plugin_v{major}\0");
        // SAFETY: every major's entry function returns a table that starts with the head.
        if let Ok(entry) = unsafe { library.get::<abi::EntryFn>(name.as_bytes()) } {
            let table = unsafe { entry() };
            let minor = if table.is_null() { 0 } else { unsafe { (*table.cast::<abi::TableHead>()).abi_minor } };
            return PluginError::OtherVersion { shown, major, minor };
        }
    }
    PluginError::NotAPlugin { shown }
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
    pub fn create(plugin: &'static LoadedPlugin, settings: &str) -> Result<Instance, PluginError> {
        let mut state: *mut c_void = std::ptr::null_mut();
        let mut message = String::new();
        // SAFETY: the config string lives for the call; the error sink copies what it receives.
        let status = unsafe { (plugin.create)(abi::Str::new(settings), &mut state, error_sink(&mut message)) };
        match status {
            abi::STATUS_OK => Ok(Instance { plugin, state }),
            status => Err(PluginError::Create { shown: plugin.shown.clone(), failure: failure(status, message) }),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: the state came from this plugin's `create` and is destroyed once.
        unsafe { (self.plugin.destroy)(self.state) };
    }
}

fn failure(status: abi::Status, message: String) -> StepError {
    let message = if message.is_empty() { "no message".to_owned() } else { message };
    match status {
        abi::STATUS_PANIC => StepError::Panicked(message),
        abi::STATUS_ERROR => StepError::Failed(message),
        other => StepError::Output(format!("unknown status {other}: {message}")),
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
    /// The batch the call was given (empty for `finish`).
    input: &'a [LocalFile],
    /// The minor of the plugin's table, which says how its entries are laid out.
    minor: u32,
    out: Vec<LocalFile>,
    error: Option<StepError>,
}

unsafe extern "C" fn emit(ctx: *mut c_void, entries: *const abi::EntryOut, n: usize) -> abi::Status {
    let copied = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `Emitted` of the current call.
        let emitted = unsafe { &mut *ctx.cast::<Emitted<'_>>() };
        if entries.is_null() {
            return abi::STATUS_OK;
        }
        let stride = abi::entry_out_size(emitted.minor);
        for i in 0..n {
            // SAFETY: the plugin passes `n` entries laid out as its minor says, each of which
            // starts with a 1.0 entry; a 1.1 one has a body after it.
            let at = unsafe { entries.cast::<u8>().add(i * stride) };
            let head = unsafe { &*at.cast::<abi::EntryOutV1_0>() };
            let body =
                if emitted.minor >= 1 { unsafe { (*at.cast::<abi::EntryOut>()).body } } else { abi::Bytes::ABSENT };
            match copy_out(emitted.input, head, body) {
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

/// Copies one output entry into a new entry: the file of its source, or the bytes of its body.
fn copy_out(input: &[LocalFile], entry: &abi::EntryOutV1_0, body: abi::Bytes) -> Result<LocalFile, StepError> {
    let wrong = |why: String| StepError::Output(why);
    // SAFETY: the plugin's bytes live for the duration of the callback.
    let body = unsafe { body.as_bytes() };
    let source = source_of(input, entry.source, body.is_some())?;
    let made_from = source.map_or("an entry without a source", |s| s.key.as_str());
    let text = |s: abi::Str, what: &str| text_out(s, what, made_from);
    let key =
        text(entry.key, "key")?.ok_or_else(|| wrong(format!("emitted an entry without a key (for {made_from})")))?;
    let meta = meta_out(&entry.headers, &text)?;
    match (body, source) {
        (Some(bytes), _) if bytes.len() as u64 > MAX_PUT_BYTES => Err(wrong(format!(
            "emitted a body of {} bytes for {key}, more than the {MAX_PUT_BYTES} one upload may send",
            bytes.len()
        ))),
        (Some(bytes), source) => {
            let mtime = source.map_or(Time(0), |s| s.mtime);
            Ok(LocalFile { meta, ..LocalFile::inline(key, Arc::from(bytes), mtime) })
        }
        (None, Some(source)) => Ok(LocalFile {
            key,
            body: source.body.clone(),
            size: source.size,
            mtime: source.mtime,
            meta,
            copy_of: source.copy_of.clone(),
            known: None,
        }),
        (None, None) => unreachable!("an entry without a source has a body"),
    }
}

/// The input entry an output entry was made from; `None` for one made of its own body.
fn source_of(input: &[LocalFile], index: usize, has_body: bool) -> Result<Option<&LocalFile>, StepError> {
    match (index, has_body) {
        (abi::NO_SOURCE, true) => Ok(None),
        (abi::NO_SOURCE, false) => Err(StepError::Output("emitted an entry with neither a source nor a body".into())),
        (index, _) => input.get(index).map(Some).ok_or_else(|| {
            StepError::Output(format!("emitted an entry for source {index} of a batch of {}", input.len()))
        }),
    }
}

/// A string of the plugin's, copied; `what` and `made_from` name it when it is not UTF-8.
fn text_out(s: abi::Str, what: &str, made_from: &str) -> Result<Option<String>, StepError> {
    // SAFETY: the plugin's strings live for the duration of the callback.
    match unsafe { s.as_bytes() } {
        None => Ok(None),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(t) => Ok(Some(t.to_owned())),
            Err(_) => Err(StepError::Output(format!("emitted a {what} that is not UTF-8 (for {made_from})"))),
        },
    }
}

/// Copies a string of the plugin's, named for the message when it is not UTF-8.
type TextOut<'a> = dyn Fn(abi::Str, &str) -> Result<Option<String>, StepError> + 'a;

/// The headers and metadata of an output entry, copied; `None` when it set none.
fn meta_out(h: &abi::Headers, text: &TextOut<'_>) -> Result<Option<Box<ObjectMeta>>, StepError> {
    let pairs = if h.metadata.is_null() || h.metadata_len == 0 {
        &[][..]
    } else {
        // SAFETY: the plugin passes `metadata_len` pairs that live for the callback.
        unsafe { std::slice::from_raw_parts(h.metadata, h.metadata_len) }
    };
    let mut meta = ObjectMeta::default();
    for spec in &FIELDS {
        if let Some(value) = text(*slot(h, spec.field), "header")? {
            meta.set(spec.field, value);
        }
    }
    for kv in pairs {
        if let (Some(k), Some(v)) = (text(kv.key, "metadata name")?, text(kv.value, "metadata value")?) {
            meta.metadata.insert(k, v);
        }
    }
    Ok((!meta.is_empty()).then(|| Box::new(meta)))
}

/// Views of one batch, borrowing it for one call.
fn views(batch: &[LocalFile], pairs: &mut Vec<abi::KeyValue>) -> Vec<abi::EntryView> {
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
            let mut headers = abi::Headers::NONE;
            if let Some(m) = &f.meta {
                for (field, value) in m.fields() {
                    *slot_mut(&mut headers, field) = abi::Str::new(value);
                }
                headers.metadata = pairs[at..at + m.metadata.len()].as_ptr();
                headers.metadata_len = m.metadata.len();
                at += m.metadata.len();
            }
            abi::EntryView { key: abi::Str::new(&f.key), size: f.size, mtime_ns: f.mtime.0, headers }
        })
        .collect()
}

/// The ABI's slot of a header field.
fn slot(h: &abi::Headers, field: Field) -> &abi::Str {
    match field {
        Field::CacheControl => &h.cache_control,
        Field::ContentType => &h.content_type,
        Field::ContentEncoding => &h.content_encoding,
        Field::ContentDisposition => &h.content_disposition,
        Field::ContentLanguage => &h.content_language,
        Field::StorageClass => &h.storage_class,
        Field::WebsiteRedirectLocation => &h.website_redirect_location,
    }
}

fn slot_mut(h: &mut abi::Headers, field: Field) -> &mut abi::Str {
    match field {
        Field::CacheControl => &mut h.cache_control,
        Field::ContentType => &mut h.content_type,
        Field::ContentEncoding => &mut h.content_encoding,
        Field::ContentDisposition => &mut h.content_disposition,
        Field::ContentLanguage => &mut h.content_language,
        Field::StorageClass => &mut h.storage_class,
        Field::WebsiteRedirectLocation => &mut h.website_redirect_location,
    }
}

impl Instance {
    /// Settles a call: an entry the host refused wins over the status, which wins over the entries.
    fn settled(emitted: Emitted<'_>, status: abi::Status, message: String) -> Result<Vec<LocalFile>, StepError> {
        if let Some(why) = emitted.error {
            return Err(why);
        }
        match status {
            abi::STATUS_OK => Ok(emitted.out),
            status => Err(failure(status, message)),
        }
    }
}

impl Transform for Instance {
    fn apply(&mut self, batch: Vec<LocalFile>) -> Result<Vec<LocalFile>, StepError> {
        let mut pairs = Vec::new();
        let views = views(&batch, &mut pairs);
        let minor = self.plugin.abi_minor;
        let mut emitted = Emitted { input: &batch, minor, out: Vec::with_capacity(batch.len()), error: None };
        let mut message = String::new();
        // SAFETY: the views and `batch` outlive the call; `emit` and `report` copy what they get.
        let status = unsafe {
            (self.plugin.transform)(
                self.state,
                views.as_ptr(),
                views.len(),
                emit,
                (&mut emitted as *mut Emitted<'_>).cast(),
                error_sink(&mut message),
            )
        };
        Instance::settled(emitted, status, message)
    }

    fn finish(&mut self) -> Result<Vec<LocalFile>, StepError> {
        let Some(finish) = self.plugin.finish else { return Ok(Vec::new()) };
        let mut emitted = Emitted { input: &[], minor: self.plugin.abi_minor, out: Vec::new(), error: None };
        let mut message = String::new();
        // SAFETY: as for `transform`; there is no batch to borrow.
        let status =
            unsafe { finish(self.state, emit, (&mut emitted as *mut Emitted<'_>).cast(), error_sink(&mut message)) };
        Instance::settled(emitted, status, message)
    }
}

#[cfg(test)]
mod tests;
