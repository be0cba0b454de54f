/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: what the host library makes of the guest agent's replies
 * (docs/protocol.md "Agent protocol"): the frame reader (common/agent_proto.c),
 * agent_call.c's RESULT/ERROR handling, exec.c's STARTED/STDOUT/STDERR/EXIT/
 * ERROR loop, files.c's read_file/list_tree/write_file answers and env.c's.
 *
 * The real public functions run unchanged against a fake agent: a thread
 * listens on <vm dir>/vsock.sock, answers the hybrid-vsock handshake like the
 * supervisor ("OK <port>") and then writes fuzz bytes as the agent's side of
 * the stream. Nothing is factored out of the library: only
 * vm_check_exec_ready() (lifecycle.c, "is a supervisor running?") is replaced.
 *
 * Input: byte 0 = operation (exec with callbacks, run with an output cap,
 * read_file, download, write_file, env list/set/unset, upload), byte 1 = how
 * the fake agent behaves (read the request first or not, write in small
 * pieces, wait for the client to close or close at once, raw bytes or frames
 * whose headers it writes itself), byte 2 = an op parameter (caps, stdin, a
 * callback failing). The rest is what the agent sends; SEP ("||NEXT||")
 * separates the replies of successive connections (a download lists a tree,
 * then reads each file on its own stream).
 *
 * Checked: no crash, leak or undefined behaviour (ASan/UBSan/LSan); every
 * return is 0 or a negative errno; error messages carry no control
 * characters (guest text is sanitised before a terminal sees it); exec's
 * status is in range and smolvm_run/read_file stay within their caps; a
 * download never writes outside its destination, never creates a
 * setuid/setgid file and leaves no temporary file; no fd survives an input.
 *
 *   fuzz_agent -max_len=8192 -dict=tests/fuzz/fuzz_agent.dict tests/fuzz/corpus/fuzz_agent */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent_proto.h"
#include "smolvm_i.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                                   \
        do {                                                                                                       \
                if (!(c)) {                                                                                        \
                        fprintf(stderr, "fuzz_agent: invariant failed at line %d: %s\n", __LINE__, #c);            \
                        abort();                                                                                   \
                }                                                                                                  \
        } while (0)

#define SEP "||NEXT||"
#define MAX_SEGS 64u
/* The fake agent gives up on a client that neither reads nor closes. */
#define STALL_MS 20000

/* Agent behaviour (byte 1). */
#define AG_READ_REQUEST 0x01u /* read the REQUEST frame before answering, as the agent does */
#define AG_LINGER 0x02u       /* after answering, read until the client closes */
#define AG_SMALL_WRITES 0x04u /* answer in 7-byte pieces (frames split across reads) */
#define AG_NO_SHUTDOWN 0x08u  /* close without a half-close first (and without lingering) */
/* The reply is frames written as <type byte><payload> separated by FSEP; the
 * agent adds the headers with the right lengths, so that mutations of the JSON
 * inside do not all die at the length check. */
#define AG_FRAMED 0x10u
#define FSEP "||F||"

/* The one place the library asks whether a supervisor runs (lifecycle.c): here
 * the fake agent always answers. */
int vm_check_exec_ready(smolvm_vm *vm)
{
        return 0;
}

static char base[64];
static bool verbose; /* $FUZZ_VERBOSE: print each operation's result (seed checks) */
static char up_dir[128], dl_dir[128], dl_path[160], outside[128];
static smolvm_vm vm;

static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        const uint8_t *seg[MAX_SEGS]; /* protected by lock */
        size_t seg_len[MAX_SEGS];
        unsigned n_segs;
        unsigned flags;
        unsigned accepted, served;
        int listen_fd;
} ag = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .listen_fd = -1 };

/* ---- the fake agent ---- */

static bool wait_fd(int fd, short events)
{
        struct pollfd p = { .fd = fd, .events = events };
        int k;
        do
                k = poll(&p, 1, STALL_MS);
        while (k < 0 && errno == EINTR);
        if (k == 0) {
                fprintf(stderr, "fuzz_agent: the client neither read nor closed for %d ms\n", STALL_MS);
                abort();
        }
        return k > 0;
}

