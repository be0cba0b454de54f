/* SPDX-License-Identifier: Apache-2.0 */
/* Passing fds over a unix socket (SCM_RIGHTS); see fdpass.h. */
#include "fdpass.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

/* A control buffer for FDPASS_MAX_FDS fds, aligned for struct cmsghdr. */
typedef union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX_FDS)];
} fd_cmsg_buf;

ssize_t fdpass_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds, int flags)
{
        if (len == 0 || n_fds > FDPASS_MAX_FDS)
                return -EINVAL;
        fd_cmsg_buf u;
        memset(&u, 0, sizeof(u));
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (n_fds > 0) {
                mh.msg_control = u.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }
        ssize_t n;
        do
                n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n < 0 ? negative_errno() : n;
}

ssize_t fdpass_recv(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *ret_n_fds, int flags)
{
        if (max_fds > FDPASS_MAX_FDS)
                return -EINVAL;
        fd_cmsg_buf u;
        struct iovec iov = { .iov_base = buf, .iov_len = len };
        /* Room for max_fds only (cmsg alignment may leave room for one more,
         * hence the count below): the kernel truncates beyond it (MSG_CTRUNC)
         * and drops what does not fit. No room at all: no control buffer. */
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (max_fds > 0) {
                mh.msg_control = u.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds);
        }
        ssize_t n;
        do
                n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();

        /* Every fd the kernel installed, kept or not (one more than max_fds at
         * most, by the buffer's size). */
        int got[FDPASS_MAX_FDS + 2];
        size_t n_got = 0;
        bool too_many = false;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
                        if (n_got < ARRAY_SIZE(got))
                                got[n_got++] = fd;
                        else {
                                safe_close(fd);
                                too_many = true;
                        }
                }
        }
        int r = 0;
        if (too_many || n_got > max_fds || (mh.msg_flags & MSG_CTRUNC))
                r = -EBADMSG;
        else if (mh.msg_flags & MSG_TRUNC)
                r = -EMSGSIZE;
        if (r < 0) {
                for (size_t i = 0; i < n_got; i++)
                        safe_close(got[i]);
                return r;
        }
        if (n_got > 0)
                memcpy(fds, got, sizeof(int) * n_got);
        *ret_n_fds = n_got;
        return n;
}
