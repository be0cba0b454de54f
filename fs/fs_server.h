/* SPDX-License-Identifier: Apache-2.0 */
/* The FUSE-protocol file server: serves one host directory to a hostile client
 * (a guest kernel via virtio-fs, or a FUSE-over-vsock relay) speaking the
 * linux/fuse.h wire format. Transport-agnostic: a transport hands in one request
 * as an iovec array and gets the reply written into an iovec array (for virtio-fs
 * these point straight into guest memory, so READ data is read into them with
 * preadv, no copy).
 *
 * Read-only is enforced here, on the host: every mutating opcode answers EROFS.
 * Confinement: nothing outside the shared directory is ever resolved (O_PATH fd
 * table + openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)); symlinks are returned
 * as symlinks and never followed by the server; special files are never opened.
 * Inode and handle tables grow on demand up to limits derived from the host's
 * memory and fds. Every length, offset and name is validated. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct smolvm_fs smolvm_fs;

typedef struct smolvm_fs_config {
        const char *root;      /* host directory to share (must exist, a directory) */
        bool read_only;        /* default true: mutations answer EROFS */
        /* OPEN/CREATE of a regular file answer FOPEN_DIRECT_IO: the guest reads
         * and writes straight between its user buffers and ours (no guest page
         * cache, no copy in the guest: what under TCG limits sequential reads).
         * The price, on guest kernels before 6.6: such a file refuses shared
         * mmap (ENODEV; private mmap and exec still work), and nothing read is
         * cached in the guest. Off by default (docs/internals.md, "Direct I/O"). */
        bool direct_io;
        /* Read-only shares answer OPEN and OPENDIR with ENOSYS (the guest
         * kernel then opens without asking and names no handle: READ and
         * READDIR are served by nodeid, docs/internals.md "Reads without
         * OPEN"); keep_open serves them with handles as in read-write mode.
         * direct_io implies it (FOPEN_DIRECT_IO rides on OPEN's reply). */
        bool keep_open;
        /* Limits: 0 = derived from the host (docs/internals.md, "File server
         * limits"). When one is reached, only the request that needs more fails
         * (LOOKUP: ENFILE or ENOMEM; OPEN: EMFILE) and READDIRPLUS returns
         * plain entries; the share works again as soon as the guest forgets. */
        uint32_t max_inodes;   /* 0 = what max_mem_bytes allows, at most 2^26 */
        uint32_t max_handles;  /* 0 = half of the fd budget */
        uint32_t max_write;    /* largest READ/WRITE payload negotiated in INIT; 0 = 1 MiB */
        uint32_t max_fds;      /* fds the tables may hold; 0 = 3/4 of RLIMIT_NOFILE */
        uint64_t max_mem_bytes; /* memory for the tables (slots, hash, names);
                                 * 0 = 1/16 of the host's RAM, at least 64 MiB,
                                 * at most half of RLIMIT_AS/RLIMIT_DATA */
        /* Log the requests served per opcode (smolvm_fs_format_op_counts) on
         * stderr at every STATFS: a benchmark reads them between workloads
         * with `stat -f` on the mount (SMOLVM_FS_STATS=1, docs/benchmarks.md). */
        bool log_op_counts;
} smolvm_fs_config;

/* Returns 0 or negative errno (-ENOENT/-ENOTDIR for a bad root). */
int smolvm_fs_new(const smolvm_fs_config *cfg, smolvm_fs **ret);
void smolvm_fs_free(smolvm_fs *fs); /* accepts NULL */

/* Handle one request. in/in_cnt: the whole request (fuse_in_header, op args,
 * then data for WRITE), in readable buffers of any split. out/out_cnt: writable
 * reply buffers. Returns the reply length written into out (>= 16, starting with
 * a fuse_out_header whose len equals the return value), 0 when the op takes no
 * reply (FORGET, BATCH_FORGET, INTERRUPT, NOTIFY_REPLY: served with or without
 * reply buffers, out_cnt may be 0, and nothing is ever written into out), or
 * negative errno when the request is malformed beyond answering (shorter than
 * fuse_in_header, len mismatch) or needs a reply and out is too small for a
 * header: the transport drops it (virtio-fs still returns the chain, 0 bytes
 * written) / marks the stream broken.
 * Never crashes, aborts or allocates without bound on any input. */
ssize_t smolvm_fs_handle(smolvm_fs *fs, const struct iovec *in, int in_cnt, const struct iovec *out, int out_cnt);

typedef struct smolvm_fs_stats {
        uint32_t n_inodes;
        uint32_t n_handles;
        uint32_t n_fds;        /* fds held: at most max_fds */
        uint64_t n_evictions;  /* idle inode fds closed to stay within max_fds */
        uint64_t mem_bytes;    /* charged to the tables: at most max_mem_bytes */
        uint32_t max_inodes;   /* the limits in force (config or derived) */
        uint32_t max_handles;
        uint32_t max_fds;
        uint64_t max_mem_bytes;
        uint64_t n_requests;
        uint64_t n_erofs;      /* mutations refused */
        uint64_t n_errors;     /* malformed requests */
} smolvm_fs_stats;
void smolvm_fs_get_stats(const smolvm_fs *fs, smolvm_fs_stats *ret);

/* The server's state across a VM snapshot (fs_state.c; docs/internals.md,
 * "Mounts across snapshots"): the nodeids and open handles the guest kernel
 * holds, and its INIT. Save returns a malloc'd buffer (the caller frees it), or
 * -EFBIG when it would exceed max_bytes. Load rebuilds them into a fresh server
 * (nothing served yet: -EBUSY otherwise) from bytes it treats as hostile; every
 * entry is re-checked against the host's (dev, ino, type) before use, so a file
 * replaced on the host since gives ESTALE, never another file. On failure
 * (err says why) the server is left unusable: free it. */
#define SMOLVM_FS_STATE_MAX (64u << 20)
int smolvm_fs_state_save(smolvm_fs *fs, size_t max_bytes, uint8_t **ret, size_t *ret_len);
int smolvm_fs_state_load(smolvm_fs *fs, const uint8_t *buf, size_t len, char *err, size_t err_len);

/* The requests served so far per opcode, as "LOOKUP 12, GETATTR 3, ..."
 * (opcodes never seen left out; unknown ones as "?"), NUL-terminated and
 * truncated to len. Returns the length it wanted (as snprintf). */
size_t smolvm_fs_format_op_counts(const smolvm_fs *fs, char *buf, size_t len);
/* The requests of one opcode served so far (unknown opcodes share a count). */
uint64_t smolvm_fs_op_count(const smolvm_fs *fs, uint32_t opcode);

/* The name of a FUSE opcode for traces ("LOOKUP", "READDIRPLUS"), from the
 * server's one opcode table; "?" for one it does not know. */
const char *smolvm_fs_opcode_name(uint32_t opcode);