/* Read and drop what the client sent; false at EOF or an error. */
static bool drop_input(int fd)
{
        static __thread uint8_t sink[65536];
        ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        return n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR));
}

static bool read_exact(int fd, uint8_t *buf, size_t len)
{
        while (len > 0) {
                if (!wait_fd(fd, POLLIN))
                        return false;
                ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                        return false;
                if (n > 0) {
                        buf += n;
                        len -= (size_t)n;
                }
        }
        return true;
}

/* <type><payload> FSEP <type><payload> ... -> frames with their headers. */
static uint8_t *frames_encode(const uint8_t *in, size_t len, size_t *ret_len)
{
        size_t cap = len + SMOLVM_FRAME_HDR_SIZE * (len / strlen(FSEP) + 1);
        uint8_t *out = malloc(cap ? cap : 1), *o = out;
        CHECK(out);
        const uint8_t *end = in + len;
        while (in < end) {
                const uint8_t *s = memmem(in, (size_t)(end - in), FSEP, strlen(FSEP));
                const uint8_t *stop = s ? s : end;
                if (stop > in) {
                        uint32_t plen = (uint32_t)(stop - in - 1);
                        smolvm_frame_hdr_encode(in[0], plen, o);
                        memcpy(o + SMOLVM_FRAME_HDR_SIZE, in + 1, plen);
                        o += SMOLVM_FRAME_HDR_SIZE + plen;
                }
                in = s ? s + strlen(FSEP) : end;
        }
        *ret_len = (size_t)(o - out);
        return out;
}

static void serve(int fd)
{
        char line[64];
        size_t n = 0;
        while (n < sizeof(line)) {
                if (read(fd, line + n, 1) != 1)
                        return;
                if (line[n++] == '\n')
                        break;
        }
        pthread_mutex_lock(&ag.lock);
        unsigned idx = ag.accepted++;
        const uint8_t *seg = idx < ag.n_segs ? ag.seg[idx] : NULL;
        size_t seg_len = idx < ag.n_segs ? ag.seg_len[idx] : 0;
        unsigned flags = ag.flags;
        pthread_mutex_unlock(&ag.lock);
        if (write_all(fd, "OK 49152\n", 9) < 0)
                return;
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                return;

        if (flags & AG_READ_REQUEST) {
                uint8_t hdr[SMOLVM_FRAME_HDR_SIZE];
                if (!read_exact(fd, hdr, sizeof(hdr)))
                        return;
                uint32_t len = get_le32(hdr);
                CHECK(get_le16(hdr + 4) == SMOLVM_FRAME_REQUEST && len <= SMOLVM_FRAME_MAX_PAYLOAD);
                for (uint8_t tmp[4096]; len > 0;) {
                        size_t k = MIN((size_t)len, sizeof(tmp));
                        if (!read_exact(fd, tmp, k))
                                return;
                        len -= (uint32_t)k;
                }
        }
        _cleanup_free_ uint8_t *framed = NULL;
        if ((flags & AG_FRAMED) && seg_len) {
                framed = frames_encode(seg, seg_len, &seg_len);
                seg = framed;
        }
        size_t off = 0, piece = (flags & AG_SMALL_WRITES) ? 7 : seg_len;
        bool open = true;
        while (off < seg_len) {
                struct pollfd p = { .fd = fd, .events = POLLOUT | (open ? POLLIN : 0) };
                if (poll(&p, 1, STALL_MS) == 0) {
                        fprintf(stderr, "fuzz_agent: the client neither read nor closed for %d ms\n", STALL_MS);
                        abort();
                }
                if (p.revents & POLLIN)
                        open = drop_input(fd);
                if (!(p.revents & (POLLOUT | POLLERR | POLLHUP)))
                        continue;
                ssize_t k = send(fd, seg + off, MIN(piece, seg_len - off), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0 && errno != EAGAIN && errno != EINTR)
                        return; /* the client closed */
                if (k > 0)
                        off += (size_t)k;
        }
        if (flags & AG_NO_SHUTDOWN)
                return; /* closed at once: without a half-close a client waiting for
                         * the rest of a frame would wait for its idle timeout */
        (void)shutdown(fd, SHUT_WR);
        while ((flags & AG_LINGER) && wait_fd(fd, POLLIN) && drop_input(fd))
                ;
}

