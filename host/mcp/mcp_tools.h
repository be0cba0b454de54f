/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm's MCP tools (mcp_tools.c: the table; mcp_exec.c: commands and files)
 * and what they share: the limits set by the server's flags, which the model
 * cannot change, and the sandboxes this server created (mcp_sandbox.c). */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mcp_server.h"
#include "smolvm/smolvm.h"

/* Defaults of the server's flags (smolvm mcp --help). */
#define MCP_DEFAULT_TIMEOUT_S 300u
#define MCP_DEFAULT_MAX_SANDBOXES 4u
#define MCP_DEFAULT_OUTPUT_KIB 64u
#define MCP_DEFAULT_WORKSPACE_MAX_MIB 1024u
/* The longest code a tool accepts, in characters: a guest argument is at most
 * 128 KiB (Linux's MAX_ARG_STRLEN) and a character at most 4 bytes. */
#define MCP_MAX_CODE_CHARS 32000u
/* The largest file sandbox_write_file accepts (its base64 is a bit more). */
#define MCP_MAX_WRITE_BYTES ((size_t)8 * 1024 * 1024)

/* One VM this server created and keeps: a sandbox. */
typedef struct mcp_sandbox {
        smolvm_vm *vm;
        char id[16];
        unsigned refs;            /* the table's, and each call using it; protected by the table's lock */
        bool listed;              /* in the table; protected by the table's lock */
        struct mcp_sandbox *next; /* protected by the table's lock */
} mcp_sandbox;

/* The sandboxes, and the count of live VMs the --max-sandboxes cap applies to:
 * sandboxes, sandboxes being created and the ephemeral VMs of `run` calls. */
typedef struct mcp_sandboxes {
        pthread_mutex_t lock;
        mcp_sandbox *list; /* protected by lock */
        unsigned n_vms;    /* protected by lock */
        unsigned max_vms;
} mcp_sandboxes;

void mcp_sandboxes_init(mcp_sandboxes *t, unsigned max_vms);
/* Count one more live VM. Returns 0, or -EUSERS when max_vms are live. */
int mcp_vm_slot_take(mcp_sandboxes *t);
void mcp_vm_slot_give(mcp_sandboxes *t);
/* n more at once (sandbox_fork), or none: 0 or -EUSERS. */
int mcp_vm_slots_take(mcp_sandboxes *t, unsigned n);
void mcp_vm_slots_give(mcp_sandboxes *t, unsigned n);
/* Keep vm (started, persistent) as a sandbox; it takes over a slot already
 * taken. Returns 0 or -ENOMEM (then vm is still the caller's). */
int mcp_sandbox_add(mcp_sandboxes *t, smolvm_vm *vm);
/* The sandbox with this exact id, with a reference for the caller, or NULL. */
mcp_sandbox *mcp_sandbox_get(mcp_sandboxes *t, const char *id);
/* Take it out of the table (later gets fail); the caller gets the table's
 * reference. NULL if there is none. */
mcp_sandbox *mcp_sandbox_unlist(mcp_sandboxes *t, const char *id);
/* Drop a reference; the last frees the handle and gives its slot back. */
void mcp_sandbox_put(mcp_sandboxes *t, mcp_sandbox *sb);
/* The ids of the listed sandboxes, oldest first, as a NULL-terminated malloc'd
 * array of malloc'd strings (free with mcp_ids_free()). NULL without memory. */
char **mcp_sandbox_ids(mcp_sandboxes *t);
void mcp_ids_free(char **ids);
/* At exit, when no call runs any more: delete every sandbox (keep: leave them
 * running and print their ids on stderr), free the table. */
void mcp_sandboxes_done(mcp_sandboxes *t, bool keep);

/* The snapshots this server made (sandbox_snapshot), by id: the only ones its
 * model may use or delete unless --all-snapshots; removed at exit unless
 * --keep-sandboxes. */
#define MCP_MAX_SNAPSHOTS 256u
typedef struct mcp_snapshots {
        pthread_mutex_t lock;
        char (*ids)[16]; /* protected by lock */
        size_t n;        /* protected by lock */
} mcp_snapshots;

void mcp_snapshots_init(mcp_snapshots *t);
/* Returns 0, -ENOSPC (MCP_MAX_SNAPSHOTS) or -ENOMEM. */
int mcp_snapshot_own(mcp_snapshots *t, const char *id);
bool mcp_snapshot_is_own(mcp_snapshots *t, const char *id);
void mcp_snapshot_disown(mcp_snapshots *t, const char *id);
/* At exit: remove each (keep: print their ids on stderr), free the table. */
void mcp_snapshots_done(mcp_snapshots *t, bool keep);

