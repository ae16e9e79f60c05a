/*
 * sitesync transform plugin ABI, version 1.1.
 *
 * The same layout as crates/sitesync-plugin-abi/src/lib.rs, for plugins written in C, Zig or any
 * language that can export a C function. Build a shared library (.so / .dylib / .dll) exporting
 * `sitesync_plugin_v1` and list it in sync.toml:
 *
 *     [[transform]]
 *     plugin = "plugins/libmy_plugin.so"
 *     my_setting = 3            # every other key reaches create() as JSON: {"my_setting":3}
 *
 * Rules:
 *  - Borrowed in, copied out. The entries passed to transform() and the config string passed to
 *    create() borrow host memory for that call only. Results go back through `emit`, messages
 *    through `error.report`; the host copies both before the callback returns, so the plugin may
 *    pass pointers to its stack or to buffers it reuses. Nothing is freed across the boundary.
 *  - No function may unwind (C++ exceptions, Rust panics) into the host: catch and return
 *    SITESYNC_STATUS_PANIC or SITESYNC_STATUS_ERROR after reporting a message.
 *  - Strings are UTF-8, not NUL-terminated: {ptr, len}. A NULL ptr means "absent" (the header is
 *    not sent), which differs from "" (non-NULL ptr, len 0).
 *  - One instance is called by one thread at a time, not always the same thread.
 *  - A library is loaded only when sync.toml lists it and is never unloaded.
 *  - The host refuses a table whose abi_major differs from its own or whose abi_minor is newer,
 *    and one whose struct_size is smaller than the version's table.
 *  - Minor versions only append fields, at the end of sitesync_plugin_table_v1 and of
 *    sitesync_entry_out. The abi_minor of the table says which layout the plugin uses, for the
 *    table and for the entries it emits: a 1.0 plugin's entries have no `body`. Start every
 *    struct you fill from zero (`= {0}` or memset), so that a field appended later is absent
 *    (NULL) when you rebuild against a newer header.
 *
 * What 1.1 added:
 *  - sitesync_entry_out.body: an inline body, bytes to publish instead of the source's file.
 *    The host copies them during emit(). Size: their length; modification time: the source's,
 *    or 0 without one. An entry with a body is compared with its object by content and always
 *    uploaded under its own key (never made by copy from another). With a body, `source` may be
 *    SITESYNC_NO_SOURCE: a generated page that publishes no input file.
 *  - sitesync_plugin_table_v1.finish (may be NULL): called once after the last batch, for
 *    entries that need every entry seen first (the index of a folder). It emits through `emit`
 *    like transform(); its entries need a body and SITESYNC_NO_SOURCE. It is not called when the
 *    run stopped early or the walk of the source failed.
 */
#ifndef SITESYNC_PLUGIN_H
#define SITESYNC_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SITESYNC_ABI_MAJOR 1
#define SITESYNC_ABI_MINOR 1
#define SITESYNC_ENTRY_SYMBOL "sitesync_plugin_v1"

typedef int32_t sitesync_status;
#define SITESYNC_STATUS_OK 0
#define SITESYNC_STATUS_ERROR 1
#define SITESYNC_STATUS_PANIC 2

typedef struct sitesync_str {
    const uint8_t *ptr; /* NULL: absent */
    size_t len;
} sitesync_str;

typedef struct sitesync_bytes {
    const uint8_t *ptr; /* NULL: absent */
    size_t len;
} sitesync_bytes;

typedef struct sitesync_key_value {
    sitesync_str key;   /* user metadata name, sent as x-amz-meta-<key> */
    sitesync_str value;
} sitesync_key_value;

typedef struct sitesync_headers {
    sitesync_str cache_control;
    sitesync_str content_type;   /* absent: guessed from the key's extension */
    sitesync_str content_encoding;
    sitesync_str content_disposition;
    sitesync_str content_language;
    sitesync_str storage_class;  /* STANDARD, STANDARD_IA, ... */
    sitesync_str website_redirect_location;
    const sitesync_key_value *metadata;
    size_t metadata_len;
} sitesync_headers;

/* An input entry: valid during the transform() call only. */
typedef struct sitesync_entry_view {
    sitesync_str key;   /* relative to the target prefix */
    uint64_t size;
    int64_t mtime_ns;   /* nanoseconds since the Unix epoch */
    sitesync_headers headers;
} sitesync_entry_view;

/* `source` of an entry that publishes no input file: allowed only with a body (1.1). */
#define SITESYNC_NO_SOURCE SIZE_MAX

/* An output entry: publishes the file of input entry `source` (index into the current batch)
 * under `key` with `headers`. Several outputs with the same source: one upload, server-side
 * copies for the others. Not emitting an input entry drops it. */
typedef struct sitesync_entry_out {
    size_t source;      /* or SITESYNC_NO_SOURCE, with a body */
    sitesync_str key;
    sitesync_headers headers;
    sitesync_bytes body; /* 1.1: bytes to publish instead of the source's file; NULL: the file */
} sitesync_entry_out;

/* Host callback: copies `n` entries (laid out as the table's abi_minor says). Returns
 * SITESYNC_STATUS_ERROR for an invalid entry (the plugin should stop and return
 * SITESYNC_STATUS_ERROR). */
typedef sitesync_status (*sitesync_emit_fn)(void *ctx, const sitesync_entry_out *entries, size_t n);

typedef struct sitesync_error_sink {
    void *ctx;
    void (*report)(void *ctx, sitesync_str message); /* the host copies the message */
} sitesync_error_sink;

typedef struct sitesync_plugin_table_v1 {
    uint32_t abi_major;   /* SITESYNC_ABI_MAJOR */
    uint32_t abi_minor;   /* SITESYNC_ABI_MINOR */
    size_t struct_size;   /* sizeof(sitesync_plugin_table_v1) */
    sitesync_str name;
    sitesync_str version; /* bump when the output for the same input changes */
    /* config_json: the plugin's sync.toml table as a JSON object, without the `plugin` key. */
    sitesync_status (*create)(sitesync_str config_json, void **state, sitesync_error_sink error);
    sitesync_status (*transform)(void *state, const sitesync_entry_view *entries, size_t n,
                                 sitesync_emit_fn emit, void *emit_ctx, sitesync_error_sink error);
    void (*destroy)(void *state);
    /* 1.1, may be NULL: called once after the last batch; emits entries with a body and
     * SITESYNC_NO_SOURCE. */
    sitesync_status (*finish)(void *state, sitesync_emit_fn emit, void *emit_ctx, sitesync_error_sink error);
} sitesync_plugin_table_v1;

/* The one exported symbol; returns a pointer to a static table. */
const sitesync_plugin_table_v1 *sitesync_plugin_v1(void);

#ifdef __cplusplus
}
#endif

#endif /* SITESYNC_PLUGIN_H */
