/* SPDX-License-Identifier: Apache-2.0 */
/* Hybrid vsock + one agent REQUEST, then hand the socket over to FUSE
 * (fuse_client.h). Reads are exact (header, then payload; the handshake line
 * byte by byte): after the answer the guest may start sending FUSE messages at
 * once, and none of them may be swallowed here. */
#include "fuse_client.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent_proto.h"
#include "util.h"

/* An answer to fuse_mount/fuse_serve is a short JSON object. */
#define ANSWER_MAX (64u * 1024u)

static int fail(int r, char *errbuf, size_t errbuf_len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(int r, char *errbuf, size_t errbuf_len, const char *fmt, ...)
{
        if (errbuf && errbuf_len) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(errbuf, errbuf_len, fmt, ap);
                va_end(ap);
        }
        return r;
}

/* Read exactly len bytes before deadline. Returns 0, -EPIPE on EOF, -ETIMEDOUT,
 * or negative errno. */
static int read_exact(int fd, void *buf, size_t len, uint64_t deadline)
{
        uint8_t *p = buf;
        while (len > 0) {
                uint64_t now = now_ms();
                if (now >= deadline)
                        return -ETIMEDOUT;
                struct pollfd pf = { .fd = fd, .events = POLLIN };
                int k = poll(&pf, 1, (int)MIN(deadline - now, 1000u));
                if (k < 0 && errno != EINTR)
                        return negative_errno();
                if (k <= 0)
                        continue;
                ssize_t n = read(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        if (errno == ECONNRESET)
                                return -EPIPE;
                        return negative_errno();
                }
                if (n == 0)
                        return -EPIPE;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

static int connect_vsock(const char *vm_dir, char *errbuf, size_t errbuf_len)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int dirfd = -1;
        int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vsock.sock", vm_dir);
        if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
                /* sun_path holds 108 bytes; a deep $SMOLVM_HOME goes through /proc. */
                dirfd = open(vm_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (dirfd < 0)
                        return fail(negative_errno(), errbuf, errbuf_len, "open %s: %s", vm_dir, strerror(errno));
                snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/vsock.sock", dirfd);
        }
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return fail(negative_errno(), errbuf, errbuf_len, "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = negative_errno();
                return fail(r == -ENOENT ? -ECONNREFUSED : r, errbuf, errbuf_len, "connect %s/vsock.sock: %s",
                            vm_dir, strerror(-r));
        }
        return TAKE_FD(fd);
}

int smolvm_fuse_client_request(int fd, const char *request_json, uint64_t deadline, char *errbuf,
                               size_t errbuf_len)
{
        size_t req_len = strlen(request_json);
        int r;

        if (req_len > SMOLVM_FRAME_MAX_PAYLOAD)
                return fail(-E2BIG, errbuf, errbuf_len, "request too large");
        uint8_t hdr[SMOLVM_FRAME_HDR_SIZE];
        smolvm_frame_hdr_encode(SMOLVM_FRAME_REQUEST, (uint32_t)req_len, hdr);
        r = write_all(fd, hdr, sizeof(hdr));
        if (r == 0)
                r = write_all(fd, request_json, req_len);
        if (r < 0)
                return fail(r, errbuf, errbuf_len, "send request: %s", strerror(-r));

        r = read_exact(fd, hdr, sizeof(hdr), deadline);
        if (r == -EPIPE)
                return fail(-ECONNRESET, errbuf, errbuf_len,
                            "the guest agent closed the stream without an answer (too old for FUSE, or the VM stopped)");
        if (r < 0)
                return fail(r, errbuf, errbuf_len, "waiting for the guest agent: %s", strerror(-r));
        uint32_t plen = get_le32(hdr);
        uint16_t type = get_le16(hdr + 4);
        if (plen > ANSWER_MAX || get_le16(hdr + 6) != 0 ||
            (type != SMOLVM_FRAME_RESULT && type != SMOLVM_FRAME_ERROR))
                return fail(-EPROTO, errbuf, errbuf_len, "the guest agent sent an unexpected frame (type %u)", type);
        _cleanup_free_ char *payload = malloc(plen + 1);
        if (!payload)
                return fail(-ENOMEM, errbuf, errbuf_len, "out of memory");
        r = read_exact(fd, payload, plen, deadline);
        if (r < 0)
                return fail(r == -EPIPE ? -ECONNRESET : r, errbuf, errbuf_len, "reading the agent's answer: %s",
                            strerror(-r));
        json_error_t jerr;
        json_t *o = json_loadb(payload, plen, 0, &jerr);
        if (!json_is_object(o)) {
                json_decref(o);
                return fail(-EPROTO, errbuf, errbuf_len, "the guest agent sent a malformed answer");
        }
        if (type == SMOLVM_FRAME_ERROR) {
                json_int_t e = json_integer_value(json_object_get(o, "errno"));
                const char *msg = json_string_value(json_object_get(o, "message"));
                r = (e > 0 && e < 4096) ? -(int)e : -EPROTO;
                /* The guest's text is shown to a user: printable ASCII only. */
                fail(r, errbuf, errbuf_len, "%s", msg ? msg : strerror(-r));
                for (char *p = errbuf; errbuf && errbuf_len && *p; p++)
                        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                                *p = '?';
                json_decref(o);
                return r;
        }
        bool ok = json_is_true(json_object_get(o, "ok"));
        json_decref(o);
        if (!ok)
                return fail(-EPROTO, errbuf, errbuf_len, "the guest agent's answer lacks \"ok\": true");
        return 0;
}

int smolvm_fuse_client_open(const char *vm_dir, const char *request_json, char *errbuf, size_t errbuf_len)
{
        uint64_t deadline = now_ms() + SMOLVM_FUSE_CLIENT_TIMEOUT_MS;
        size_t req_len = strlen(request_json);
        if (req_len > SMOLVM_FRAME_MAX_PAYLOAD)
                return fail(-E2BIG, errbuf, errbuf_len, "request too large");

        _cleanup_close_ int fd = connect_vsock(vm_dir, errbuf, errbuf_len);
        if (fd < 0)
                return fd;
        char line[32];
        int len = snprintf(line, sizeof(line), "CONNECT %u\n", SMOLVM_AGENT_PORT);
        int r = write_all(fd, line, (size_t)len);
        if (r < 0)
                return fail(r, errbuf, errbuf_len, "send CONNECT: %s", strerror(-r));
        size_t got = 0;
        for (;;) {
                char c;
                r = read_exact(fd, &c, 1, deadline);
                if (r == -EPIPE)
                        return fail(-ECONNREFUSED, errbuf, errbuf_len,
                                    "the guest refused the connection to port %u (is the VM running?)",
                                    SMOLVM_AGENT_PORT);
                if (r < 0)
                        return fail(r, errbuf, errbuf_len, "hybrid vsock handshake: %s", strerror(-r));
                if (c == '\n')
                        break;
                if (got + 1 >= sizeof(line))
                        return fail(-EPROTO, errbuf, errbuf_len, "hybrid vsock handshake: reply too long");
                line[got++] = c;
        }
        line[got] = '\0';
        if (strncmp(line, "OK ", 3) != 0)
                return fail(-EPROTO, errbuf, errbuf_len, "hybrid vsock handshake: unexpected reply");

        r = smolvm_fuse_client_request(fd, request_json, deadline, errbuf, errbuf_len);
        if (r < 0)
                return r;
        return TAKE_FD(fd);
}
