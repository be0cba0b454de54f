/* SPDX-License-Identifier: Apache-2.0 */
/* FUSE over a stream (fs/fuse_stream.h): the serving end against a temp tree
 * over a socketpair (framing errors, truncation, FORGET without reply, LOOKUP/
 * GETATTR/READ round trips, EROFS), the relay with a SOCK_SEQPACKET pair standing
 * in for /dev/fuse (one message per read/write, like the device): reassembly of
 * split and coalesced replies, INIT clamping, bad lengths, cancel, and the whole
 * chain fake-kernel -> relay -> stream -> server. With root and /dev/fuse, a real
 * kernel mount is served through relay + stream and used with ordinary syscalls. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "fs_test_tree.h"
#include "fuse_stream.h"
#include "util.h"

#define IN_HDR sizeof(struct fuse_in_header)
#define OUT_HDR sizeof(struct fuse_out_header)

/* ---- message helpers ------------------------------------------------------- */

static size_t make_req(uint8_t *buf, uint32_t opcode, uint64_t unique, uint64_t nodeid, const void *body,
                       size_t body_len)
{
        struct fuse_in_header h = { .len = (uint32_t)(IN_HDR + body_len), .opcode = opcode, .unique = unique,
                                    .nodeid = nodeid };
        memcpy(buf, &h, IN_HDR);
        if (body_len)
                memcpy(buf + IN_HDR, body, body_len);
        return IN_HDR + body_len;
}

static void send_req(int fd, uint32_t opcode, uint64_t unique, uint64_t nodeid, const void *body, size_t body_len)
{
        uint8_t buf[4096];
        size_t n = make_req(buf, opcode, unique, nodeid, body, body_len);
        ck_assert_int_eq(write_all(fd, buf, n), 0);
}

/* Read one reply from a stream (header, then the rest). Returns its length. */
static size_t recv_reply(int fd, uint8_t *buf, size_t cap)
{
        ck_assert_int_eq(read_all(fd, buf, OUT_HDR), 0);
        struct fuse_out_header oh;
        memcpy(&oh, buf, OUT_HDR);
        ck_assert_uint_ge(oh.len, OUT_HDR);
        ck_assert_uint_le(oh.len, cap);
        ck_assert_int_eq(read_all(fd, buf + OUT_HDR, oh.len - OUT_HDR), 0);
        return oh.len;
}

static struct fuse_out_header out_hdr(const uint8_t *buf)
{
        struct fuse_out_header oh;
        memcpy(&oh, buf, OUT_HDR);
        return oh;
}

static void do_init(int fd, uint64_t unique)
{
        struct fuse_init_in in = { .major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION,
                                   .max_readahead = 65536 };
        send_req(fd, FUSE_INIT, unique, 0, &in, sizeof(in));
        uint8_t buf[4096];
        recv_reply(fd, buf, sizeof(buf));
        struct fuse_out_header oh = out_hdr(buf);
        ck_assert_int_eq(oh.error, 0);
        ck_assert_uint_eq(oh.unique, unique);
}

/* ---- the serving end ------------------------------------------------------- */

static fs_test_tree tree;
static smolvm_fs *fs;
static int sp[2] = { -1, -1 }; /* [0] the test (client), [1] the server */

/* The fs server on one end of a stream, in a thread of its own. */
typedef struct server_thread {
        pthread_t thread;
        int fd;
        int ret; /* smolvm_fs_serve_stream()'s, once joined */
} server_thread;

static server_thread server;

static void *serve_thread(void *arg)
{
        server_thread *st = arg;
        st->ret = smolvm_fs_serve_stream(fs, st->fd);
        return NULL;
}

static void start_server(server_thread *st, int fd)
{
        st->fd = fd;
        ck_assert_int_eq(pthread_create(&st->thread, NULL, serve_thread, st), 0);
}

/* Close the client's sending side and collect the server's return value. */
static int finish_server(server_thread *st, int client_fd)
{
        shutdown(client_fd, SHUT_WR);
        pthread_join(st->thread, NULL);
        return st->ret;
}

/* The read-only share: the test tree and the fs that serves it. */
static void share_make(void)
{
        ck_assert_int_eq(fs_test_tree_make(&tree), 0);
        smolvm_fs_config cfg = { .root = tree.share, .read_only = true, .keep_open = true };
        ck_assert_int_eq(smolvm_fs_new(&cfg, &fs), 0);
}

