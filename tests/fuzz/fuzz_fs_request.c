/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: smolvm_fs_handle on hostile requests against a temp tree
 * (files, dirs, symlinks pointing out, a FIFO, a device node when root).
 *
 * Input: byte 0 = control (bit 0: read-write instance; bit 1: fix up
 * in_header.len to the true length, since a random len is almost always
 * rejected at the door; bits 2-4: how many pieces to split the request into;
 * bits 5-7: reply buffer size class, 0 = none), bytes 1-2 = nodeid/fh hint, then the
 * request. Nodeids and fhs the fuzzer cannot guess are steered to live ones by
 * replacing small values. Both instances live for the whole run, so the inode
 * and handle tables fill, drain and reuse slots across inputs.
 *
 * The read-write instance skips FALLOCATE (it would fill the disk) and clamps
 * WRITE offsets; the tree it mutates is rebuilt every 20000 inputs. */
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fs_server.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[64];
static smolvm_fs *fs_ro, *fs_rw;
static uint64_t n_inputs;
static uint64_t last_nodeids[2][8], last_fhs[2][8];

static void put(const char *dir, const char *name, const char *text)
{
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
                (void)!write(fd, text, strlen(text));
                close(fd);
        }
}

static void make_tree(const char *dir)
{
        char p[256];
        mkdir(dir, 0755);
        put(dir, "a.txt", "hello fuzzer\n");
        put(dir, "b.bin", "0123456789abcdef0123456789abcdef");
        snprintf(p, sizeof(p), "%s/d", dir);
        mkdir(p, 0755);
        put(p, "c", "c");
        snprintf(p, sizeof(p), "%s/d/e", dir);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/up", dir);
        symlink("../..", p);
        snprintf(p, sizeof(p), "%s/shadow", dir);
        symlink("/etc/shadow", p);
        snprintf(p, sizeof(p), "%s/fifo", dir);
        mkfifo(p, 0644);
        snprintf(p, sizeof(p), "%s/null", dir);
        mknod(p, S_IFCHR | 0666, makedev(1, 3));
}

static void rm_rf(const char *dir)
{
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        (void)!system(cmd);
}

static smolvm_fs *new_fs(const char *root, bool ro)
{
        smolvm_fs *fs = NULL;
        /* Few fds: inode fds are evicted and re-resolved all the time. */
        smolvm_fs_config cfg = { .root = root, .read_only = ro, .max_inodes = 64, .max_handles = 16,
                                 .max_write = 64 * 1024, .max_fds = 6 };
        if (smolvm_fs_new(&cfg, &fs) < 0)
                abort();
        struct {
                struct fuse_in_header h;
                struct fuse_init_in i;
        } init = { { sizeof(init), FUSE_INIT, 1, 0, 0, 0, 0, 0 }, { 7, 37, 65536, 0xffffffffu, 0, { 0 } } };
        static uint8_t out[4096];
        struct iovec in = { &init, sizeof(init) }, ov = { out, sizeof(out) };
        smolvm_fs_handle(fs, &in, 1, &ov, 1);
        return fs;
}

/* A signature of the read-only tree and the file beside both trees: names,
 * sizes, mtimes and the bytes of the small files. */
static uint64_t ro_signature(void)
{
        static const char *const names[] = { "ro", "ro/a.txt", "ro/b.bin", "ro/d", "ro/d/c", "ro/d/e",
                                             "ro/up", "ro/shadow", "ro/fifo", "secret" };
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                char p[256];
                struct stat st;
                snprintf(p, sizeof(p), "%s/%s", base, names[i]);
                if (lstat(p, &st) < 0)
                        st = (struct stat){ .st_mode = 0xdead };
                uint64_t v[] = { st.st_mode, (uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
                                 (uint64_t)st.st_mtim.tv_nsec, st.st_nlink };
                for (size_t k = 0; k < ARRAY_SIZE(v); k++)
                        h = (h ^ v[k]) * 0x100000001b3ull;
                char buf[64] = {0};
                int fd = S_ISREG(st.st_mode) ? open(p, O_RDONLY | O_CLOEXEC) : -1;
                if (fd >= 0) {
                        (void)!read(fd, buf, sizeof(buf));
                        close(fd);
                }
                for (size_t k = 0; k < sizeof(buf); k++)
                        h = (h ^ (uint8_t)buf[k]) * 0x100000001b3ull;
        }
        return h;
}

static uint64_t ro_sig0;

