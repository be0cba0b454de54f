/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal synchronous QMP client for pause/resume.
 *
 * Why the library talks QMP itself instead of asking the supervisor: pause and
 * resume already hold the VM's lock (so QMP's one-client-at-a-time rule is kept
 * across processes), they are rare, and QMP answers in milliseconds; the
 * supervisor's event loop then needs no control socket and no second protocol.
 * The QMP socket is created by QEMU inside the private VM dir (0700), so only
 * the VM's owner can reach it. */
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "fdpass.h"
#include "smolvm_i.h"
#include "unixsock.h"
#include "util.h"
#include "vmdir.h"

#define QMP_TIMEOUT_MS 5000u
#define QMP_LINE_MAX (64u * 1024u)

struct qmp_conn {
        int fd;
        char buf[QMP_LINE_MAX];
        size_t len;
        uint64_t deadline;
};

/* Next JSON message that is not an asynchronous event. Returns it (decref it) or
 * NULL with the error recorded. */
static json_t *qmp_read(qmp_conn *c, const char *what)
{
        for (;;) {
                char *nl = memchr(c->buf, '\n', c->len);
                if (nl) {
                        size_t line_len = (size_t)(nl - c->buf);
                        json_t *o = json_loadb(c->buf, line_len, 0, NULL);
                        memmove(c->buf, nl + 1, c->len - line_len - 1);
                        c->len -= line_len + 1;
                        if (!json_is_object(o)) {
                                json_decref(o);
                                vm_error(SMOLVM_EBACKEND, NULL, "QMP %s: invalid reply from QEMU", what);
                                return NULL;
                        }
                        if (json_object_get(o, "event")) {
                                json_decref(o);
                                continue;
                        }
                        return o;
                }
                if (c->len == sizeof(c->buf)) {
                        vm_error(SMOLVM_EBACKEND, NULL, "QMP %s: reply too long", what);
                        return NULL;
                }
                uint64_t now = now_ms();
                if (now >= c->deadline) {
                        vm_error(SMOLVM_ETIMEDOUT, NULL, "QMP %s: QEMU did not answer within %u s", what,
                                 QMP_TIMEOUT_MS / 1000);
                        return NULL;
                }
                struct pollfd p = { .fd = c->fd, .events = POLLIN };
                int k = poll(&p, 1, (int)(c->deadline - now));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        continue;
                ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0) {
                        vm_error(SMOLVM_EBACKEND, NULL, "QMP %s: QEMU closed the connection", what);
                        return NULL;
                }
                c->len += (size_t)n;
        }
}

/* Send {"execute": command, "arguments": args} (args may be NULL; borrowed),
 * with fd passed along (SCM_RIGHTS) if >= 0, and wait for its answer.
 * *ret_return (may be NULL) gets the "return" value (decref it). */
int qmp_call(qmp_conn *c, const char *command, json_t *args, int fd, json_t **ret_return)
{
        json_t *req = json_pack("{s:s}", "execute", command);
        if (req && args)
                json_object_set(req, "arguments", args);
        char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!text)
                return vm_error(-ENOMEM, NULL, "out of memory");
        size_t len = strlen(text);
        int r = 0;
        if (fd >= 0) {
                /* The fd rides with the first byte; the rest follows as usual. */
                ssize_t n = fdpass_send(c->fd, text, 1, &fd, 1, 0);
                r = n < 0 ? (int)n : write_all(c->fd, text + 1, len - 1);
        } else {
                r = write_all(c->fd, text, len);
        }
        r = r < 0 ? r : write_all(c->fd, "\n", 1);
        free(text);
        if (r < 0)
                return vm_error(SMOLVM_EBACKEND, NULL, "QMP %s: write: %s", command, strerror(-r));
        c->deadline = now_ms() + QMP_TIMEOUT_MS;
        json_t *o = qmp_read(c, command);
        if (!o)
                return smolvm_last_error()->code;
        json_t *err = json_object_get(o, "error");
        json_t *ret = json_object_get(o, "return");
        if (err) {
                json_t *desc = json_object_get(err, "desc");
                r = vm_error(SMOLVM_EBACKEND, NULL, "QMP %s failed: %s", command,
                             json_is_string(desc) ? json_string_value(desc) : "unknown error");
        } else if (!ret) {
                r = vm_error(SMOLVM_EBACKEND, NULL, "QMP %s: unexpected reply from QEMU", command);
        } else if (ret_return) {
                *ret_return = json_incref(ret);
        }
        json_decref(o);
        return r;
}

int qmp_open(const char *vm_dir, qmp_conn **ret)
{
        struct sockaddr_un sa;
        _cleanup_close_ int dirfd = -1;
        int ar = unix_sockaddr_at(vm_dir, VMDIR_QMP, &sa, &dirfd);
        if (ar < 0)
                return vm_error(ar, NULL, "open %s: %s", vm_dir, strerror(-ar));
        qmp_conn *c = calloc(1, sizeof(*c));
        if (!c)
                return vm_error(-ENOMEM, NULL, "out of memory");
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                free(c);
                return vm_error(negative_errno(), NULL, "socket: %s", strerror(errno));
        }
        c->deadline = now_ms() + QMP_TIMEOUT_MS;
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = negative_errno();
                qmp_close(c);
                return vm_error(SMOLVM_EBACKEND, "the VM was started by an older smolvm without QMP: restart it",
                                "connect %s/" VMDIR_QMP ": %s", vm_dir, strerror(-r));
        }
        /* Greeting, then capabilities negotiation. */
        json_t *greeting = qmp_read(c, "greeting");
        if (!greeting) {
                qmp_close(c);
                return smolvm_last_error()->code;
        }
        json_decref(greeting);
        int r = qmp_call(c, "qmp_capabilities", NULL, -1, NULL);
        if (r < 0) {
                qmp_close(c);
                return r;
        }
        *ret = c;
        return 0;
}

void qmp_close(qmp_conn *c)
{
        if (!c)
                return;
        safe_close(c->fd);
        free(c);
}

int qmp_command(const char *vm_dir, const char *command)
{
        qmp_conn *c;
        int r = qmp_open(vm_dir, &c);
        if (r < 0)
                return r;
        r = qmp_call(c, command, NULL, -1, NULL);
        qmp_close(c);
        return r;
}