static void share_free(void)
{
        smolvm_fs_free(fs);
        fs = NULL;
        fs_test_tree_remove(&tree);
}

static void setup_serve(void)
{
        share_make();
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        start_server(&server, sp[1]);
}

static int finish_serve(void)
{
        return finish_server(&server, sp[0]);
}

static void teardown_serve(void)
{
        safe_close(sp[0]);
        safe_close(sp[1]);
        sp[0] = sp[1] = -1;
        share_free();
}

START_TEST(test_serve_clean_eof)
{
        ck_assert_int_eq(finish_serve(), 0);
}
END_TEST

static void send_raw_len(uint32_t len)
{
        uint8_t buf[IN_HDR];
        memset(buf, 0, sizeof(buf));
        memcpy(buf, &len, sizeof(len));
        ck_assert_int_eq(write_all(sp[0], buf, sizeof(buf)), 0);
}

START_TEST(test_serve_len_zero)
{
        send_raw_len(0);
        ck_assert_int_eq(finish_serve(), -EPROTO);
}
END_TEST

START_TEST(test_serve_len_below_header)
{
        send_raw_len((uint32_t)IN_HDR - 1);
        ck_assert_int_eq(finish_serve(), -EPROTO);
}
END_TEST

START_TEST(test_serve_len_above_max)
{
        send_raw_len(SMOLVM_FUSE_STREAM_MAX + 1);
        /* Refused from the header alone: no need to send the megabyte. */
        pthread_join(server.thread, NULL);
        ck_assert_int_eq(server.ret, -EPROTO);
}
END_TEST

START_TEST(test_serve_len_max_ok)
{
        /* Exactly the maximum is still a message (answered ENOSYS / an error),
         * and the stream goes on. */
        do_init(sp[0], 1);
        uint8_t *big = calloc(1, SMOLVM_FUSE_STREAM_MAX);
        struct fuse_in_header h = { .len = SMOLVM_FUSE_STREAM_MAX, .opcode = 9999, .unique = 2, .nodeid = 1 };
        memcpy(big, &h, IN_HDR);
        ck_assert_int_eq(write_all(sp[0], big, SMOLVM_FUSE_STREAM_MAX), 0);
        free(big);
        uint8_t buf[4096];
        recv_reply(sp[0], buf, sizeof(buf));
        ck_assert_uint_eq(out_hdr(buf).unique, 2);
        ck_assert_int_lt(out_hdr(buf).error, 0);
        ck_assert_int_eq(finish_serve(), 0);
}
END_TEST

START_TEST(test_serve_truncated_then_eof)
{
        do_init(sp[0], 1);
        uint8_t buf[256];
        const char name[] = "hello.txt";
        size_t n = make_req(buf, FUSE_LOOKUP, 2, FUSE_ROOT_ID, name, sizeof(name));
        ck_assert_int_eq(write_all(sp[0], buf, n - 3), 0);
        ck_assert_int_eq(finish_serve(), -EPIPE);
}
END_TEST