static void *agent_thread(void *arg)
{
        for (;;) {
                int fd = accept4(ag.listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        continue;
                serve(fd);
                close(fd);
                pthread_mutex_lock(&ag.lock);
                ag.served++;
                pthread_cond_broadcast(&ag.cond);
                pthread_mutex_unlock(&ag.lock);
        }
        return NULL;
}

/* ---- fixtures ---- */

static void put(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CHECK(fd >= 0);
        CHECK(write_all(fd, text, strlen(text)) == 0);
        close(fd);
}

static bool same_text(const char *path, const char *text)
{
        char buf[64] = { 0 };
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        return n >= 0 && !strcmp(buf, text);
}

static int count_entries(const char *path)
{
        DIR *d = opendir(path);
        if (!d)
                return -1;
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
        closedir(d);
        return n;
}

static int count_fds(void)
{
        return count_entries("/proc/self/fd") - 1; /* the directory's own fd */
}

static int rm_quiet(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        (void)(type == FTW_DP ? rmdir(path) : unlink(path));
        return 0;
}

/* libFuzzer ends a run with exit(): the fixtures go with it (not after a crash). */
static void remove_base(void)
{
        nftw(base, rm_quiet, 16, FTW_PHYS | FTW_DEPTH);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        verbose = getenv("FUZZ_VERBOSE") != NULL;
        snprintf(base, sizeof(base), "/tmp/smolvm-fuzz-agent-XXXXXX");
        CHECK(mkdtemp(base));
        atexit(remove_base);
        char p[192];
        snprintf(p, sizeof(p), "%s/vm", base);
        CHECK(mkdir(p, 0700) == 0);
        snprintf(up_dir, sizeof(up_dir), "%s/up", base);
        CHECK(mkdir(up_dir, 0755) == 0);
        snprintf(p, sizeof(p), "%s/a.txt", up_dir);
        put(p, "upload a\n");
        snprintf(p, sizeof(p), "%s/sub", up_dir);
        CHECK(mkdir(p, 0755) == 0);
        snprintf(p, sizeof(p), "%s/sub/b.txt", up_dir);
        put(p, "upload b\n");
        snprintf(p, sizeof(p), "%s/link", up_dir);
        CHECK(symlink("a.txt", p) == 0);
        snprintf(outside, sizeof(outside), "%s/outside", base);
        CHECK(mkdir(outside, 0755) == 0);
        snprintf(p, sizeof(p), "%s/canary", outside);
        put(p, "canary\n");
        snprintf(dl_dir, sizeof(dl_dir), "%s/dl", base);
        snprintf(dl_path, sizeof(dl_path), "%s/x", dl_dir);

        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vm/vsock.sock", base);
        ag.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(ag.listen_fd >= 0);
        CHECK(bind(ag.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
        CHECK(listen(ag.listen_fd, 16) == 0);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, agent_thread, NULL) == 0);
        CHECK(pthread_detach(t) == 0);

        snprintf(vm.id, sizeof(vm.id), "0123456789ab");
        vm.home = base;
        snprintf(p, sizeof(p), "%s/vm", base);
        vm.dir = strdup(p);
        vm.cancel_fd = -1;
        pthread_mutex_init(&vm.lock, NULL);
        vm.state = VM_RUNNING;
        return 0;
}

/* ---- checks ---- */

static void check_error(int r)
{
        CHECK(r <= 0 && r >= -4095);
        const smolvm_error *e = smolvm_last_error();
        if (verbose)
                fprintf(stderr, "fuzz_agent: %d %s\n", r, r ? e->message : "");
        if (r == 0)
                return;
        CHECK(e->code == r);
        /* What a terminal shows: no escape sequence or other control byte from
         * the guest (sanitize_text's rule). */
        for (const char *s = e->message; *s; s++)
                CHECK(((unsigned char)*s >= 0x20 && *s != 0x7f) || *s == '\n' || *s == '\t');
        for (const char *s = e->hint; *s; s++)
                CHECK(((unsigned char)*s >= 0x20 && *s != 0x7f) || *s == '\n' || *s == '\t');
}

static bool input_has(const uint8_t *d, size_t n, const char *s)
{
        return memmem(d, n, s, strlen(s)) != NULL;
}

static bool tmp_found;

static int dl_visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        const char *name = path + ftw->base;
        if (S_ISREG(st->st_mode))
                CHECK(!(st->st_mode & (S_ISUID | S_ISGID)));
        if (!strncmp(name, ".smolvm-", 8) && strlen(name) == 8 + SMOLVM_ID_LEN + 4 &&
            !strcmp(name + 8 + SMOLVM_ID_LEN, ".tmp"))
                tmp_found = true;
        return 0;
}

