/* SPDX-License-Identifier: Apache-2.0 */
/* Workspace archives (the OpenAI Agents SDK's persist_workspace and
 * hydrate_workspace): the guest's GNU tar of a directory, compressed on the
 * host into a smolvm archive (common/archive.h) as it streams out of the exec,
 * and back: decompressed and checked on the host, unpacked by the guest's tar.
 * One exec stream each way, constant memory on the host.
 *
 * Hydrate never leaves a half-unpacked directory. The archive's checks end at
 * its last byte (the trailer's SHA-256), after tar has seen everything, so the
 * guest unpacks into DIR/.smolvm-hydrate-<id> (same file system as DIR), and
 * only once the whole archive passed its checks and tar exited 0 does a second
 * command move the entries into DIR: renames when DIR holds nothing else, hard
 * links over the old names otherwise (cp -al: no data is copied). Any failure,
 * Ctrl-C included, removes the staging directory. DIR's own mode and owner
 * stay (the archive's "./" entry goes to the staging directory). No sync
 * before the move: it is renames (or links) on one file system, and what is
 * promised is no half-unpacked directory after a failed hydrate, not
 * durability across a guest crash; a sync would add the writeback (~0.6 s of
 * guest CPU for 53 MB under TCG) to every hydrate. */
#include <fcntl.h>
#include <stdio.h>

#include "guest_tar_i.h"
#include "util.h"

#define STAGE_PREFIX ".smolvm-hydrate-"

/* Each process costs ~50-100 ms under TCG, so the scripts are short: three
 * processes to unpack, four to move into place.
 * $1: DIR, $2: the staging name. */
static const char unpack_sh[] = "mkdir -p -- \"$1/$2\" && cd -- \"$1/$2\" && exec tar -x -b " GUEST_TAR_RECORD_BLOCKS
                                " -f - --numeric-owner\n";

/* Move what the archive held into DIR: renames when DIR holds nothing but the
 * staging directory (the shell's globs, no process, say so), hard links over
 * the old names otherwise. DIR itself keeps its mode and owner. find hands
 * the names to mv and cp as arguments: spaces and newlines never pass through
 * the shell's word splitting. */
static const char merge_sh[] = "set -e\n"
                               "cd -- \"$1\"\n"
                               "s=$2 op=mv\n"
                               "for x in * .[!.]* ..?*; do\n"
                               "  if [ \"$x\" != \"$s\" ] && { [ -e \"$x\" ] || [ -L \"$x\" ]; }; then op=link; break; fi\n"
                               "done\n"
                               "if [ $op = mv ]; then\n"
                               "  find \"$s\" -mindepth 1 -maxdepth 1 -exec mv -t . -- {} +\n"
                               "else\n"
                               "  find \"$s\" -mindepth 1 -maxdepth 1 -exec cp -a -l --remove-destination -t . -- {} +\n"
                               "fi\n"
                               "exec rm -rf -- \"$s\"\n";

static const char cleanup_sh[] = "cd -- \"$1\" && rm -rf -- \"$2\"\n";

static const smolvm_archive_opts *opts_or_default(const smolvm_archive_opts *o, smolvm_archive_opts *d)
{
        if (o)
                return o;
        smolvm_archive_opts_init(d);
        return d;
}

static const char *workspace_dir(const smolvm_archive_opts *o)
{
        return o && o->guest_path ? o->guest_path : SMOLVM_WORKSPACE_DIR;
}

/* ---- persist ---- */