START_TEST(test_serve_forget_no_reply_and_lookup_getattr)
{
        do_init(sp[0], 1);
        const char name[] = "hello.txt";
        send_req(sp[0], FUSE_LOOKUP, 2, FUSE_ROOT_ID, name, sizeof(name));
        uint8_t buf[8192];
        size_t n = recv_reply(sp[0], buf, sizeof(buf));
        ck_assert_int_eq(out_hdr(buf).error, 0);
        ck_assert_uint_eq(out_hdr(buf).unique, 2);
        ck_assert_uint_ge(n, OUT_HDR + sizeof(struct fuse_entry_out));
        struct fuse_entry_out e;
        memcpy(&e, buf + OUT_HDR, sizeof(e));
        ck_assert_uint_eq(e.attr.size, strlen(FS_TEST_HELLO));
        ck_assert(S_ISREG(e.attr.mode));

        /* A second lookup, then forget one of the two: FORGET gets no reply, so
         * the next reply on the stream is the GETATTR's. */
        send_req(sp[0], FUSE_LOOKUP, 3, FUSE_ROOT_ID, name, sizeof(name));
        recv_reply(sp[0], buf, sizeof(buf));
        struct fuse_forget_in fi = { .nlookup = 1 };
        send_req(sp[0], FUSE_FORGET, 4, e.nodeid, &fi, sizeof(fi));
        struct fuse_getattr_in gi = { 0 };
        send_req(sp[0], FUSE_GETATTR, 5, e.nodeid, &gi, sizeof(gi));
        n = recv_reply(sp[0], buf, sizeof(buf));
        ck_assert_uint_eq(out_hdr(buf).unique, 5);
        ck_assert_int_eq(out_hdr(buf).error, 0);
        struct fuse_attr_out ao;
        ck_assert_uint_ge(n, OUT_HDR + sizeof(ao));
        memcpy(&ao, buf + OUT_HDR, sizeof(ao));
        ck_assert_uint_eq(ao.attr.size, strlen(FS_TEST_HELLO));
        ck_assert_uint_eq(ao.attr.ino, e.attr.ino);

        /* A mutation is refused by the server: EROFS comes back over the stream. */
        struct {
                struct fuse_mkdir_in in;
                char name[4];
        } mk = { { .mode = 0755 }, "new" };
        send_req(sp[0], FUSE_MKDIR, 6, FUSE_ROOT_ID, &mk, sizeof(mk));
        recv_reply(sp[0], buf, sizeof(buf));
        ck_assert_uint_eq(out_hdr(buf).unique, 6);
        ck_assert_int_eq(out_hdr(buf).error, -EROFS);
        ck_assert_int_eq(finish_serve(), 0);
        char p[1024];
        snprintf(p, sizeof(p), "%s/new", tree.share);
        ck_assert_int_ne(access(p, F_OK), 0);
}
END_TEST

/* ---- the relay, with a SEQPACKET pair as /dev/fuse ------------------------- */

static int dev[2] = { -1, -1 };    /* [0] relay's "/dev/fuse", [1] the fake kernel */
static int strm[2] = { -1, -1 };   /* [0] relay's stream, [1] the peer */
static int cancel_p[2] = { -1, -1 };
static pthread_t relay_t;
static int relay_ret;

static void *relay_thread(void *arg)
{
        (void)arg;
        relay_ret = smolvm_fuse_relay_cancellable(dev[0], strm[0], cancel_p[0]);
        return NULL;
}

static void setup_relay(void)
{
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, dev), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, strm), 0);
        ck_assert_int_eq(pipe2(cancel_p, O_CLOEXEC), 0);
        ck_assert_int_eq(pthread_create(&relay_t, NULL, relay_thread, NULL), 0);
}

static void teardown_relay(void)
{
        int *fds[] = { dev, strm, cancel_p };
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
                safe_close(fds[i][0]);
                safe_close(fds[i][1]);
                fds[i][0] = fds[i][1] = -1;
        }
}

/* The stream's far end (the server's side) goes away: the relay's return value. */
static int relay_peer_gone(void)
{
        safe_close(strm[1]);
        strm[1] = -1;
        pthread_join(relay_t, NULL);
        return relay_ret;
}

/* One message from the fake device, with a timeout. */
static ssize_t dev_recv(uint8_t *buf, size_t cap)
{
        struct pollfd p = { .fd = dev[1], .events = POLLIN };
        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        return read(dev[1], buf, cap);
}

static size_t make_init_reply(uint8_t *buf, uint64_t unique, uint32_t max_write, uint16_t max_pages)
{
        struct fuse_init_out io = { .major = 7, .minor = 31, .max_write = max_write, .max_pages = max_pages,
                                    .flags = FUSE_MAX_PAGES };
        struct fuse_out_header oh = { .len = (uint32_t)(OUT_HDR + sizeof(io)), .unique = unique };
        memcpy(buf, &oh, OUT_HDR);
        memcpy(buf + OUT_HDR, &io, sizeof(io));
        return oh.len;
}