static int rm_visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        if (type == FTW_DP)
                CHECK(rmdir(path) == 0);
        else
                CHECK(unlink(path) == 0);
        return 0;
}

/* Nothing outside dl/ changed; inside it, no setuid file and no temp file. */
static void check_download(const uint8_t *d, size_t n)
{
        char p[192];
        CHECK(count_entries(base) == 3 + (access(dl_dir, F_OK) == 0));
        CHECK(count_entries(outside) == 1);
        snprintf(p, sizeof(p), "%s/canary", outside);
        CHECK(same_text(p, "canary\n"));
        snprintf(p, sizeof(p), "%s/vm", base);
        CHECK(count_entries(p) == 1);
        CHECK(count_entries(up_dir) == 3);
        snprintf(p, sizeof(p), "%s/a.txt", up_dir);
        CHECK(same_text(p, "upload a\n"));
        if (access(dl_dir, F_OK) != 0)
                return;
        /* Modes first: a directory the guest made 0 must still be walked and removed. */
        tmp_found = false;
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "chmod -R u+rwX '%s' 2>/dev/null", dl_dir);
        (void)!system(cmd);
        CHECK(nftw(dl_dir, dl_visit, 16, FTW_PHYS) == 0);
        CHECK(!tmp_found || input_has(d, n, ".smolvm-"));
        CHECK(nftw(dl_dir, rm_visit, 16, FTW_PHYS | FTW_DEPTH) == 0);
}

/* ---- operations ---- */

typedef struct exec_seen {
        unsigned fail_after; /* a callback fails on this call (0: never) */
        unsigned calls;
} exec_seen;

static int cb_count(exec_seen *s)
{
        return ++s->calls == s->fail_after ? -ECANCELED : 0;
}

static int on_started(void *ud, int pid)
{
        CHECK(pid >= 0);
        return cb_count(ud);
}

static int on_data(void *ud, const void *data, size_t len)
{
        CHECK(len > 0 && len <= SMOLVM_FRAME_MAX_PAYLOAD);
        volatile uint8_t x = ((const uint8_t *)data)[len - 1];
        (void)x;
        return cb_count(ud);
}

static void check_status(const smolvm_exec_status *st)
{
        CHECK(st->signal >= 0 && st->signal <= 64);
        if (st->signal)
                CHECK(st->exit_code == 128 + st->signal);
        else
                CHECK(st->exit_code >= 0 && st->exit_code <= 255);
}

static const char *const argv_sh[] = { "sh", "-c", "true", NULL };

