/*
 * Prints the size of every struct of sitesync_plugin.h and the offset of the fields each minor
 * appended, as this C compiler lays them out, for tests/plugins.rs to compare with the Rust
 * types of sitesync-plugin-abi.
 */
#include <stddef.h>
#include <stdio.h>

#include "sitesync_plugin.h"

#define SIZE(t) printf("size %s %zu\n", #t, sizeof(t))
#define OFFSET(t, f) printf("offset %s.%s %zu\n", #t, #f, offsetof(t, f))

int main(void) {
    SIZE(sitesync_str);
    SIZE(sitesync_bytes);
    SIZE(sitesync_key_value);
    SIZE(sitesync_headers);
    SIZE(sitesync_entry_view);
    SIZE(sitesync_entry_out);
    SIZE(sitesync_error_sink);
    SIZE(sitesync_plugin_table_v1);
    OFFSET(sitesync_entry_out, headers);
    OFFSET(sitesync_entry_out, body);
    OFFSET(sitesync_plugin_table_v1, create);
    OFFSET(sitesync_plugin_table_v1, destroy);
    OFFSET(sitesync_plugin_table_v1, finish);
    printf("version %d.%d\n", SITESYNC_ABI_MAJOR, SITESYNC_ABI_MINOR);
    printf("no_source %d\n", SITESYNC_NO_SOURCE == (size_t)-1);
    return 0;
}