START_TEST(test_relay_requests_replies_and_init_clamp)
{
        /* kernel -> relay -> peer: the request arrives byte for byte. */
        uint8_t req[512], got[512];
        struct fuse_init_in in = { .major = 7, .minor = 31 };
        size_t n = make_req(req, FUSE_INIT, 7, 0, &in, sizeof(in));
        ck_assert_int_eq(write(dev[1], req, n), (ssize_t)n);
        ck_assert_int_eq(read_all(strm[1], got, n), 0);
        ck_assert_mem_eq(got, req, n);

        /* peer -> relay -> kernel: an INIT reply sent in three pieces arrives as
         * one message, with max_write/max_pages clamped to the stream's limit. */
        uint8_t rep[512];
        size_t rn = make_init_reply(rep, 7, 16u << 20, 4096);
        ck_assert_int_eq(write_all(strm[1], rep, 5), 0);
        usleep(20000);
        ck_assert_int_eq(write_all(strm[1], rep + 5, 30), 0);
        usleep(20000);
        ck_assert_int_eq(write_all(strm[1], rep + 35, rn - 35), 0);
        uint8_t kb[1024];
        ck_assert_int_eq(dev_recv(kb, sizeof(kb)), (ssize_t)rn);
        struct fuse_init_out io;
        memcpy(&io, kb + OUT_HDR, sizeof(io));
        ck_assert_uint_eq(io.max_write, SMOLVM_FUSE_STREAM_MAX_WRITE);
        ck_assert_uint_eq(io.max_pages, SMOLVM_FUSE_STREAM_MAX_WRITE / 4096u);
        ck_assert_uint_eq(io.minor, 31);

        /* Two replies in one write come out as two messages. */
        struct fuse_out_header a = { .len = (uint32_t)OUT_HDR, .unique = 8 };
        struct fuse_out_header b = { .len = (uint32_t)OUT_HDR + 4, .unique = 9 };
        uint8_t two[2 * OUT_HDR + 4];
        memcpy(two, &a, OUT_HDR);
        memcpy(two + OUT_HDR, &b, OUT_HDR);
        memcpy(two + 2 * OUT_HDR, "abcd", 4);
        ck_assert_int_eq(write_all(strm[1], two, sizeof(two)), 0);
        ck_assert_int_eq(dev_recv(kb, sizeof(kb)), (ssize_t)OUT_HDR);
        ck_assert_uint_eq(out_hdr(kb).unique, 8);
        ck_assert_int_eq(dev_recv(kb, sizeof(kb)), (ssize_t)OUT_HDR + 4);
        ck_assert_uint_eq(out_hdr(kb).unique, 9);
        ck_assert_mem_eq(kb + OUT_HDR, "abcd", 4);

        /* The peer goes away between messages: a clean end. */
        ck_assert_int_eq(relay_peer_gone(), 0);
}
END_TEST

START_TEST(test_relay_small_init_reply_not_overread)
{
        /* An old-style 8-byte INIT reply (error only) is passed as is. */
        uint8_t req[512];
        struct fuse_init_in in = { .major = 7, .minor = 31 };
        size_t n = make_req(req, FUSE_INIT, 1, 0, &in, sizeof(in));
        ck_assert_int_eq(write(dev[1], req, n), (ssize_t)n);
        uint8_t got[512];
        ck_assert_int_eq(read_all(strm[1], got, n), 0);
        struct fuse_out_header oh = { .len = (uint32_t)OUT_HDR, .error = -EPROTO, .unique = 1 };
        ck_assert_int_eq(write_all(strm[1], &oh, sizeof(oh)), 0);
        uint8_t kb[64];
        ck_assert_int_eq(dev_recv(kb, sizeof(kb)), (ssize_t)OUT_HDR);
        ck_assert_int_eq(out_hdr(kb).error, -EPROTO);
        ck_assert_int_eq(relay_peer_gone(), 0);
}
END_TEST

START_TEST(test_relay_bad_reply_len)
{
        uint32_t lens[] = { 0, (uint32_t)OUT_HDR - 1, SMOLVM_FUSE_STREAM_MAX + 1 };
        uint32_t len = lens[_i];
        uint8_t buf[OUT_HDR];
        memset(buf, 0, sizeof(buf));
        memcpy(buf, &len, sizeof(len));
        ck_assert_int_eq(write_all(strm[1], buf, sizeof(buf)), 0);
        pthread_join(relay_t, NULL);
        ck_assert_int_eq(relay_ret, -EPROTO);
        /* Nothing reached the kernel. */
        struct pollfd p = { .fd = dev[1], .events = POLLIN };
        ck_assert_int_eq(poll(&p, 1, 0), 0);
}
END_TEST

