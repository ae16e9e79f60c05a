//! A library built for a future plugin ABI 2.0: sitesync 1.x must refuse it by name and version.

use std::ffi::c_void;

use sitesync_plugin_abi::{ErrorSink, PluginV1, STATUS_ERROR, Status, Str};

unsafe extern "C" fn create(_: Str, _: *mut *mut c_void, _: ErrorSink) -> Status {
    STATUS_ERROR
}

unsafe extern "C" fn transform(
    _: *mut c_void,
    _: *const sitesync_plugin_abi::EntryView,
    _: usize,
    _: sitesync_plugin_abi::EmitFn,
    _: *mut c_void,
    _: ErrorSink,
) -> Status {
    STATUS_ERROR
}

unsafe extern "C" fn destroy(_: *mut c_void) {}

// A 2.x table keeps the head (major, minor, size); the rest is whatever 2.0 defines.
static TABLE: PluginV1 = PluginV1 {
    abi_major: 2,
    abi_minor: 0,
    struct_size: std::mem::size_of::<PluginV1>(),
    name: Str::new("abi-v2"),
    version: Str::new("0.1.0"),
    create,
    transform,
    destroy,
    finish: None,
};

#[unsafe(no_mangle)]
pub extern "C" fn sitesync_plugin_v2() -> *const PluginV1 {
    &TABLE
}
