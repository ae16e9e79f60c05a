//! A plugin as a library built against plugin ABI 1.0 is: a 1.0 table (72 bytes, no `finish`)
//! whose entries have 1.0's layout (152 bytes, no `body`). A host of a later minor must load it
//! and read what it emits with 1.0's stride. It publishes every entry of a batch, in one call,
//! with `Cache-Control: from-abi-1.0`, and each `*.txt` also under `KEY.bak` (one file under two
//! keys).

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use sitesync_plugin_abi::{
    EmitFn, EntryOutV1_0, EntryView, ErrorSink, Headers, PluginV1_0, STATUS_OK, STATUS_PANIC, Status, Str,
};

unsafe extern "C" fn create(_: Str, state: *mut *mut c_void, _: ErrorSink) -> Status {
    // SAFETY: the host passes a writable pointer.
    unsafe { *state = std::ptr::null_mut() };
    STATUS_OK
}

unsafe extern "C" fn transform(
    _: *mut c_void,
    entries: *const EntryView,
    n: usize,
    emit: EmitFn,
    ctx: *mut c_void,
    _: ErrorSink,
) -> Status {
    let run = || {
        // SAFETY: the host passes `n` views that live for the call.
        let views = if n == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(entries, n) } };
        let keys: Vec<String> = views
            .iter()
            .map(|v| String::from_utf8_lossy(unsafe { v.key.as_bytes() }.unwrap_or_default()).into_owned())
            .collect();
        let backups: Vec<String> = keys.iter().map(|k| format!("{k}.bak")).collect();
        let mut out = Vec::with_capacity(2 * n);
        for (i, view) in views.iter().enumerate() {
            let headers = Headers { cache_control: Str::new("from-abi-1.0"), ..view.headers };
            out.push(EntryOutV1_0 { source: i, key: Str::new(&keys[i]), headers });
            if keys[i].ends_with(".txt") {
                out.push(EntryOutV1_0 { source: i, key: Str::new(&backups[i]), headers });
            }
        }
        // SAFETY: the host copies the entries during the call; a 1.0 table's are 1.0 entries.
        unsafe { emit(ctx, out.as_ptr().cast(), out.len()) }
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or(STATUS_PANIC)
}

unsafe extern "C" fn destroy(_: *mut c_void) {}

static TABLE: PluginV1_0 = PluginV1_0 {
    abi_major: 1,
    abi_minor: 0,
    struct_size: std::mem::size_of::<PluginV1_0>(),
    name: Str::new("abi-1-0"),
    version: Str::new("0.1.0"),
    create,
    transform,
    destroy,
};

#[unsafe(no_mangle)]
pub extern "C" fn sitesync_plugin_v1() -> *const PluginV1_0 {
    &TABLE
}