START_TEST(test_relay_truncated_reply_then_eof)
{
        struct fuse_out_header oh = { .len = (uint32_t)OUT_HDR + 100, .unique = 3 };
        ck_assert_int_eq(write_all(strm[1], &oh, sizeof(oh)), 0);
        ck_assert_int_eq(relay_peer_gone(), -EPIPE);
}
END_TEST

START_TEST(test_relay_cancel)
{
        usleep(20000);
        ck_assert_int_eq(write(cancel_p[1], "x", 1), 1);
        pthread_join(relay_t, NULL);
        ck_assert_int_eq(relay_ret, -ECANCELED);
}
END_TEST

/* A stream lost under a live connection (a restored VM): what was sent and not
 * answered is kept across relay runs and failed with EIO; no-reply ops are not
 * kept; the relay goes on over a new stream. */
static smolvm_fuse_pending pend;

static void *tracked_thread(void *arg)
{
        relay_ret = smolvm_fuse_relay_tracked(dev[0], *(int *)arg, -1, &pend);
        return NULL;
}

static void setup_pending(void)
{
        memset(&pend, 0, sizeof(pend));
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, dev), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, strm), 0);
}

static void stream_recv_req(int fd, uint64_t want_unique)
{
        struct fuse_in_header ih;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        ck_assert_int_eq(read(fd, &ih, sizeof(ih)), (ssize_t)sizeof(ih));
        ck_assert_uint_eq(ih.unique, want_unique);
        uint8_t rest[256];
        if (ih.len > sizeof(ih))
                ck_assert_int_eq(read(fd, rest, ih.len - sizeof(ih)), (ssize_t)(ih.len - sizeof(ih)));
}

START_TEST(test_relay_pending_across_streams)
{
        int s1 = strm[0];
        ck_assert_int_eq(pthread_create(&relay_t, NULL, tracked_thread, &s1), 0);
        uint8_t req[256], got[256];
        struct fuse_getattr_in gi = { 0 };
        struct fuse_forget_in fi = { .nlookup = 1 };
        size_t n = make_req(req, FUSE_GETATTR, 11, 1, &gi, sizeof(gi));
        ck_assert_int_eq(write(dev[1], req, n), (ssize_t)n);
        stream_recv_req(strm[1], 11);
        n = make_req(req, FUSE_FORGET, 12, 5, &fi, sizeof(fi));
        ck_assert_int_eq(write(dev[1], req, n), (ssize_t)n);
        stream_recv_req(strm[1], 12);
        n = make_req(req, FUSE_GETATTR, 13, 1, &gi, sizeof(gi));
        ck_assert_int_eq(write(dev[1], req, n), (ssize_t)n);
        stream_recv_req(strm[1], 13);
        struct fuse_out_header oh = { .len = OUT_HDR, .unique = 13 };
        ck_assert_int_eq(write_all(strm[1], &oh, sizeof(oh)), 0);
        ck_assert_int_eq(dev_recv(got, sizeof(got)), (ssize_t)OUT_HDR);
        ck_assert_uint_eq(out_hdr(got).unique, 13);
        ck_assert_int_eq(relay_peer_gone(), 0);
        /* 11 waits for ever unless failed; 12 (FORGET) never had a reply. */
        ck_assert_uint_eq(pend.n, 1);
        ck_assert_uint_eq(pend.unique[0], 11);
        ck_assert_uint_eq(smolvm_fuse_pending_fail(&pend, dev[0], -EIO), 1);
        ck_assert_int_eq(dev_recv(got, sizeof(got)), (ssize_t)OUT_HDR);
        ck_assert_uint_eq(out_hdr(got).unique, 11);
        ck_assert_int_eq(out_hdr(got).error, -EIO);
        ck_assert_uint_eq(pend.n, 0);
        /* A new stream: the relay goes on. */
        int s2[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s2), 0);
        safe_close(strm[0]);
        strm[0] = s2[0];
        strm[1] = s2[1];
        ck_assert_int_eq(pthread_create(&relay_t, NULL, tracked_thread, &strm[0]), 0);
        n = make_req(req, FUSE_GETATTR, 14, 1, &gi, sizeof(gi));
        ck_assert_int_eq(write(dev[1], req, n), (ssize_t)n);
        stream_recv_req(strm[1], 14);
        ck_assert_int_eq(relay_peer_gone(), 0);
        ck_assert_uint_eq(pend.n, 1);
}
END_TEST

