/*
 * A sitesync plugin written in C against sitesync_plugin.h, for the plugin tests: it drops entries
 * whose key contains "secret", sets Cache-Control: no-cache on the others and hands them back one
 * by one. It refuses settings that contain "fail". With settings that contain "report" it uses
 * ABI 1.1 too: at the end (finish), it publishes a generated page, `nosecret.txt`, saying how
 * many entries it dropped.
 *
 *     cc -shared -fPIC -I crates/sitesync-plugin-abi tests/c-plugin/nosecret.c -o libnosecret.so
 */
#include <stdio.h>
#include <string.h>

#include "sitesync_plugin.h"

struct state {
    int report;
    size_t dropped;
};

static struct state the_state;

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
    the_state.report = contains(config_json, "report");
    the_state.dropped = 0;
    *state = &the_state;
    return SITESYNC_STATUS_OK;
}

static sitesync_status transform(void *state, const sitesync_entry_view *entries, size_t n, sitesync_emit_fn emit,
                                 void *emit_ctx, sitesync_error_sink error) {
    struct state *st = state;
    (void)error;
    for (size_t i = 0; i < n; i++) {
        if (contains(entries[i].key, "secret")) {
            st->dropped++;
            continue;
        }
        sitesync_entry_out out;
        memset(&out, 0, sizeof out); /* fields a later minor appends (1.1's body) stay absent */
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

static sitesync_status finish(void *state, sitesync_emit_fn emit, void *emit_ctx, sitesync_error_sink error) {
    struct state *st = state;
    (void)error;
    if (!st->report) {
        return SITESYNC_STATUS_OK;
    }
    char line[64];
    int len = snprintf(line, sizeof line, "dropped %zu\n", st->dropped);
    sitesync_entry_out page;
    memset(&page, 0, sizeof page);
    page.source = SITESYNC_NO_SOURCE; /* generated: no input file */
    page.key = text("nosecret.txt");
    page.headers.content_type = text("text/plain; charset=utf-8");
    page.body.ptr = (const uint8_t *)line; /* on the stack: the host copies it during emit */
    page.body.len = (size_t)len;
    return emit(emit_ctx, &page, 1);
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
    finish,
};

const sitesync_plugin_table_v1 *sitesync_plugin_v1(void) { return &TABLE; }