/* What the model may not decide: the server's flags. */
typedef struct mcp_limits {
        smolvm_config vm;        /* image, memory, vCPUs, mounts, network, accelerator, boot timeout */
        const char *const *env;  /* --env: NULL-terminated "K=V" for every command, or NULL */
        unsigned timeout_max_s;  /* --timeout: the longest a command may run */
        size_t output_max_bytes; /* --max-output: JSON text per stream, and the largest file read */
        int workspace_dir_fd;    /* --workspace-dir: O_PATH of the directory of archives, or -1:
                                  * no workspace tools */
        const char *workspace_dir; /* its absolute path, or NULL */
        uint64_t workspace_max_bytes; /* --workspace-max: the largest archive persist writes */
        bool all_snapshots;      /* --all-snapshots: every snapshot of the store, not only ours */
        bool expose_ports;       /* --allow-expose: sandbox_expose_port is offered */
} mcp_limits;

typedef struct mcp_ctx {
        mcp_limits lim;
        mcp_sandboxes sandboxes;
        mcp_snapshots snapshots;
} mcp_ctx;

/* The tools, and the schema fragments their declarations share. The timeout
 * fragment carries lim's maximum, so fragments are made per server:
 * mcp_fragments_make() fills frags[MCP_N_FRAGMENTS] with texts that live in
 * buf (buf_size >= 1024). */
extern const mcp_tool mcp_tools[];
extern const size_t mcp_n_tools;
#define MCP_N_FRAGMENTS 10
void mcp_fragments_make(const mcp_limits *lim, mcp_fragment *frags, char *buf, size_t buf_size);
/* The tools this server offers (its flags decide: the workspace tools need
 * --workspace-dir, sandbox_expose_port --allow-expose), copied into out
 * (mcp_n_tools entries). Returns how many. */
size_t mcp_tools_select(const mcp_limits *lim, mcp_tool *out);

/* Tools of mcp_state.c: snapshots, fork, workspace archives, port forwards. */
json_t *mcp_tool_sandbox_snapshot(mcp_call *call, const json_t *args);
json_t *mcp_tool_sandbox_from_snapshot(mcp_call *call, const json_t *args);
json_t *mcp_tool_sandbox_fork(mcp_call *call, const json_t *args);
json_t *mcp_tool_snapshot_list(mcp_call *call, const json_t *args);
json_t *mcp_tool_snapshot_delete(mcp_call *call, const json_t *args);
json_t *mcp_tool_sandbox_persist_workspace(mcp_call *call, const json_t *args);
json_t *mcp_tool_sandbox_hydrate_workspace(mcp_call *call, const json_t *args);
json_t *mcp_tool_sandbox_expose_port(mcp_call *call, const json_t *args);
/* Create and start a sandbox from cfg (the server's shape, or a snapshot), with
 * the server's env, counted against the cap and kept in the table: the result
 * with its sandbox_id, or the error. */
json_t *mcp_sandbox_boot(mcp_call *call, smolvm_config *cfg);
/* Shared by the tools: the errors for the cap and for an unknown sandbox. */
json_t *mcp_slot_error(const mcp_ctx *ctx);
json_t *mcp_no_sandbox(const char *id);

/* ---- mcp_exec.c: what the tools do ---- */

/* Run code (language "python" or "bash") in vm, collect its output bounded by
 * the limits, and build the CallToolResult: structuredContent {exit_code,
 * signal, timed_out, stdout, stderr, stdout_truncated, stderr_truncated,
 * duration_ms}; isError when it timed out or could not run. */
json_t *mcp_exec_code(mcp_call *call, smolvm_vm *vm, const json_t *args);
/* The tool error for a failed library call: smolvm_last_error()'s message
 * and hint (what: "boot the sandbox"). */
json_t *mcp_lib_error(mcp_call *call, const char *what, int r);
/* JSON string of up to len bytes of text as the limits allow: invalid UTF-8 as
 * U+FFFD; past the cap cut and marked in the text ("[smolvm: ... truncated ...]")
 * and *ret_truncated set. total_bytes: how many the source had (for the mark). */
json_t *mcp_text_json(const void *data, size_t len, uint64_t total_bytes, size_t max_bytes, bool *ret_truncated);
/* base64 of data; NULL without memory. */
json_t *mcp_base64_json(const void *data, size_t len);
/* Decode base64 (padding and whitespace as RFC 4648 allows). Returns 0 with
 * *ret (malloc'd) and *ret_len, -EINVAL, -EFBIG (over max_bytes) or -ENOMEM. */
int mcp_base64_decode(const char *text, size_t text_len, size_t max_bytes, void **ret, size_t *ret_len);