/* fake kernel -> relay -> stream -> fs server, and back. */
static server_thread chain_server;

static void kernel_call(uint32_t opcode, uint64_t unique, uint64_t nodeid, const void *body, size_t body_len,
                        uint8_t *rep, size_t cap)
{
        uint8_t req[4096];
        size_t n = make_req(req, opcode, unique, nodeid, body, body_len);
        ck_assert_int_eq(write(dev[1], req, n), (ssize_t)n);
        ssize_t k = dev_recv(rep, cap);
        ck_assert_int_ge(k, (ssize_t)OUT_HDR);
        ck_assert_uint_eq(out_hdr(rep).len, (uint32_t)k);
        ck_assert_uint_eq(out_hdr(rep).unique, unique);
}

START_TEST(test_relay_chain_to_server)
{
        share_make();
        start_server(&chain_server, strm[1]);

        uint8_t rep[8192];
        struct fuse_init_in in = { .major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION };
        kernel_call(FUSE_INIT, 1, 0, &in, sizeof(in), rep, sizeof(rep));
        ck_assert_int_eq(out_hdr(rep).error, 0);

        const char name[] = "hello.txt";
        kernel_call(FUSE_LOOKUP, 2, FUSE_ROOT_ID, name, sizeof(name), rep, sizeof(rep));
        ck_assert_int_eq(out_hdr(rep).error, 0);
        struct fuse_entry_out e;
        memcpy(&e, rep + OUT_HDR, sizeof(e));

        struct fuse_open_in oi = { .flags = O_RDONLY };
        kernel_call(FUSE_OPEN, 3, e.nodeid, &oi, sizeof(oi), rep, sizeof(rep));
        ck_assert_int_eq(out_hdr(rep).error, 0);
        struct fuse_open_out oo;
        memcpy(&oo, rep + OUT_HDR, sizeof(oo));

        struct fuse_read_in ri = { .fh = oo.fh, .offset = 0, .size = 4096 };
        kernel_call(FUSE_READ, 4, e.nodeid, &ri, sizeof(ri), rep, sizeof(rep));
        ck_assert_int_eq(out_hdr(rep).error, 0);
        ck_assert_uint_eq(out_hdr(rep).len - OUT_HDR, strlen(FS_TEST_HELLO));
        ck_assert_mem_eq(rep + OUT_HDR, FS_TEST_HELLO, strlen(FS_TEST_HELLO));

        struct fuse_open_in wo = { .flags = O_WRONLY | O_TRUNC };
        kernel_call(FUSE_OPEN, 5, e.nodeid, &wo, sizeof(wo), rep, sizeof(rep));
        ck_assert_int_eq(out_hdr(rep).error, -EROFS);

        /* The stream side ends: the server sees EOF once the relay is gone. */
        ck_assert_int_eq(write(cancel_p[1], "x", 1), 1);
        pthread_join(relay_t, NULL);
        ck_assert_int_eq(relay_ret, -ECANCELED);
        ck_assert_int_eq(finish_server(&chain_server, strm[0]), 0);
        share_free();
}
END_TEST

/* ---- a real kernel mount: /dev/fuse -> relay -> stream -> server ----------- */

static char real_mnt[600];

static void teardown_mount(void)
{
        if (real_mnt[0])
                (void)umount2(real_mnt, MNT_DETACH);
        teardown_relay();
}

