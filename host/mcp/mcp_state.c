/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm mcp's tools over a sandbox's state (mcp_tools.h): snapshots (only the
 * ones this server made, unless --all-snapshots), fork, workspace archives
 * (only under --workspace-dir, named by a plain name the model gives) and port
 * forwards (only with --allow-expose). Every sandbox they create counts against
 * --max-sandboxes and is the server's like any other. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mcp_schema.h"
#include "mcp_tools.h"
#include "store.h"
#include "util.h"

/* ---- snapshots ---- */

/* The snapshot args name, if the model may use it: NULL and *ret filled, or
 * the tool error. A snapshot of another server, of the user or a fork's own
 * is "not found": the model learns nothing about it. */
static json_t *find_snapshot(mcp_call *call, const json_t *args, smolvm_snapshot_info *ret)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        const char *name = json_string_value(json_object_get(args, "snapshot"));
        int r = smolvm_snapshot_info_get(name, ret);
        if (r == 0 && !ret->internal && (ctx->lim.all_snapshots || mcp_snapshot_is_own(&ctx->snapshots, ret->id)))
                return NULL;
        return mcp_result_errorf("no snapshot '%.64s'%s: snapshot_list shows the ones that can be used", name,
                                 ctx->lim.all_snapshots ? "" : " made by this server");
}

static const char *snapshot_label(const smolvm_snapshot_info *s)
{
        return s->name[0] ? s->name : s->id;
}

json_t *mcp_tool_sandbox_snapshot(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        const char *id = json_string_value(json_object_get(args, "sandbox_id"));
        const char *name = json_string_value(json_object_get(args, "name"));
        mcp_sandbox *sb = mcp_sandbox_get(&ctx->sandboxes, id);
        if (!sb)
                return mcp_no_sandbox(id);
        smolvm_snapshot_info s;
        int r = smolvm_snapshot_create(sb->vm, name, 0, &s);
        json_t *res;
        if (r < 0) {
                res = mcp_lib_error(call, "snapshot the sandbox", r);
        } else if ((r = mcp_snapshot_own(&ctx->snapshots, s.id)) < 0) {
                (void)smolvm_snapshot_rm(s.id);
                res = mcp_result_errorf("cannot keep the snapshot: %s (at most %u per server: delete some with "
                                        "snapshot_delete)",
                                        strerror(-r), MCP_MAX_SNAPSHOTS);
        } else {
                res = mcp_result_structured(json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "snapshot", snapshot_label(&s),
                                                      "snapshot_id", s.id, "sandbox_id", id, "pause_ms",
                                                      (json_int_t)s.pause_ms, "ram_bytes", (json_int_t)s.ram_bytes,
                                                      "disk_bytes", (json_int_t)s.disk_bytes),
                                            false);
        }
        mcp_sandbox_put(&ctx->sandboxes, sb);
        return res;
}

json_t *mcp_tool_sandbox_from_snapshot(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        smolvm_snapshot_info s;
        json_t *err = find_snapshot(call, args, &s);
        if (err)
                return err;
        /* A restore takes the snapshot's host mounts: only this server's own
         * snapshots may bring any (--all-snapshots opens the store, not the host). */
        if (s.n_mounts > 0 && !mcp_snapshot_is_own(&ctx->snapshots, s.id))
                return mcp_result_errorf("snapshot '%.64s' carries host directory mounts this server did not make: "
                                         "refused (a snapshot never widens what the server allows)",
                                         snapshot_label(&s));
        /* The snapshot's shape; the server's network, ports and boot timeout:
         * a snapshot never widens what the server allows. */
        smolvm_config cfg;
        smolvm_config_init(&cfg);
        cfg.from_snapshot = s.id;
        cfg.net = ctx->lim.vm.net;
        cfg.ports = ctx->lim.vm.ports;
        cfg.n_ports = ctx->lim.vm.n_ports;
        cfg.boot_timeout_ms = ctx->lim.vm.boot_timeout_ms;
        return mcp_sandbox_boot(call, &cfg);
}

