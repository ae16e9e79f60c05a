//! A shared library that is not a sitesync plugin: it exports no `sitesync_plugin_v1`.

#[unsafe(no_mangle)]
pub extern "C" fn not_a_plugin() -> i32 {
    42
}