START_TEST(test_real_mount_through_relay)
{
        int fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (fuse_fd < 0 || geteuid() != 0) {
                safe_close(fuse_fd);
                fprintf(stderr, "# skipping: needs root and /dev/fuse\n");
                return;
        }
        share_make();
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, strm), 0);
        ck_assert_int_eq(pipe2(cancel_p, O_CLOEXEC), 0);
        dev[0] = fuse_fd;
        char *mnt = real_mnt, opts[200];
        snprintf(real_mnt, sizeof(real_mnt), "%s/mnt", tree.base);
        ck_assert_int_eq(mkdir(mnt, 0755), 0);
        snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,max_read=%u", fuse_fd,
                 SMOLVM_FUSE_STREAM_MAX_WRITE);
        ck_assert_int_eq(mount("smolvm-test", mnt, "fuse.smolvm", MS_NOSUID | MS_NODEV, opts), 0);
        start_server(&chain_server, strm[1]);
        ck_assert_int_eq(pthread_create(&relay_t, NULL, relay_thread, NULL), 0);

        char p[700], buf[64] = "";
        snprintf(p, sizeof(p), "%s/hello.txt", mnt);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(read(fd, buf, sizeof(buf) - 1), (ssize_t)strlen(FS_TEST_HELLO));
        close(fd);
        ck_assert_str_eq(buf, FS_TEST_HELLO);
        /* A large file: READs of up to max_pages through the 1 MiB stream limit. */
        snprintf(p, sizeof(p), "%s/big.bin", mnt);
        fd = open(p, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        uint8_t *big = malloc(FS_TEST_BIG_BYTES + 16);
        size_t got = 0;
        ssize_t k;
        while ((k = read(fd, big + got, FS_TEST_BIG_BYTES + 16 - got)) > 0)
                got += (size_t)k;
        close(fd);
        ck_assert_uint_eq(got, FS_TEST_BIG_BYTES);
        for (size_t i = 0; i < got; i++)
                if (big[i] != fs_test_big_byte(i))
                        ck_abort_msg("big.bin byte %zu differs", i);
        free(big);
        snprintf(p, sizeof(p), "%s/new-file", mnt);
        errno = 0;
        ck_assert_int_lt(open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), 0);
        ck_assert_int_eq(errno, EROFS);
        DIR *d = opendir(mnt);
        ck_assert_ptr_nonnull(d);
        int n_entries = 0;
        while (readdir(d))
                n_entries++;
        closedir(d);
        ck_assert_int_ge(n_entries, 5);

        /* Unmount: the relay sees ENODEV and returns 0; then the server sees EOF. */
        ck_assert_int_eq(umount2(mnt, 0), 0);
        real_mnt[0] = '\0';
        pthread_join(relay_t, NULL);
        ck_assert_int_eq(relay_ret, 0);
        ck_assert_int_eq(finish_server(&chain_server, strm[0]), 0);
        share_free();
}
END_TEST

/* The event-driven relay (PID 1's): every request the kernel has queued goes
 * out in one step, before any reply; replies in any order reach the kernel;
 * a stream's end says which side ended; a new stream carries on. */
