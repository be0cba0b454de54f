/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm's MCP tools: the table tools/list shows (each schema declared once,
 * in MCP_JSON, and validated against as declared) and what each does. A new
 * tool (snapshots, fork, workspaces as they land) is one entry here and its
 * function. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp_schema.h"
#include "mcp_tools.h"

/* ---- schema fragments: properties several tools share ---- */

static const char frag_timeout_fmt[] = MCP_JSON({
        "type": "integer", "minimum": 1, "maximum": %u,
        "description": "seconds before the command is killed (default and maximum: %u, set by the server)"
});

static const mcp_fragment fragments[MCP_N_FRAGMENTS] = {
        { "sandbox_id", MCP_JSON({ "type": "string", "minLength": 1, "maxLength": 64,
                                   "description": "a sandbox_id from sandbox_create or sandbox_list" }) },
        { "code", MCP_JSON({ "type": "string", "minLength": 1, "maxLength": 32000,
                             "description": "Python 3 source (python3 -c CODE) or a bash script (bash -c CODE)" }) },
        { "language", MCP_JSON({ "type": "string", "enum": [ "python", "bash" ] }) },
        { "path", MCP_JSON({ "type": "string", "minLength": 1, "maxLength": 4096,
                             "description": "an absolute path in the sandbox, e.g. /root/data.csv" }) },
        { "encoding", MCP_JSON({ "type": "string", "enum": [ "utf-8", "base64" ],
                                 "description": "utf-8 (default): text; base64: any bytes" }) },
        { "exec_result", MCP_JSON({
                  "type": "object",
                  "properties": {
                          "exit_code": { "type": "integer", "description": "128+N if killed by signal N, 124 on timeout" },
                          "signal": { "type": "integer" },
                          "timed_out": { "type": "boolean" },
                          "stdout": { "type": "string" },
                          "stderr": { "type": "string" },
                          "stdout_truncated": { "type": "boolean" },
                          "stderr_truncated": { "type": "boolean" },
                          "duration_ms": { "type": "integer" }
                  },
                  "required": [ "exit_code", "signal", "timed_out", "stdout", "stderr", "stdout_truncated",
                                "stderr_truncated", "duration_ms" ]
          }) },
        { "snapshot", MCP_JSON({ "type": "string", "minLength": 1, "maxLength": 64,
                                 "description": "a snapshot's name or snapshot_id, from sandbox_snapshot or snapshot_list" }) },
        { "archive", MCP_JSON({ "type": "string", "minLength": 1, "maxLength": 128,
                                "description": "a plain name (letters, digits, '.', '_', '-'; not starting with '.')" }) },
        { "guest_dir", MCP_JSON({ "type": "string", "minLength": 1, "maxLength": 4096,
                                  "description": "absolute directory in the sandbox (default /workspace)" }) },
        { "timeout", NULL }, /* mcp_fragments_make(): it carries the server's --timeout */
};

_Static_assert(MCP_MAX_CODE_CHARS == 32000, "update the code fragment's maxLength");

void mcp_fragments_make(const mcp_limits *lim, mcp_fragment *frags, char *buf, size_t buf_size)
{
        for (size_t i = 0; i < MCP_N_FRAGMENTS; i++) {
                frags[i] = fragments[i];
                if (!strcmp(frags[i].name, "timeout")) {
                        snprintf(buf, buf_size, frag_timeout_fmt, lim->timeout_max_s, lim->timeout_max_s);
                        frags[i].json = buf;
                }
        }
}

/* ---- the tools ---- */

json_t *mcp_slot_error(const mcp_ctx *ctx)
{
        return mcp_result_errorf("the server's limit of %u live VMs is reached (smolvm mcp --max-sandboxes): "
                                 "delete a sandbox with sandbox_delete, or wait for a run to finish",
                                 ctx->sandboxes.max_vms);
}