json_t *mcp_tool_sandbox_fork(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        const char *id = json_string_value(json_object_get(args, "sandbox_id"));
        unsigned n = (unsigned)mcp_json_int(json_object_get(args, "n"), 1);
        if (mcp_vm_slots_take(&ctx->sandboxes, n) < 0)
                return mcp_result_errorf("%u more VMs would pass the server's limit of %u live VMs (smolvm mcp "
                                         "--max-sandboxes): delete sandboxes with sandbox_delete, or fork fewer",
                                         n, ctx->sandboxes.max_vms);
        mcp_sandbox *sb = mcp_sandbox_get(&ctx->sandboxes, id);
        if (!sb) {
                mcp_vm_slots_give(&ctx->sandboxes, n);
                return mcp_no_sandbox(id);
        }
        char(*ids)[16] = calloc(n, sizeof(*ids));
        int r = ids ? smolvm_fork(sb->vm, n, ids) : -ENOMEM;
        mcp_sandbox_put(&ctx->sandboxes, sb);
        if (r < 0) {
                free(ids);
                mcp_vm_slots_give(&ctx->sandboxes, n);
                return mcp_lib_error(call, "fork the sandbox", r);
        }
        /* Each child takes over one slot; one that cannot be kept is deleted. */
        json_t *list = json_array();
        for (unsigned i = 0; i < n; i++) {
                smolvm_vm *vm = NULL;
                r = smolvm_open(ids[i], &vm);
                if (r == 0 && list && mcp_sandbox_add(&ctx->sandboxes, vm) == 0) {
                        json_array_append_new(list, json_string(ids[i]));
                        continue;
                }
                if (vm) {
                        (void)smolvm_delete(vm, SMOLVM_DELETE_FORCE);
                        smolvm_free(vm);
                }
                mcp_vm_slot_give(&ctx->sandboxes);
        }
        free(ids);
        if (!list || json_array_size(list) != n) {
                json_decref(list);
                return mcp_result_errorf("cannot keep the forked sandboxes (out of memory); they were deleted");
        }
        return mcp_result_structured(json_pack("{s:s, s:o}", "sandbox_id", id, "sandbox_ids", list), false);
}

/* At most this many entries in snapshot_list (--all-snapshots may see many). */
#define SNAPSHOT_LIST_MAX 256u

json_t *mcp_tool_snapshot_list(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        smolvm_snapshot_info *all = NULL;
        size_t n = 0;
        int r = smolvm_snapshot_list(&all, &n);
        if (r < 0)
                return mcp_lib_error(call, "list the snapshots", r);
        json_t *list = json_array();
        bool truncated = false;
        for (size_t i = 0; list && i < n; i++) {
                const smolvm_snapshot_info *s = &all[i];
                if (s->internal || (!ctx->lim.all_snapshots && !mcp_snapshot_is_own(&ctx->snapshots, s->id)))
                        continue;
                if (json_array_size(list) >= SNAPSHOT_LIST_MAX) {
                        truncated = true;
                        break;
                }
                json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:I, s:I}", "snapshot", snapshot_label(s),
                                                      "snapshot_id", s->id, "sandbox_id", s->vm_id, "created",
                                                      (json_int_t)s->created_unix, "disk_bytes",
                                                      (json_int_t)s->disk_bytes));
        }
        free(all);
        return list ? mcp_result_structured(json_pack("{s:o, s:b}", "snapshots", list, "truncated", truncated), false)
                    : NULL;
}

json_t *mcp_tool_snapshot_delete(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        smolvm_snapshot_info s;
        json_t *err = find_snapshot(call, args, &s);
        if (err)
                return err;
        int r = smolvm_snapshot_rm(s.id);
        if (r < 0)
                return mcp_lib_error(call, "delete the snapshot", r);
        mcp_snapshot_disown(&ctx->snapshots, s.id);
        return mcp_result_structured(json_pack("{s:s, s:b}", "snapshot", json_string_value(json_object_get(args, "snapshot")),
                                               "deleted", 1),
                                     false);
}

/* ---- workspace archives ---- */

#define ARCHIVE_SUFFIX ".tar.zst"

/* The archive the model named, as a file name in the workspace directory, or
 * the tool error. */
static json_t *archive_file(const char *name, char *buf, size_t size)
{
        /* The store's name rule: one path component, not hidden, so neither
         * ".." nor "/" nor a dot file can name anything outside the directory. */
        if (!image_name_valid(name))
                return mcp_result_errorf("invalid archive name '%.64s': a plain name of 1 to %u letters, digits, "
                                         "'.', '_' and '-', not starting with '.' (no '/'); it names a file in the "
                                         "server's workspace directory",
                                         name, SMOLVM_IMAGE_NAME_MAX);
        snprintf(buf, size, "%s" ARCHIVE_SUFFIX, name);
        return NULL;
}

/* Open the archive for reading: a regular file directly in the workspace
 * directory (no link followed, and a FIFO planted there cannot block us). */
