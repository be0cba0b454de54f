/* SPDX-License-Identifier: Apache-2.0 */
/* Hybrid vsock client (Firecracker's protocol, docs/internals.md): connect to
 * DIR/vsock.sock, "CONNECT <port>\n", expect "OK <n>\n", then a byte stream. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "smolvm_i.h"
#include "util.h"
#include "vmdir.h"

/* Wait for fd to become ready for events, honouring a deadline and a cancel fd.
 * Returns 0, -ETIMEDOUT, -ECANCELED or negative errno. */
static int wait_fd(int fd, short events, uint64_t deadline, int cancel_fd)
{
        for (;;) {
                uint64_t now = now_ms();
                if (now >= deadline)
                        return -ETIMEDOUT;
                struct pollfd p[2] = { { .fd = fd, .events = events },
                                       { .fd = cancel_fd > 0 ? cancel_fd : -1, .events = POLLIN } };
                int k = poll(p, 2, (int)MIN(deadline - now, 1000u));
                if (k < 0 && errno != EINTR)
                        return negative_errno();
                if (k > 0 && p[1].revents)
                        return -ECANCELED;
                if (k > 0 && p[0].revents)
                        return 0;
        }
}

/* Nobody answered in time: the guest is hung or stopped, or the supervisor is. A
 * timeout of its kind, named for what the user can act on. */
static int not_responding(const char *vm_dir, uint32_t port, const char *step)
{
        const char *id = strrchr(vm_dir, '/') ? strrchr(vm_dir, '/') + 1 : vm_dir;
        char hint[256];
        snprintf(hint, sizeof(hint),
                 "the guest may be hung or the host overloaded: `smolvm logs %s` shows its console, "
                 "`smolvm stop %s && smolvm start %s` restarts it",
                 id, id, id);
        return vm_error(SMOLVM_EUNREACHABLE, hint, "VM %s is not responding: %s (port %u) within %u s", id, step,
                        port, CONNECT_TIMEOUT_MS / 1000u);
}

int vsock_connect(const char *vm_dir, uint32_t port, int cancel_fd)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int dirfd = -1;
        int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/" VMDIR_VSOCK, vm_dir);
        if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
                /* sun_path holds 108 bytes; a deep $SMOLVM_HOME goes through /proc instead. */
                dirfd = open(vm_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (dirfd < 0)
                        return vm_error(negative_errno(), NULL, "open %s: %s", vm_dir, strerror(errno));
                snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" VMDIR_VSOCK, dirfd);
        }
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return vm_error(negative_errno(), NULL, "socket: %s", strerror(errno));
        uint64_t deadline = now_ms() + CONNECT_TIMEOUT_MS;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = negative_errno();
                if (r == -EINPROGRESS || r == -EAGAIN) {
                        r = wait_fd(fd, POLLOUT, deadline, cancel_fd);
                        int soerr = 0;
                        socklen_t sl = sizeof(soerr);
                        if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr)
                                r = -soerr;
                }
                if (r == -ETIMEDOUT)
                        return not_responding(vm_dir, port, "its supervisor did not accept the connection");
                if (r < 0)
                        return vm_error(r, r == -ENOENT || r == -ECONNREFUSED ? "is the VM running?" : NULL,
                                        "connect %s/" VMDIR_VSOCK ": %s", vm_dir, strerror(-r));
        }

        char req[32];
        int len = snprintf(req, sizeof(req), "CONNECT %u\n", port);
        size_t done = 0;
        while (done < (size_t)len) {
                ssize_t k = send(fd, req + done, (size_t)len - done, MSG_NOSIGNAL);
                if (k < 0) {
                        int r = negative_errno();
                        if (r == -EINTR)
                                continue;
                        if (r == -EAGAIN)
                                r = wait_fd(fd, POLLOUT, deadline, cancel_fd);
                        if (r == -ETIMEDOUT)
                                return not_responding(vm_dir, port, "its supervisor took no request");
                        if (r < 0)
                                return vm_error(r, NULL, "send CONNECT to %s/" VMDIR_VSOCK ": %s", vm_dir,
                                                strerror(-r));
                        continue;
                }
                done += (size_t)k;
        }

        /* Byte by byte: nothing after the "OK" line may be consumed here. */
        char line[32];
        size_t got = 0;
        for (;;) {
                char c;
                ssize_t k = read(fd, &c, 1);
                if (k < 0) {
                        int r = negative_errno();
                        if (r == -EINTR)
                                continue;
                        if (r == -EAGAIN)
                                r = wait_fd(fd, POLLIN, deadline, cancel_fd);
                        if (r == -ETIMEDOUT)
                                return not_responding(vm_dir, port, "the guest agent did not answer");
                        if (r < 0)
                                return vm_error(r, NULL, "hybrid vsock handshake on port %u: %s", port,
                                                strerror(-r));
                        continue;
                }
                /* The supervisor closes the stream when the guest refuses it (at
                 * once) or when the guest never answers (after its own connect
                 * timeout, as long as ours): the time tells which. */
                if (k == 0 && now_ms() + CONNECT_TIMEOUT_MS / 2 >= deadline)
                        return not_responding(vm_dir, port, "the guest agent did not answer");
                if (k == 0)
                        return vm_error(-ECONNREFUSED, "the guest agent is not listening (did the VM crash?)",
                                        "guest refused the connection to port %u", port);
                if (c == '\n')
                        break;
                if (got + 1 >= sizeof(line))
                        return vm_error(-EPROTO, NULL, "hybrid vsock handshake on port %u: reply too long", port);
                line[got++] = c;
        }
        line[got] = '\0';
        if (strncmp(line, "OK ", 3) != 0 || !line[3] || strspn(line + 3, "0123456789") != strlen(line + 3))
                return vm_error(-EPROTO, NULL, "hybrid vsock handshake on port %u: unexpected reply", port);
        return TAKE_FD(fd);
}
