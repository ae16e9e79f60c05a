/*
 * A sitesync plugin written in C against sitesync_plugin.h, for the plugin tests: it drops entries
 * whose key contains "secret", sets Cache-Control: no-cache on the others and hands them back one
 * by one. It refuses settings that contain "fail".
 *
 *     cc -shared -fPIC -I crates/sitesync-plugin-abi tests/c-plugin/nosecret.c -o libnosecret.so
 */
#include <string.h>

#include "sitesync_plugin.h"

static int the_state;

static sitesync_str text(const char *s) {
    sitesync_str r = {(const uint8_t *)s, strlen(s)};
    return r;
}

static int contains(sitesync_str haystack, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; haystack.ptr != NULL && i + n <= haystack.len; i++) {
        if (memcmp(haystack.ptr + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static sitesync_status create(sitesync_str config_json, void **state, sitesync_error_sink error) {
    if (contains(config_json, "fail")) {
        error.report(error.ctx, text("refusing settings that say fail"));
        return SITESYNC_STATUS_ERROR;
    }
    *state = &the_state;
    return SITESYNC_STATUS_OK;
}

static sitesync_status transform(void *state, const sitesync_entry_view *entries, size_t n, sitesync_emit_fn emit,
                                 void *emit_ctx, sitesync_error_sink error) {
    (void)state;
    (void)error;
    for (size_t i = 0; i < n; i++) {
        if (contains(entries[i].key, "secret")) {
            continue;
        }
        sitesync_entry_out out;
        out.source = i;
        out.key = entries[i].key; /* borrowed from the host for this call: it copies it */
        out.headers = entries[i].headers;
        out.headers.cache_control = text("no-cache");
        if (emit(emit_ctx, &out, 1) != SITESYNC_STATUS_OK) {
            return SITESYNC_STATUS_ERROR;
        }
    }
    return SITESYNC_STATUS_OK;
}

static void destroy(void *state) { (void)state; }

static const sitesync_plugin_table_v1 TABLE = {
    SITESYNC_ABI_MAJOR,
    SITESYNC_ABI_MINOR,
    sizeof(sitesync_plugin_table_v1),
    {(const uint8_t *)"nosecret", 8},
    {(const uint8_t *)"1.0.0", 5},
    create,
    transform,
    destroy,
};

const sitesync_plugin_table_v1 *sitesync_plugin_v1(void) { return &TABLE; }