static int open_archive(const mcp_ctx *ctx, const char *file)
{
        _cleanup_close_ int fd = openat(ctx->lim.workspace_dir_fd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if (fcntl(fd, F_SETFL, 0) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

/* sandbox_persist_workspace (persist) and sandbox_hydrate_workspace. */
static json_t *workspace_tool(mcp_call *call, const json_t *args, bool persist)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        const char *id = json_string_value(json_object_get(args, "sandbox_id"));
        const char *name = json_string_value(json_object_get(args, "archive"));
        char file[SMOLVM_IMAGE_NAME_MAX + sizeof(ARCHIVE_SUFFIX)], path[4096 + sizeof(file)];
        json_t *res = archive_file(name, file, sizeof(file));
        if (res)
                return res;
        /* persist: written under a hidden temporary name and renamed into
         * place, so a link planted at the name is replaced, never followed. */
        snprintf(path, sizeof(path), "%s/%s", ctx->lim.workspace_dir, file);
        _cleanup_close_ int fd = persist ? -1 : open_archive(ctx, file);
        if (!persist && fd < 0)
                return mcp_result_errorf("no archive '%.100s' in the server's workspace directory%s", name,
                                         fd == -ENOENT ? ": sandbox_persist_workspace makes one" : "");
        mcp_sandbox *sb = mcp_sandbox_get(&ctx->sandboxes, id);
        if (!sb)
                return mcp_no_sandbox(id);
        smolvm_archive_opts o;
        smolvm_archive_opts_init(&o);
        o.guest_path = json_string_value(json_object_get(args, "guest_path"));
        o.max_bytes = ctx->lim.workspace_max_bytes;
        o.cancel_fd = mcp_call_cancel_fd(call);
        smolvm_archive_result ar = { 0 };
        int r = persist ? smolvm_workspace_persist(sb->vm, path, &o, &ar)
                        : smolvm_workspace_hydrate_fd(sb->vm, fd, &o, &ar);
        if (r == -EFBIG && persist) {
                res = mcp_result_errorf("the archive would pass the server's limit of %llu MiB (smolvm mcp "
                                        "--workspace-max): persist a smaller directory",
                                        (unsigned long long)(ctx->lim.workspace_max_bytes >> 20));
        } else if (r < 0) {
                res = mcp_lib_error(call, persist ? "persist the workspace" : "hydrate the workspace", r);
        } else {
                json_t *sc = json_pack("{s:s, s:I, s:I, s:I}", "archive", name, "file_bytes",
                                       (json_int_t)ar.file_bytes, "tar_bytes", (json_int_t)ar.tar_bytes,
                                       "duration_ms", (json_int_t)ar.duration_ms);
                if (sc)
                        json_object_set_new(sc, persist ? "sha256" : "verified",
                                            persist ? json_string(ar.sha256) : json_boolean(ar.verified));
                res = sc ? mcp_result_structured(sc, false) : NULL;
        }
        mcp_sandbox_put(&ctx->sandboxes, sb);
        return res;
}

json_t *mcp_tool_sandbox_persist_workspace(mcp_call *call, const json_t *args)
{
        return workspace_tool(call, args, true);
}

json_t *mcp_tool_sandbox_hydrate_workspace(mcp_call *call, const json_t *args)
{
        return workspace_tool(call, args, false);
}

/* ---- port forwards ---- */

json_t *mcp_tool_sandbox_expose_port(mcp_call *call, const json_t *args)
{
        mcp_ctx *ctx = mcp_call_userdata(call);
        const char *id = json_string_value(json_object_get(args, "sandbox_id"));
        uint16_t guest_port = (uint16_t)mcp_json_int(json_object_get(args, "guest_port"), 0);
        mcp_sandbox *sb = mcp_sandbox_get(&ctx->sandboxes, id);
        if (!sb)
                return mcp_no_sandbox(id);
        uint16_t host_port = 0;
        /* Loopback only, on a free port: the model picks neither. */
        int r = smolvm_port_expose(sb->vm, guest_port, 0, NULL, &host_port);
        json_t *res = r < 0 ? mcp_lib_error(call, "forward the port", r)
                            : mcp_result_structured(json_pack("{s:s, s:i, s:s, s:i}", "sandbox_id", id, "guest_port",
                                                              guest_port, "host", "127.0.0.1", "host_port", host_port),
                                                    false);
        mcp_sandbox_put(&ctx->sandboxes, sb);
        return res;
}