json_t *mcp_no_sandbox(const char *id)
{
        return mcp_result_errorf("no sandbox '%.64s' in this server: sandbox_list shows the ones it has (only "
                                 "sandboxes this server created can be used)",
                                 id);
}

static json_t *tool_run(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        if (mcp_vm_slot_take(&ctx->sandboxes) < 0)
                return mcp_slot_error(ctx);
        smolvm_config cfg = ctx->lim.vm;
        cfg.ephemeral = true; /* dies with this thread's process, whatever happens */
        cfg.cancel_fd = mcp_call_cancel_fd(call);
        smolvm_vm *vm = NULL;
        int r = smolvm_create(&cfg, &vm);
        if (r == 0)
                r = smolvm_start(vm);
        json_t *res = r < 0 ? mcp_lib_error(call, "boot a VM", r) : mcp_exec_code(call, vm, args);
        if (vm) {
                (void)smolvm_destroy(vm);
                smolvm_free(vm);
        }
        mcp_vm_slot_give(&ctx->sandboxes);
        return res;
}

json_t *mcp_sandbox_boot(mcp_call *call, smolvm_config *cfg)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        if (mcp_vm_slot_take(&ctx->sandboxes) < 0)
                return mcp_slot_error(ctx);
        /* Persistent (a detached supervisor): it outlives this call's thread,
         * and --keep-sandboxes can leave it running after the server. */
        cfg->ephemeral = false;
        cfg->env = ctx->lim.env;
        cfg->cancel_fd = mcp_call_cancel_fd(call);
        smolvm_vm *vm = NULL;
        int r = smolvm_create(cfg, &vm);
        if (r == 0)
                r = smolvm_start(vm);
        json_t *res = NULL;
        if (r < 0)
                res = mcp_lib_error(call, "create the sandbox", r);
        else if (mcp_call_cancelled(call))
                res = mcp_result_errorf("cancelled"); /* nobody would learn its id */
        else if (mcp_sandbox_add(&ctx->sandboxes, vm) < 0)
                res = mcp_result_errorf("cannot keep the sandbox: out of memory");
        else
                return mcp_result_structured(json_pack("{s:s}", "sandbox_id", smolvm_id(vm)), false);
        if (vm) {
                (void)smolvm_delete(vm, SMOLVM_DELETE_FORCE);
                smolvm_free(vm);
        }
        mcp_vm_slot_give(&ctx->sandboxes);
        return res;
}

static json_t *tool_sandbox_create(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        smolvm_config cfg = ctx->lim.vm;
        return mcp_sandbox_boot(call, &cfg);
}

static json_t *tool_sandbox_exec(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        const char *id = json_string_value(json_object_get(args, "sandbox_id"));
        mcp_sandbox *sb = mcp_sandbox_get(&ctx->sandboxes, id);
        if (!sb)
                return mcp_no_sandbox(id);
        json_t *res = mcp_exec_code(call, sb->vm, args);
        mcp_sandbox_put(&ctx->sandboxes, sb);
        return res;
}

static json_t *tool_sandbox_read_file(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        const char *id = json_string_value(json_object_get(args, "sandbox_id"));
        const char *path = json_string_value(json_object_get(args, "path"));
        const char *enc = json_string_value(json_object_get(args, "encoding"));
        bool b64 = enc && !strcmp(enc, "base64");
        size_t max = ctx->lim.output_max_bytes;
        mcp_sandbox *sb = mcp_sandbox_get(&ctx->sandboxes, id);
        if (!sb)
                return mcp_no_sandbox(id);
        void *data = NULL;
        size_t len = 0;
        int r = smolvm_read_file(sb->vm, path, &data, &len, max);
        json_t *res;
        if (r == -EFBIG) {
                res = mcp_result_errorf("%.256s is larger than the %zu bytes this server returns (smolvm mcp "
                                        "--max-output): read parts of it with sandbox_exec (head -c, tail -c, sed -n)",
                                        path, max);
        } else if (r < 0) {
                res = mcp_lib_error(call, "read the file", r);
        } else {
                bool trunc = false;
                json_t *content = b64 ? mcp_base64_json(data, len) : mcp_text_json(data, len, len, max, &trunc);
                res = content ? mcp_result_structured(json_pack("{s:s, s:I, s:s, s:o, s:b}", "path", path, "size",
                                                                (json_int_t)len, "encoding", b64 ? "base64" : "utf-8",
                                                                "content", content, "truncated", trunc),
                                                      false)
                              : NULL;
        }
        free(data);
        mcp_sandbox_put(&ctx->sandboxes, sb);
        return res;
}