static int persist_to(smolvm_vm *vm, int fd, const char *shown, const smolvm_archive_opts *o,
                      smolvm_archive_result *ret)
{
        static const char what[] = "workspace persist";
        const char *dir = workspace_dir(o);
        int r = guest_dir_check(what, dir);
        if (r == 0)
                r = vm_check_exec_ready(vm);
        if (r < 0)
                return r;
        if (o->level < 0 || o->level > ARCHIVE_LEVEL_MAX)
                return vm_error(-EINVAL, "give a zstd level from 1 to 19", "%s: level %d", what, o->level);
        uint64_t start = now_ms();
        archive_write_opts wo;
        archive_write_opts_init(&wo);
        wo.kind = ARCHIVE_KIND_TAR;
        wo.level = o->level;
        wo.cancel_fd = o->cancel_fd;
        archive_writer *w;
        r = archive_writer_new(fd, &wo, &w);
        if (r < 0)
                return vm_error(r, NULL, "%s: %s: %s", what, shown, strerror(-r));
        const char *argv[] = { "tar", "-c", "-b", GUEST_TAR_RECORD_BLOCKS, "-f", "-", "--numeric-owner", ".", NULL };
        guest_cmd c = { .what = what, .argv = argv, .cwd = dir, .cancel_fd = o->cancel_fd, .out = w,
                        .stdin_fd = -1, .progress = o, .max_bytes = o->max_bytes };
        r = guest_cmd_run(vm, &c);
        archive_stats st;
        if (r == 0 && (r = archive_writer_finish(w, &st)) < 0)
                r = vm_error(r, r == -ENOSPC ? "free some space, or write elsewhere" : NULL, "%s: writing %s: %s",
                             what, shown, archive_writer_error(w));
        archive_writer_free(w);
        if (r == 0 && ret)
                archive_result_fill(ret, &st, start);
        return r;
}

SMOLVM_EXPORT int smolvm_workspace_persist_fd(smolvm_vm *vm, int fd, const smolvm_archive_opts *o,
                                              smolvm_archive_result *ret)
{
        smolvm_archive_opts d;
        o = opts_or_default(o, &d);
        if (!vm || fd < 0)
                return vm_error(-EINVAL, NULL, "smolvm_workspace_persist_fd: no VM or fd");
        return persist_to(vm, fd, "the archive stream", o, ret);
}

SMOLVM_EXPORT int smolvm_workspace_persist(smolvm_vm *vm, const char *host_path, const smolvm_archive_opts *o,
                                           smolvm_archive_result *ret)
{
        smolvm_archive_opts d;
        o = opts_or_default(o, &d);
        if (!vm || !host_path)
                return vm_error(-EINVAL, NULL, "smolvm_workspace_persist: no VM or file");
        archive_file f;
        char err[512];
        int r = archive_file_create(host_path, &f, err, sizeof(err));
        if (r < 0)
                return vm_error(r, NULL, "workspace persist: %s", err);
        r = persist_to(vm, f.fd, host_path, o, ret);
        if (r == 0 && (r = archive_file_commit(&f, err, sizeof(err))) < 0)
                r = vm_error(r, NULL, "workspace persist: %s", err);
        archive_file_discard(&f);
        return r;
}

/* ---- hydrate ---- */

typedef struct hydrate_src {
        archive_reader *rd;
        const smolvm_archive_opts *o;
} hydrate_src;

static ssize_t hydrate_read(void *ud, void *buf, size_t len)
{
        hydrate_src *s = ud;
        ssize_t n = archive_reader_read(s->rd, buf, len);
        if (n > 0 && s->o->progress) {
                uint64_t content, file;
                archive_reader_progress(s->rd, &content, &file);
                s->o->progress(s->o->userdata, content, file);
        }
        return n;
}

/* The archive's own failure, in words for the user. */
static int archive_failed(int r, const char *shown, const char *why)
{
        if (r == -EBADMSG)
                return vm_error(SMOLVM_ECORRUPT, "nothing was unpacked; persist it again, or check how the file was "
                                "copied (an uncompressed tar goes in with: smolvm cp - VM:/dir)",
                                "workspace hydrate: %s: %s", shown, why);
        return vm_error(r, r == -EPROTONOSUPPORT ? "use a smolvm at least as new as the one that wrote it" : NULL,
                        "workspace hydrate: %s: %s", shown, *why ? why : strerror(-r));
}

