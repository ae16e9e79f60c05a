//! The host against tables made here, without a library: how it reads a 1.0 and a 1.1 table,
//! the entries each emits (their strides differ), inline bodies, and `finish`.

use std::ffi::c_void;

use super::*;

fn headers() -> abi::Headers {
    abi::Headers::NONE
}

fn out(source: usize, key: &str, body: Option<&[u8]>) -> abi::EntryOut {
    abi::EntryOut { source, key: abi::Str::new(key), headers: headers(), body: abi::Bytes::from_option(body) }
}

unsafe extern "C" fn create(_: abi::Str, state: *mut *mut c_void, _: abi::ErrorSink) -> abi::Status {
    // SAFETY: the host passes a writable pointer.
    unsafe { *state = std::ptr::null_mut() };
    abi::STATUS_OK
}

unsafe extern "C" fn destroy(_: *mut c_void) {}

/// A 1.0 plugin: emits every entry of the batch, in one call, under `KEY.old`, with
/// Cache-Control `v1.0`; its entries have 1.0's layout.
unsafe extern "C" fn transform_1_0(
    _: *mut c_void,
    entries: *const abi::EntryView,
    n: usize,
    emit: abi::EmitFn,
    ctx: *mut c_void,
    _: abi::ErrorSink,
) -> abi::Status {
    // SAFETY: the host passes `n` views that live for the call.
    let views = unsafe { std::slice::from_raw_parts(entries, n) };
    let keys: Vec<String> = views
        .iter()
        .map(|v| format!("{}.old", String::from_utf8_lossy(unsafe { v.key.as_bytes() }.unwrap())))
        .collect();
    let out: Vec<abi::EntryOutV1_0> = (0..n)
        .map(|i| abi::EntryOutV1_0 {
            source: i,
            key: abi::Str::new(&keys[i]),
            headers: abi::Headers { cache_control: abi::Str::new("v1.0"), ..headers() },
        })
        .collect();
    // SAFETY: a 1.0 plugin passes 1.0 entries: the host reads them with 1.0's stride.
    unsafe { emit(ctx, out.as_ptr().cast(), out.len()) }
}

/// A 1.1 plugin: keeps each entry, replaces the body of the first with bytes it then overwrites
/// (the host must have copied them), and emits one generated page at the end.
unsafe extern "C" fn transform_1_1(
    _: *mut c_void,
    entries: *const abi::EntryView,
    n: usize,
    emit: abi::EmitFn,
    ctx: *mut c_void,
    _: abi::ErrorSink,
) -> abi::Status {
    let views = unsafe { std::slice::from_raw_parts(entries, n) };
    let mut buffer = b"rewritten".to_vec();
    let keys: Vec<&str> =
        views.iter().map(|v| std::str::from_utf8(unsafe { v.key.as_bytes() }.unwrap()).unwrap()).collect();
    let entries: Vec<abi::EntryOut> = (0..n).map(|i| out(i, keys[i], (i == 0).then_some(buffer.as_slice()))).collect();
    let status = unsafe { emit(ctx, entries.as_ptr(), entries.len()) };
    buffer.fill(b'X');
    status
}

unsafe extern "C" fn finish_1_1(_: *mut c_void, emit: abi::EmitFn, ctx: *mut c_void, _: abi::ErrorSink) -> abi::Status {
    let pages = [out(abi::NO_SOURCE, "index.html", Some(b"<p>made</p>")), out(abi::NO_SOURCE, "empty", Some(b""))];
    unsafe { emit(ctx, pages.as_ptr(), pages.len()) }
}

/// Emits, at the end, an entry with neither a source nor a body.
unsafe extern "C" fn finish_bad(_: *mut c_void, emit: abi::EmitFn, ctx: *mut c_void, _: abi::ErrorSink) -> abi::Status {
    let bad = [out(abi::NO_SOURCE, "nothing", None)];
    unsafe { emit(ctx, bad.as_ptr(), bad.len()) }
}

static TABLE_1_0: abi::PluginV1_0 = abi::PluginV1_0 {
    abi_major: 1,
    abi_minor: 0,
    struct_size: std::mem::size_of::<abi::PluginV1_0>(),
    name: abi::Str::new("old"),
    version: abi::Str::new("1.0.0"),
    create,
    transform: transform_1_0,
    destroy,
};