static json_t *tool_sandbox_write_file(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        const char *id = json_string_value(json_object_get(args, "sandbox_id"));
        const char *path = json_string_value(json_object_get(args, "path"));
        const json_t *content = json_object_get(args, "content");
        const char *enc = json_string_value(json_object_get(args, "encoding"));
        unsigned mode = (unsigned)mcp_json_int(json_object_get(args, "mode"), 0644);
        void *decoded = NULL;
        const void *data = json_string_value(content);
        size_t len = json_string_length(content);
        if (enc && !strcmp(enc, "base64")) {
                int r = mcp_base64_decode(data, len, MCP_MAX_WRITE_BYTES, &decoded, &len);
                if (r == -EINVAL)
                        return mcp_result_errorf("content is not valid base64");
                if (r < 0)
                        return mcp_result_errorf("content: %s (at most %zu bytes)", strerror(-r), MCP_MAX_WRITE_BYTES);
                data = decoded;
        } else if (len > MCP_MAX_WRITE_BYTES) {
                return mcp_result_errorf("content is %zu bytes; at most %zu", len, MCP_MAX_WRITE_BYTES);
        }
        json_t *res;
        mcp_sandbox *sb = mcp_sandbox_get(&ctx->sandboxes, id);
        if (!sb) {
                res = mcp_no_sandbox(id);
        } else {
                int r = smolvm_write_file(sb->vm, path, data, len, mode);
                res = r < 0 ? mcp_lib_error(call, "write the file", r)
                            : mcp_result_structured(json_pack("{s:s, s:I}", "path", path, "bytes_written",
                                                              (json_int_t)len),
                                                    false);
                mcp_sandbox_put(&ctx->sandboxes, sb);
        }
        free(decoded);
        return res;
}

static json_t *tool_sandbox_list(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        char **ids = mcp_sandbox_ids(&ctx->sandboxes);
        json_t *list = json_array();
        if (!ids || !list) {
                mcp_ids_free(ids);
                json_decref(list);
                return NULL;
        }
        for (size_t i = 0; ids[i]; i++) {
                mcp_sandbox *sb = mcp_sandbox_get(&ctx->sandboxes, ids[i]);
                if (!sb)
                        continue; /* deleted meanwhile */
                smolvm_status_info st;
                int r = smolvm_status(sb->vm, &st);
                json_array_append_new(list, json_pack("{s:s, s:s, s:I}", "sandbox_id", ids[i], "state",
                                                      r < 0 ? "unknown" : smolvm_state_name(st.info.state),
                                                      "created", (json_int_t)(r < 0 ? 0 : st.info.created_unix)));
                mcp_sandbox_put(&ctx->sandboxes, sb);
        }
        mcp_ids_free(ids);
        return mcp_result_structured(json_pack("{s:o}", "sandboxes", list), false);
}

static json_t *tool_sandbox_delete(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        const char *id = json_string_value(json_object_get(args, "sandbox_id"));
        mcp_sandbox *sb = mcp_sandbox_unlist(&ctx->sandboxes, id);
        if (!sb)
                return mcp_no_sandbox(id);
        /* Calls still using it fail from here on; the last one frees the handle. */
        int r = smolvm_delete(sb->vm, SMOLVM_DELETE_FORCE);
        json_t *res = r < 0 ? mcp_lib_error(call, "delete the sandbox", r)
                            : mcp_result_structured(json_pack("{s:s, s:b}", "sandbox_id", id, "deleted", 1), false);
        mcp_sandbox_put(&ctx->sandboxes, sb);
        return res;
}