/* libFuzzer ends a run with exit(): the trees go with it (not after a crash). */
static void remove_base(void)
{
        rm_rf(base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        snprintf(base, sizeof(base), "/tmp/smolvm-fuzz-fs-XXXXXX");
        if (!mkdtemp(base))
                abort();
        atexit(remove_base);
        char p[128];
        snprintf(p, sizeof(p), "%s/ro", base);
        make_tree(p);
        fs_ro = new_fs(p, true);
        snprintf(p, sizeof(p), "%s/rw", base);
        make_tree(p);
        fs_rw = new_fs(p, false);
        put(base, "secret", "outside\n");
        ro_sig0 = ro_signature();
        return 0;
}

static void remember(int which, const uint8_t *out, ssize_t n, uint32_t opcode)
{
        struct fuse_out_header oh;
        if (n < (ssize_t)sizeof(oh))
                return;
        memcpy(&oh, out, sizeof(oh));
        if (oh.error != 0)
                return;
        if ((opcode == FUSE_LOOKUP || opcode == FUSE_MKDIR || opcode == FUSE_CREATE || opcode == FUSE_MKNOD ||
             opcode == FUSE_SYMLINK || opcode == FUSE_LINK) &&
            n >= (ssize_t)(sizeof(oh) + sizeof(struct fuse_entry_out))) {
                uint64_t id;
                memcpy(&id, out + sizeof(oh), sizeof(id));
                last_nodeids[which][n_inputs & 7] = id;
        }
        if (opcode == FUSE_OPEN || opcode == FUSE_OPENDIR) {
                uint64_t fh;
                memcpy(&fh, out + sizeof(oh), sizeof(fh));
                last_fhs[which][n_inputs & 7] = fh;
        }
        if (opcode == FUSE_CREATE && n >= (ssize_t)(sizeof(oh) + sizeof(struct fuse_entry_out) + 8)) {
                uint64_t fh;
                memcpy(&fh, out + sizeof(oh) + sizeof(struct fuse_entry_out), sizeof(fh));
                last_fhs[which][n_inputs & 7] = fh;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static uint8_t req[200 * 1024];
        static uint8_t out[200 * 1024];
        if (size < 3 || size - 3 > sizeof(req))
                return 0;
        uint8_t ctl = data[0];
        uint8_t hint = data[1], hint2 = data[2];
        int which = ctl & 1;
        smolvm_fs *fs = which ? fs_rw : fs_ro;
        size_t len = size - 3;
        memcpy(req, data + 3, len);
        n_inputs++;

        struct fuse_in_header h = {0};
        if (len >= sizeof(h)) {
                memcpy(&h, req, sizeof(h));
                if (ctl & 2)
                        h.len = (uint32_t)len;
                if (h.nodeid < 16)
                        h.nodeid = h.nodeid < 2 ? 1 : last_nodeids[which][hint & 7];
                memcpy(req, &h, sizeof(h));
                /* Most ops carry an fh in their first 8 argument bytes. */
                if (len >= sizeof(h) + 8 && hint2 < 128) {
                        uint64_t fh;
                        memcpy(&fh, req + sizeof(h), 8);
                        if (fh < 16)
                                fh = last_fhs[which][hint2 & 7];
                        memcpy(req + sizeof(h), &fh, 8);
                }
                if (which) {
                        if (h.opcode == FUSE_FALLOCATE)
                                return 0;
                        if (h.opcode == FUSE_WRITE && len >= sizeof(h) + 16)
                                memset(req + sizeof(h) + 8 + 3, 0, 5); /* offset < 16 MiB */
                        if (h.opcode == FUSE_SETATTR && len >= sizeof(h) + 24)
                                memset(req + sizeof(h) + 16 + 3, 0, 5); /* size < 16 MiB */
                }
        }

        int pieces = 1 + ((ctl >> 2) & 7);
        struct iovec in[8];
        size_t off = 0;
        for (int i = 0; i < pieces; i++) {
                size_t take = i == pieces - 1 ? len - off : (len - off) / (size_t)(pieces - i);
                in[i].iov_base = req + off;
                in[i].iov_len = take;
                off += take;
        }
        /* Class 0: no reply buffer at all, as virtio-fs sends FORGET and
         * BATCH_FORGET on its hiprio queue; only no-reply ops are served then. */
        static const size_t out_sizes[8] = { 0, 8, 16, 40, 144, 4096, 70000, sizeof(out) };
        size_t cap = out_sizes[(ctl >> 5) & 7];
        struct iovec ov[2] = { { out, cap / 2 }, { out + cap / 2, cap - cap / 2 } };
        bool noreply = h.opcode == FUSE_FORGET || h.opcode == FUSE_BATCH_FORGET || h.opcode == FUSE_INTERRUPT ||
                       h.opcode == FUSE_NOTIFY_REPLY;
        if (noreply && len >= sizeof(h))
                memset(out, 0xa5, 64);
        ssize_t n = smolvm_fs_handle(fs, in, pieces, cap ? ov : NULL, cap ? 2 : 0);
        if (n > (ssize_t)cap)
                abort();
        /* A no-reply op never answers, and never writes into the buffer. */
        if (noreply && len >= sizeof(h) && (n > 0 || out[0] != 0xa5 || out[63] != 0xa5))
                abort();
        if (n >= 16) {
                struct fuse_out_header oh;
                memcpy(&oh, out, sizeof(oh));
                if (oh.len != (uint32_t)n)
                        abort();
        }
        remember(which, out, n, h.opcode);

        if (which && n_inputs % 20000 == 0) {
                /* The rw tree wears out: rebuild it under a fresh instance. */
                smolvm_fs_free(fs_rw);
                char p[128];
                snprintf(p, sizeof(p), "%s/rw", base);
                rm_rf(p);
                make_tree(p);
                fs_rw = new_fs(p, false);
                memset(last_nodeids[1], 0, sizeof(last_nodeids[1]));
                memset(last_fhs[1], 0, sizeof(last_fhs[1]));
        }
        /* The ro tree and the outside file never change: if they did, the
         * server let a write through or out. */
        if (n_inputs % 512 == 0 && ro_signature() != ro_sig0)
                abort();
        return 0;
}
