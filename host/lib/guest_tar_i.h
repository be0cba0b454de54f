/* SPDX-License-Identifier: Apache-2.0 */
/* Running a guest command (tar, or a short sh script around it) whose stdout
 * goes into an archive writer and/or whose stdin comes from an fd: the
 * plumbing workspace.c (persist, hydrate) and guest_tar.c (cp's tar streams)
 * share. Through smolvm_exec(), so it is an ordinary exec to the agent. */
#pragma once

#include <stdint.h>

#include "archive.h"
#include "smolvm_i.h"

/* GNU tar's record size (-b, in 512-byte blocks) for every guest tar here:
 * 128 blocks = 64 KiB, one pipe buffer and one exec output frame. tar's
 * default of 10 KiB records makes it a write (or read) per 10 KiB on the
 * pipe, which under TCG cost the guest about twice the CPU of the whole
 * transfer (docs/benchmarks.md, "Workspace archives"). A tar made with it is
 * padded to a multiple of 64 KiB (zeros: nothing once compressed); reading
 * from a pipe, tar takes any record size. */
#define GUEST_TAR_RECORD_BLOCKS "128"

/* The start of a failed command's stderr kept for the message. */
#define GUEST_CMD_STDERR_MAX 2048u

typedef struct guest_cmd {
        const char *what;         /* names the operation in messages: "workspace persist" */
        const char *const *argv;
        const char *cwd;          /* absolute, or NULL: the agent's default */
        int cancel_fd;            /* -1: none */
        archive_writer *out;      /* the command's stdout goes here; NULL: it must print nothing
                                   * (what it prints is ignored) */
        int stdin_fd;             /* >= 0: fed to the command until EOF; -1: /dev/null */
        const smolvm_archive_opts *progress; /* ->progress called per stdout chunk; NULL: none */
        uint64_t max_bytes;       /* > 0: -EFBIG once out has written more to its fd */
        bool out_raw;             /* out passes bytes through: max_bytes is checked before
                                   * a byte too many is written */
} guest_cmd;

/* Run c in vm. Returns 0 once the command exited 0; else a negative errno,
 * recorded in words that name c->what: the agent's error (a missing cwd is
 * SMOLVM_ENOTFOUND "no directory X in the guest", a missing program -ENOENT),
 * -EIO quoting its stderr when it exited non-zero or was killed, the writer's
 * error (-ENOSPC, -EPIPE, ...), -EFBIG (max_bytes), -ECANCELED. */
int guest_cmd_run(smolvm_vm *vm, const guest_cmd *c);

/* A command's stdin fed from a thread: read() gives the bytes (> 0), 0 at the
 * end, or a negative errno. The thread blocks every signal. */
typedef struct guest_feed {
        /* set by the caller: */
        ssize_t (*read)(void *ud, void *buf, size_t len);
        void *ud;
        bool drain;      /* read to the end even once the command stopped reading:
                          * the source's checks come at its end (an archive) */
        /* set by guest_feed_init(): the source's reads must give up (-ECANCELED)
         * once this is readable (an archive reader's cancel_fd, fd_wait's) */
        int stop_fd;
        /* results, after guest_cmd_run_fed(): */
        int result;      /* 0: read to its end (or the command stopped reading and
                          * drain is off); the source's error; -ECANCELED when stopped */
        uint64_t bytes;  /* bytes sent to the command */
        /* private: */
        int sock, done_fd;
        bool guest_gone;
} guest_feed;

/* stop_fd and the rest; 0 or a negative errno (recorded). */
int guest_feed_init(guest_feed *f);
void guest_feed_done(guest_feed *f);
/* Run c (its stdin_fd is ignored) with its stdin from f's source through a
 * socketpair. Returns as guest_cmd_run(); f->result says how the source ended
 * (with drain, the source is read to its end whatever the command did, unless
 * cancelled). */
int guest_cmd_run_fed(smolvm_vm *vm, const guest_cmd *c, guest_feed *f);
/* A guest path the user gave for these operations: absolute, at most PATH_MAX
 * bytes. Records -EINVAL naming what otherwise. */
int guest_dir_check(const char *what, const char *path);

/* Fill the result's common fields from archive stats. */
void archive_result_fill(smolvm_archive_result *ret, const archive_stats *st, uint64_t start_ms);