static void run_operation(uint8_t op, uint8_t param)
{
        static uint8_t big[200000];
        static const size_t caps[] = { 0, 1, 16, 4096 };
        int r;
        switch (op % 9) {
        case 0: { /* exec with callbacks; stdin from bytes or a pipe */
                smolvm_exec_opts o;
                smolvm_exec_opts_init(&o);
                o.argv = argv_sh;
                int pfd[2] = { -1, -1 };
                if (param & 1u) {
                        o.stdin_mode = SMOLVM_STDIN_BYTES;
                        o.stdin_data = big;
                        o.stdin_len = (param & 2u) ? sizeof(big) : 100;
                } else if (param & 2u) {
                        CHECK(pipe2(pfd, O_CLOEXEC) == 0);
                        CHECK(write(pfd[1], "stdin\n", 6) == 6);
                        close(pfd[1]);
                        o.stdin_mode = SMOLVM_STDIN_FD;
                        o.stdin_fd = pfd[0];
                }
                exec_seen seen = { .fail_after = param >> 4 };
                smolvm_exec_callbacks cbs = { .on_started = on_started, .on_stdout = on_data,
                                              .on_stderr = on_data, .userdata = &seen };
                smolvm_exec_status st;
                r = smolvm_exec(&vm, &o, (param & 4u) ? NULL : &cbs, &st);
                check_error(r);
                if (r == 0)
                        check_status(&st);
                safe_close(pfd[0]);
                break;
        }
        case 1: { /* run: buffered, capped */
                smolvm_exec_opts o;
                smolvm_exec_opts_init(&o);
                o.argv = argv_sh;
                o.max_output_bytes = caps[param & 3u];
                smolvm_result res;
                r = smolvm_run(&vm, &o, &res);
                check_error(r);
                if (r == 0) {
                        size_t cap = o.max_output_bytes ? o.max_output_bytes : SMOLVM_DEFAULT_OUTPUT_CAP;
                        check_status(&res.status);
                        CHECK(res.stdout_len <= cap && res.stderr_len <= cap);
                        CHECK(res.stdout_data[res.stdout_len] == 0 && res.stderr_data[res.stderr_len] == 0);
                        smolvm_result_free(&res);
                }
                break;
        }
        case 2: { /* read_file */
                void *data = NULL;
                size_t len = 0, max = caps[param & 3u] ? caps[param & 3u] * 16u : 0;
                r = smolvm_read_file(&vm, "/g/file", &data, &len, max);
                check_error(r);
                if (r == 0) {
                        CHECK(len <= (max ? max : SMOLVM_DEFAULT_READ_MAX));
                        CHECK(((uint8_t *)data)[len] == 0);
                        free(data);
                }
                break;
        }
        case 3: /* download: a file, or a tree (list_tree, then each file, then stat) */
                r = smolvm_download(&vm, (param & 1u) ? "/" : "/g", dl_path);
                check_error(r);
                break;
        case 4: { /* write_file: the agent may answer before all data went out */
                static const size_t sizes[] = { 0, 100, 70000, sizeof(big) };
                r = smolvm_write_file(&vm, "/g/file", big, sizes[param & 3u], 0644);
                check_error(r);
                break;
        }
        case 5: {
                char **kv = NULL;
                r = smolvm_list_env(&vm, &kv);
                check_error(r);
                if (r == 0) {
                        for (size_t i = 0; kv[i]; i++)
                                CHECK(strchr(kv[i], '=') && kv[i][0] != '=');
                        smolvm_env_free(kv);
                }
                break;
        }
        case 6: {
                const char *const kv[] = { "A=1", "B=two words", NULL };
                check_error(smolvm_set_env(&vm, kv));
                break;
        }
        case 7: {
                const char *const keys[] = { "A", NULL };
                check_error(smolvm_unset_env(&vm, keys));
                break;
        }
        case 8: /* upload: mkdir, write_file per file, ln -s through exec */
        default:
                check_error(smolvm_upload(&vm, up_dir, "/g"));
                break;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 3)
                return 0;
        int fds = count_fds();
        uint8_t op = data[0], flags = data[1], param = data[2];
        const uint8_t *p = data + 3, *end = data + size;

        pthread_mutex_lock(&ag.lock);
        ag.n_segs = 0;
        while (ag.n_segs < MAX_SEGS) {
                const uint8_t *s = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
                ag.seg[ag.n_segs] = p;
                ag.seg_len[ag.n_segs++] = (size_t)((s ? s : end) - p);
                if (!s)
                        break;
                p = s + strlen(SEP);
        }
        ag.flags = flags;
        ag.accepted = ag.served = 0;
        pthread_mutex_unlock(&ag.lock);

        run_operation(op, param);

        /* The client is done: the agent thread finishes the connection it serves. */
        pthread_mutex_lock(&ag.lock);
        while (ag.served < ag.accepted) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += STALL_MS / 1000 + 5;
                CHECK(pthread_cond_timedwait(&ag.cond, &ag.lock, &ts) == 0);
        }
        ag.n_segs = 0;
        pthread_mutex_unlock(&ag.lock);

        check_download(data, size);
        CHECK(count_fds() == fds);
        return 0;
}