/* Tools that take no arguments. */
static const char no_input[] = MCP_JSON({ "type": "object", "properties": {}, "additionalProperties": false });

/* Tools that answer with just the sandbox_id they made. */
static const char sandbox_id_output[] = MCP_JSON({
        "type": "object",
        "properties": { "sandbox_id": { "type": "string" } },
        "required": [ "sandbox_id" ]
});

/* sandbox_persist_workspace's and sandbox_hydrate_workspace's. */
static const char workspace_input[] = MCP_JSON({
        "type": "object",
        "properties": { "sandbox_id": "@sandbox_id", "archive": "@archive", "guest_path": "@guest_dir" },
        "required": [ "sandbox_id", "archive" ],
        "additionalProperties": false
});

const mcp_tool mcp_tools[] = {
        {
                .name = "run",
                .title = "Run code in a fresh VM",
                .description = "Run Python or bash code in a fresh, disposable Linux microVM (Debian 12) that is "
                               "deleted afterwards: nothing persists between calls. Returns exit_code, stdout and "
                               "stderr (each cut at the server's output limit). For files or packages that must "
                               "persist across calls, use sandbox_create and sandbox_exec.",
                .input_schema = MCP_JSON({
                        "type": "object",
                        "properties": { "code": "@code", "language": "@language", "timeout": "@timeout" },
                        "required": [ "code", "language" ],
                        "additionalProperties": false
                }),
                .output_schema = "\"@exec_result\"",
                .annotations = MCP_JSON({ "destructiveHint": false, "openWorldHint": false }),
                .fn = tool_run,
        },
        {
                .name = "sandbox_create",
                .title = "Create a sandbox",
                .description = "Create and boot a sandbox: a Linux microVM (Debian 12) that keeps its files, "
                               "installed packages and background processes until sandbox_delete, or until this "
                               "MCP server stops. Returns its sandbox_id.",
                .input_schema = no_input,
                .output_schema = sandbox_id_output,
                .annotations = MCP_JSON({ "destructiveHint": false, "openWorldHint": false }),
                .fn = tool_sandbox_create,
        },
        {
                .name = "sandbox_exec",
                .title = "Run code in a sandbox",
                .description = "Run Python or bash code in a sandbox from sandbox_create. Files and packages "
                               "persist between calls; each call is a new process (shell variables and the working "
                               "directory do not carry over). Returns exit_code, stdout and stderr.",
                .input_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "sandbox_id": "@sandbox_id", "code": "@code", "language": "@language",
                                "timeout": "@timeout",
                                "cwd": { "type": "string", "minLength": 1, "maxLength": 4096,
                                         "description": "absolute working directory (default /root)" }
                        },
                        "required": [ "sandbox_id", "code", "language" ],
                        "additionalProperties": false
                }),
                .output_schema = "\"@exec_result\"",
                .annotations = MCP_JSON({ "openWorldHint": false }),
                .fn = tool_sandbox_exec,
        },
        {
                .name = "sandbox_read_file",
                .title = "Read a file in a sandbox",
                .description = "Read a file from a sandbox, as text (invalid UTF-8 shows as U+FFFD) or base64. "
                               "Files larger than the server's output limit are refused: read parts of them with "
                               "sandbox_exec.",
                .input_schema = MCP_JSON({
                        "type": "object",
                        "properties": { "sandbox_id": "@sandbox_id", "path": "@path", "encoding": "@encoding" },
                        "required": [ "sandbox_id", "path" ],
                        "additionalProperties": false
                }),
                .output_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "path": { "type": "string" }, "size": { "type": "integer" },
                                "encoding": { "type": "string" }, "content": { "type": "string" },
                                "truncated": { "type": "boolean" }
                        },
                        "required": [ "path", "size", "encoding", "content", "truncated" ]
                }),
                .annotations = MCP_JSON({ "readOnlyHint": true, "openWorldHint": false }),
                .fn = tool_sandbox_read_file,
        },
        {
                .name = "sandbox_write_file",
                .title = "Write a file in a sandbox",
                .description = "Write a file in a sandbox (created or replaced; missing parent directories are "
                               "created). content is text, or base64 with encoding base64; at most 8 MiB.",
                .input_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "sandbox_id": "@sandbox_id", "path": "@path",
                                "content": { "type": "string", "maxLength": 12000000 },
                                "encoding": "@encoding",
                                "mode": { "type": "integer", "minimum": 0, "maximum": 4095,
                                          "description": "permission bits as a number (default 420, that is 0644)" }
                        },
                        "required": [ "sandbox_id", "path", "content" ],
                        "additionalProperties": false
                }),
                .output_schema = MCP_JSON({
                        "type": "object",
                        "properties": { "path": { "type": "string" }, "bytes_written": { "type": "integer" } },
                        "required": [ "path", "bytes_written" ]
                }),
                .annotations = MCP_JSON({ "destructiveHint": true, "idempotentHint": true, "openWorldHint": false }),
                .fn = tool_sandbox_write_file,
        },
        {
                .name = "sandbox_list",
                .title = "List sandboxes",
                .description = "List the sandboxes this MCP server created, oldest first, with their state.",
                .input_schema = no_input,
                .output_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "sandboxes": {
                                        "type": "array",
                                        "items": {
                                                "type": "object",
                                                "properties": {
                                                        "sandbox_id": { "type": "string" },
                                                        "state": { "type": "string" },
                                                        "created": { "type": "integer",
                                                                     "description": "seconds since the epoch" }
                                                },
                                                "required": [ "sandbox_id", "state", "created" ]
                                        }
                                }
                        },
                        "required": [ "sandboxes" ]
                }),
                .annotations = MCP_JSON({ "readOnlyHint": true, "openWorldHint": false }),
                .fn = tool_sandbox_list,
        },
        {
                .name = "sandbox_delete",
                .title = "Delete a sandbox",
                .description = "Delete a sandbox: its VM, its processes and every file in it.",
                .input_schema = MCP_JSON({
                        "type": "object",
                        "properties": { "sandbox_id": "@sandbox_id" },
                        "required": [ "sandbox_id" ],
                        "additionalProperties": false
                }),
                .output_schema = MCP_JSON({
                        "type": "object",
                        "properties": { "sandbox_id": { "type": "string" }, "deleted": { "type": "boolean" } },
                        "required": [ "sandbox_id", "deleted" ]
                }),
                .annotations = MCP_JSON({ "destructiveHint": true, "openWorldHint": false }),
                .fn = tool_sandbox_delete,
        },
        {
                .name = "sandbox_snapshot",
                .title = "Snapshot a sandbox",
                .description = "Save a running sandbox's whole state (memory, processes, files) as a snapshot; the "
                               "sandbox carries on. sandbox_from_snapshot starts new sandboxes from it, each as the "
                               "sandbox was at this instant. Not possible when this server mounts host directories "
                               "over virtio-fs (its default; --mount-transport vsock allows it). Snapshots are "
                               "deleted when this MCP server stops.",
                .input_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "sandbox_id": "@sandbox_id",
                                "name": { "type": "string", "minLength": 1, "maxLength": 63,
                                          "description": "a unique name (default: none, use the snapshot_id)" }
                        },
                        "required": [ "sandbox_id" ],
                        "additionalProperties": false
                }),
                .output_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "snapshot": { "type": "string", "description": "its name, or its id if unnamed" },
                                "snapshot_id": { "type": "string" }, "sandbox_id": { "type": "string" },
                                "pause_ms": { "type": "integer" }, "ram_bytes": { "type": "integer" },
                                "disk_bytes": { "type": "integer" }
                        },
                        "required": [ "snapshot", "snapshot_id", "sandbox_id" ]
                }),
                .annotations = MCP_JSON({ "destructiveHint": false, "openWorldHint": false }),
                .fn = mcp_tool_sandbox_snapshot,
        },
        {
                .name = "sandbox_from_snapshot",
                .title = "Create a sandbox from a snapshot",
                .description = "Create a sandbox that continues from a snapshot: its processes, memory and files as "
                               "they were when the snapshot was taken. Returns its sandbox_id; counts toward the "
                               "server's limit of live VMs.",
                .input_schema = MCP_JSON({
                        "type": "object",
                        "properties": { "snapshot": "@snapshot" },
                        "required": [ "snapshot" ],
                        "additionalProperties": false
                }),
                .output_schema = sandbox_id_output,
                .annotations = MCP_JSON({ "destructiveHint": false, "openWorldHint": false }),
                .fn = mcp_tool_sandbox_from_snapshot,
        },
        {
                .name = "sandbox_fork",
                .title = "Fork a sandbox",
                .description = "Make n new sandboxes that continue from a sandbox's present state (processes, "
                               "memory, files), each with its own copy and hostname; the sandbox carries on. Each "
                               "counts toward the server's limit of live VMs. Not possible when this server mounts "
                               "host directories over virtio-fs (its default; --mount-transport vsock allows it).",
                .input_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "sandbox_id": "@sandbox_id",
                                "n": { "type": "integer", "minimum": 1, "maximum": 64,
                                       "description": "how many sandboxes (default 1)" }
                        },
                        "required": [ "sandbox_id" ],
                        "additionalProperties": false
                }),
                .output_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "sandbox_id": { "type": "string" },
                                "sandbox_ids": { "type": "array", "items": { "type": "string" } }
                        },
                        "required": [ "sandbox_id", "sandbox_ids" ]
                }),
                .annotations = MCP_JSON({ "destructiveHint": false, "openWorldHint": false }),
                .fn = mcp_tool_sandbox_fork,
        },
        {
                .name = "snapshot_list",
                .title = "List snapshots",
                .description = "List the snapshots this MCP server may use (those it made, unless the server "
                               "shares every snapshot), oldest first.",
                .input_schema = no_input,
                .output_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "snapshots": {
                                        "type": "array",
                                        "items": {
                                                "type": "object",
                                                "properties": {
                                                        "snapshot": { "type": "string" },
                                                        "snapshot_id": { "type": "string" },
                                                        "sandbox_id": { "type": "string",
                                                                        "description": "the sandbox it was taken of" },
                                                        "created": { "type": "integer",
                                                                     "description": "seconds since the epoch" },
                                                        "disk_bytes": { "type": "integer" }
                                                },
                                                "required": [ "snapshot", "snapshot_id", "sandbox_id", "created" ]
                                        }
                                },
                                "truncated": { "type": "boolean" }
                        },
                        "required": [ "snapshots", "truncated" ]
                }),
                .annotations = MCP_JSON({ "readOnlyHint": true, "openWorldHint": false }),
                .fn = mcp_tool_snapshot_list,
        },
        {
                .name = "snapshot_delete",
                .title = "Delete a snapshot",
                .description = "Delete a snapshot. Sandboxes made from it keep running.",
                .input_schema = MCP_JSON({
                        "type": "object",
                        "properties": { "snapshot": "@snapshot" },
                        "required": [ "snapshot" ],
                        "additionalProperties": false
                }),
                .output_schema = MCP_JSON({
                        "type": "object",
                        "properties": { "snapshot": { "type": "string" }, "deleted": { "type": "boolean" } },
                        "required": [ "snapshot", "deleted" ]
                }),
                .annotations = MCP_JSON({ "destructiveHint": true, "openWorldHint": false }),
                .fn = mcp_tool_snapshot_delete,
        },
        {
                .name = "sandbox_persist_workspace",
                .title = "Save a sandbox directory as an archive",
                .description = "Save a directory of a sandbox (default /workspace) with its modes, symlinks and "
                               "empty directories as a named archive kept by the server (replacing one of the same "
                               "name). sandbox_hydrate_workspace puts it into any sandbox, later or in another "
                               "session.",
                .input_schema = workspace_input,
                .output_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "archive": { "type": "string" }, "file_bytes": { "type": "integer" },
                                "tar_bytes": { "type": "integer" }, "sha256": { "type": "string" },
                                "duration_ms": { "type": "integer" }
                        },
                        "required": [ "archive", "file_bytes", "tar_bytes", "sha256" ]
                }),
                .annotations = MCP_JSON({ "destructiveHint": true, "idempotentHint": true, "openWorldHint": false }),
                .fn = mcp_tool_sandbox_persist_workspace,
        },
        {
                .name = "sandbox_hydrate_workspace",
                .title = "Restore an archive into a sandbox",
                .description = "Unpack an archive from sandbox_persist_workspace into a sandbox directory (default "
                               "/workspace, created if missing): its entries replace those of the same names, others "
                               "stay. A damaged archive is refused and leaves the directory as it was.",
                .input_schema = workspace_input,
                .output_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "archive": { "type": "string" }, "file_bytes": { "type": "integer" },
                                "tar_bytes": { "type": "integer" }, "verified": { "type": "boolean" },
                                "duration_ms": { "type": "integer" }
                        },
                        "required": [ "archive", "file_bytes", "tar_bytes", "verified" ]
                }),
                .annotations = MCP_JSON({ "destructiveHint": true, "idempotentHint": true, "openWorldHint": false }),
                .fn = mcp_tool_sandbox_hydrate_workspace,
        },
        {
                .name = "sandbox_expose_port",
                .title = "Forward a sandbox port to the host",
                .description = "Make a TCP port of a sandbox (a server listening in it, e.g. a web app on port "
                               "8000) reachable on the user's machine at 127.0.0.1:host_port, for the user to open. "
                               "The forward lasts as long as the sandbox.",
                .input_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "sandbox_id": "@sandbox_id",
                                "guest_port": { "type": "integer", "minimum": 1, "maximum": 65535 }
                        },
                        "required": [ "sandbox_id", "guest_port" ],
                        "additionalProperties": false
                }),
                .output_schema = MCP_JSON({
                        "type": "object",
                        "properties": {
                                "sandbox_id": { "type": "string" }, "guest_port": { "type": "integer" },
                                "host": { "type": "string" }, "host_port": { "type": "integer" }
                        },
                        "required": [ "sandbox_id", "guest_port", "host", "host_port" ]
                }),
                .annotations = MCP_JSON({ "destructiveHint": false, "openWorldHint": false }),
                .fn = mcp_tool_sandbox_expose_port,
        },
};

const size_t mcp_n_tools = sizeof(mcp_tools) / sizeof(mcp_tools[0]);

size_t mcp_tools_select(const mcp_limits *lim, mcp_tool *out)
{
        size_t n = 0;
        for (size_t i = 0; i < mcp_n_tools; i++) {
                mcp_tool_fn fn = mcp_tools[i].fn;
                if ((fn == mcp_tool_sandbox_persist_workspace || fn == mcp_tool_sandbox_hydrate_workspace) &&
                    lim->workspace_dir_fd < 0)
                        continue;
                if (fn == mcp_tool_sandbox_expose_port && !lim->expose_ports)
                        continue;
                out[n++] = mcp_tools[i];
        }
        return n;
}
