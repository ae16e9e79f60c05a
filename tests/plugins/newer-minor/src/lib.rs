//! A library built for plugin ABI 1.(minor + 1), with a table of this minor's size: a host of this
//! minor must refuse it, naming both versions.

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

// The same table with a minor version this host does not know yet.
static TABLE: PluginV1 = PluginV1 {
    abi_major: sitesync_plugin_abi::ABI_MAJOR,
    abi_minor: sitesync_plugin_abi::ABI_MINOR + 1,
    struct_size: std::mem::size_of::<PluginV1>(),
    name: Str::new("newer-minor"),
    version: Str::new("0.1.0"),
    create,
    transform,
    destroy,
    finish: None,
};

#[unsafe(no_mangle)]
pub extern "C" fn sitesync_plugin_v1() -> *const PluginV1 {
    &TABLE
}