/* Best effort after a failure: the staging directory goes, the error stays. */
static void remove_stage(smolvm_vm *vm, const char *dir, const char *stage)
{
        vm_error_saved saved;
        vm_error_save(&saved);
        const char *argv[] = { "sh", "-c", cleanup_sh, "sh", dir, stage, NULL };
        /* No cancel fd: a Ctrl-C that stopped the unpacking must not stop this. */
        guest_cmd c = { .what = "workspace hydrate cleanup", .argv = argv, .cancel_fd = -1, .stdin_fd = -1 };
        (void)guest_cmd_run(vm, &c);
        vm_error_restore(&saved);
}

static int hydrate_from(smolvm_vm *vm, int fd, const char *shown, const smolvm_archive_opts *o,
                        smolvm_archive_result *ret)
{
        static const char what[] = "workspace hydrate";
        const char *dir = workspace_dir(o);
        int r = guest_dir_check(what, dir);
        if (r == 0)
                r = vm_check_exec_ready(vm);
        if (r < 0)
                return r;
        uint64_t start = now_ms();
        hydrate_src src = { .o = o };
        guest_feed f = { .read = hydrate_read, .ud = &src, .drain = true };
        r = guest_feed_init(&f);
        if (r < 0)
                return r;
        archive_read_opts ro;
        archive_read_opts_init(&ro);
        ro.cancel_fd = f.stop_fd;
        char err[256] = "";
        r = archive_reader_new(fd, &ro, &src.rd, err, sizeof(err));
        if (r < 0) {
                guest_feed_done(&f);
                return archive_failed(r, shown, err);
        }
        char id[SMOLVM_ID_LEN + 1], stage[sizeof(STAGE_PREFIX) + SMOLVM_ID_LEN];
        r = random_id(id);
        if (r == 0) {
                snprintf(stage, sizeof(stage), STAGE_PREFIX "%s", id);
                const char *argv[] = { "sh", "-c", unpack_sh, "sh", dir, stage, NULL };
                guest_cmd c = { .what = what, .argv = argv, .cancel_fd = o->cancel_fd, .stdin_fd = -1 };
                r = guest_cmd_run_fed(vm, &c, &f);
                /* A damaged archive is the cause when tar failed too (it saw garbage). */
                if (f.result < 0 && f.result != -ECANCELED)
                        r = archive_failed(f.result, shown, archive_reader_error(src.rd));
                if (r == 0) {
                        const char *margv[] = { "sh", "-c", merge_sh, "sh", dir, stage, NULL };
                        guest_cmd m = { .what = what, .argv = margv, .cancel_fd = -1, .stdin_fd = -1 };
                        r = guest_cmd_run(vm, &m);
                }
                if (r < 0)
                        remove_stage(vm, dir, stage);
        }
        archive_stats st;
        archive_reader_stats(src.rd, &st);
        archive_reader_free(src.rd);
        guest_feed_done(&f);
        if (r == 0 && ret)
                archive_result_fill(ret, &st, start);
        return r;
}

SMOLVM_EXPORT int smolvm_workspace_hydrate_fd(smolvm_vm *vm, int fd, const smolvm_archive_opts *o,
                                              smolvm_archive_result *ret)
{
        smolvm_archive_opts d;
        o = opts_or_default(o, &d);
        if (!vm || fd < 0)
                return vm_error(-EINVAL, NULL, "smolvm_workspace_hydrate_fd: no VM or fd");
        return hydrate_from(vm, fd, "the archive stream", o, ret);
}

SMOLVM_EXPORT int smolvm_workspace_hydrate(smolvm_vm *vm, const char *host_path, const smolvm_archive_opts *o,
                                           smolvm_archive_result *ret)
{
        smolvm_archive_opts d;
        o = opts_or_default(o, &d);
        if (!vm || !host_path)
                return vm_error(-EINVAL, NULL, "smolvm_workspace_hydrate: no VM or file");
        _cleanup_close_ int fd = open(host_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return vm_error(negative_errno(), NULL, "workspace hydrate: open %s: %s", host_path, strerror(errno));
        return hydrate_from(vm, fd, host_path, o, ret);
}