START_TEST(test_relay_ev_many_in_flight)
{
        smolvm_fuse_relay_ev *rl = NULL;
        ck_assert_int_eq(smolvm_fuse_relay_ev_new(dev[0], strm[0], &pend, &rl), 0);
        uint32_t dev_ev, stream_ev;
        smolvm_fuse_relay_ev_events(rl, &dev_ev, &stream_ev);
        ck_assert_uint_eq(dev_ev, POLLIN);
        ck_assert_uint_eq(stream_ev, POLLIN);

        uint8_t req[256], got[256];
        struct fuse_getattr_in gi = { 0 };
        for (uint64_t u = 21; u <= 25; u++) {
                size_t n = make_req(req, FUSE_GETATTR, u, 1, &gi, sizeof(gi));
                ck_assert_int_eq(write(dev[1], req, n), (ssize_t)n);
        }
        ck_assert_int_eq(smolvm_fuse_relay_ev_step(rl, POLLIN, 0), 1);
        for (uint64_t u = 21; u <= 25; u++)
                stream_recv_req(strm[1], u);
        ck_assert_uint_eq(pend.n, 5);

        /* Five replies in one write, out of order. */
        uint8_t reps[5 * OUT_HDR];
        static const uint64_t order[5] = { 25, 22, 21, 24, 23 };
        for (size_t i = 0; i < 5; i++) {
                struct fuse_out_header oh = { .len = OUT_HDR, .error = -ENOENT, .unique = order[i] };
                memcpy(reps + i * OUT_HDR, &oh, OUT_HDR);
        }
        ck_assert_int_eq(write_all(strm[1], reps, sizeof(reps)), 0);
        ck_assert_int_eq(smolvm_fuse_relay_ev_step(rl, 0, POLLIN), 1);
        for (size_t i = 0; i < 5; i++) {
                ck_assert_int_eq(dev_recv(got, sizeof(got)), (ssize_t)OUT_HDR);
                ck_assert_uint_eq(out_hdr(got).unique, order[i]);
        }
        ck_assert_uint_eq(pend.n, 0);

        /* One more request, then the stream ends: the stream ended, not the fs. */
        size_t n = make_req(req, FUSE_GETATTR, 26, 1, &gi, sizeof(gi));
        ck_assert_int_eq(write(dev[1], req, n), (ssize_t)n);
        ck_assert_int_eq(smolvm_fuse_relay_ev_step(rl, POLLIN, 0), 1);
        stream_recv_req(strm[1], 26);
        safe_close(strm[1]);
        strm[1] = -1;
        ck_assert_int_eq(smolvm_fuse_relay_ev_step(rl, 0, POLLIN | POLLHUP), 0);
        ck_assert(!smolvm_fuse_relay_ev_dev_gone(rl));

        /* A new stream: 26 is failed by the caller, the relay goes on. */
        ck_assert_uint_eq(smolvm_fuse_pending_fail(&pend, dev[0], -EIO), 1);
        ck_assert_int_eq(dev_recv(got, sizeof(got)), (ssize_t)OUT_HDR);
        ck_assert_uint_eq(out_hdr(got).unique, 26);
        int s2[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s2), 0);
        ck_assert_int_eq(smolvm_fuse_relay_ev_set_stream(rl, s2[0]), 0);
        n = make_req(req, FUSE_GETATTR, 27, 1, &gi, sizeof(gi));
        ck_assert_int_eq(write(dev[1], req, n), (ssize_t)n);
        ck_assert_int_eq(smolvm_fuse_relay_ev_step(rl, POLLIN, 0), 1);
        stream_recv_req(s2[1], 27);
        struct fuse_out_header oh = { .len = OUT_HDR, .unique = 27 };
        ck_assert_int_eq(write_all(s2[1], &oh, sizeof(oh)), 0);
        ck_assert_int_eq(smolvm_fuse_relay_ev_step(rl, 0, POLLIN), 1);
        ck_assert_int_eq(dev_recv(got, sizeof(got)), (ssize_t)OUT_HDR);
        ck_assert_uint_eq(out_hdr(got).unique, 27);

        /* The file system goes away (the device hangs up): dev_gone. */
        ck_assert_int_eq(smolvm_fuse_relay_ev_step(rl, POLLHUP, 0), 0);
        ck_assert(smolvm_fuse_relay_ev_dev_gone(rl));
        smolvm_fuse_relay_ev_free(rl);
        safe_close(s2[0]);
        safe_close(s2[1]);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("fuse_stream");
        TCase *tc = tcase_create("serve");
        tcase_add_checked_fixture(tc, setup_serve, teardown_serve);
        tcase_add_test(tc, test_serve_clean_eof);
        tcase_add_test(tc, test_serve_len_zero);
        tcase_add_test(tc, test_serve_len_below_header);
        tcase_add_test(tc, test_serve_len_above_max);
        tcase_add_test(tc, test_serve_len_max_ok);
        tcase_add_test(tc, test_serve_truncated_then_eof);
        tcase_add_test(tc, test_serve_forget_no_reply_and_lookup_getattr);
        suite_add_tcase(s, tc);

        tc = tcase_create("relay");
        tcase_add_checked_fixture(tc, setup_relay, teardown_relay);
        tcase_add_test(tc, test_relay_requests_replies_and_init_clamp);
        tcase_add_test(tc, test_relay_small_init_reply_not_overread);
        tcase_add_loop_test(tc, test_relay_bad_reply_len, 0, 3);
        tcase_add_test(tc, test_relay_truncated_reply_then_eof);
        tcase_add_test(tc, test_relay_cancel);
        tcase_add_test(tc, test_relay_chain_to_server);
        suite_add_tcase(s, tc);
        tc = tcase_create("pending");
        tcase_add_checked_fixture(tc, setup_pending, teardown_relay);
        tcase_add_test(tc, test_relay_pending_across_streams);
        tcase_add_test(tc, test_relay_ev_many_in_flight);
        suite_add_tcase(s, tc);

        tc = tcase_create("mount");
        tcase_add_checked_fixture(tc, NULL, teardown_mount);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_real_mount_through_relay);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(suite());
}