const fn table_1_1(finish: Option<abi::FinishFn>) -> abi::PluginV1 {
    abi::PluginV1 {
        abi_major: 1,
        abi_minor: 1,
        struct_size: std::mem::size_of::<abi::PluginV1>(),
        name: abi::Str::new("new"),
        version: abi::Str::new("1.1.0"),
        create,
        transform: transform_1_1,
        destroy,
        finish,
    }
}

static TABLE_1_1: abi::PluginV1 = table_1_1(Some(finish_1_1));
static TABLE_1_1_BAD: abi::PluginV1 = table_1_1(Some(finish_bad));

fn instance(table: *const abi::PluginV1) -> Instance {
    // SAFETY: the tables above are statics of the size they say.
    let plugin = unsafe { read_table(table, "plugins/test.so".into()) }.unwrap();
    Instance::create(Box::leak(Box::new(plugin)), "{}").unwrap()
}

fn files(keys: &[&str]) -> Vec<LocalFile> {
    keys.iter().map(|k| LocalFile::new(k.to_string(), format!("/src/{k}").into(), 3, Time(42))).collect()
}

#[test]
fn a_1_0_table_loads_and_its_entries_are_read_with_its_stride() {
    let mut plugin = instance((&raw const TABLE_1_0).cast());
    assert_eq!((plugin.plugin.abi_minor, plugin.plugin.finish.is_none()), (0, true));
    let out = plugin.apply(files(&["a.txt", "b.txt", "c.txt"])).unwrap();
    let got: Vec<_> = out.iter().map(|f| (f.key.as_str(), f.path(), f.meta.as_ref().unwrap().shown())).collect();
    let path = |k: &'static str| Some(Path::new(k));
    let cc = " [Cache-Control: v1.0]".to_owned();
    assert_eq!(
        got,
        [
            ("a.txt.old", path("/src/a.txt"), cc.clone()),
            ("b.txt.old", path("/src/b.txt"), cc.clone()),
            ("c.txt.old", path("/src/c.txt"), cc)
        ]
    );
    assert!(plugin.finish().unwrap().is_empty(), "a 1.0 table has no finish");
}

#[test]
fn an_inline_body_is_copied_during_the_callback() {
    let mut plugin = instance(&TABLE_1_1);
    let out = plugin.apply(files(&["a.txt", "b.txt"])).unwrap();
    let (rewritten, kept) = (&out[0], &out[1]);
    assert_eq!(rewritten.inline_bytes().map(|b| &b[..]), Some(&b"rewritten"[..]), "the bytes as emitted");
    assert_eq!((rewritten.key.as_str(), rewritten.size, rewritten.mtime), ("a.txt", 9, Time(42)));
    assert_eq!((rewritten.path(), rewritten.copy_of.as_deref()), (None, None));
    assert_eq!((kept.path(), kept.size), (Some(Path::new("/src/b.txt")), 3), "no body: the source's file");
}

#[test]
fn finish_emits_generated_entries() {
    let mut plugin = instance(&TABLE_1_1);
    plugin.apply(files(&["a.txt"])).unwrap();
    let made = plugin.finish().unwrap();
    let got: Vec<_> =
        made.iter().map(|f| (f.key.as_str(), f.inline_bytes().map(|b| b.to_vec()), f.size, f.mtime)).collect();
    assert_eq!(
        got,
        [("index.html", Some(b"<p>made</p>".to_vec()), 11, Time(0)), ("empty", Some(Vec::new()), 0, Time(0))]
    );
}

#[test]
fn an_entry_with_neither_source_nor_body_is_refused() {
    let mut plugin = instance(&TABLE_1_1_BAD);
    let e = plugin.finish().unwrap_err();
    assert_eq!(e.to_string(), "emitted an entry with neither a source nor a body");
}

#[test]
fn tables_of_a_newer_minor_or_too_small_for_theirs_are_refused() {
    static NEWER: abi::PluginV1 = abi::PluginV1 { abi_minor: 2, ..table_1_1(None) };
    static SHORT: abi::PluginV1 = abi::PluginV1 { struct_size: 72, ..table_1_1(None) };
    let e = unsafe { read_table(&NEWER, "plugins/new.so".into()) }.unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugins/new.so was built for plugin ABI 1.2, but this sitesync loads plugin ABI 1.0 to 1.1; rebuild the \
         plugin against sitesync-plugin-abi 1.1"
    );
    let e = unsafe { read_table(&SHORT, "plugins/short.so".into()) }.unwrap_err();
    assert_eq!(e.to_string(), "plugins/short.so: its plugin table is 72 bytes, smaller than the 80 of ABI 1.1");
}
