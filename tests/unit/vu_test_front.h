/* SPDX-License-Identifier: Apache-2.0 */
/* The front-end's (QEMU's) end of a vhost-user socketpair, for the suites that
 * drive common/vhost_user.c (test_vhost_user) and the virtio-fs device on top
 * of it (test_virtiofs): messages sent by hand, guest RAM in a memfd. */
#pragma once

#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "check_main.h"
#include "evloop.h"
#include "fdpass.h"
#include "util.h"
#include "vhost_user.h"

#define VU_TEST_FN static __attribute__((unused))

typedef struct fixture {
        smolvm_evloop *loop;
        smolvm_vu_dev *dev;
        int peer;           /* the front-end's end */
        int n_start, n_stop, n_broken;
        int last_err;
        unsigned last_q;
} fixture;

static fixture *fx;

VU_TEST_FN void send_raw(const void *buf, size_t len, const int *fds, unsigned n_fds)
{
        ck_assert_int_eq(fdpass_send(fx->peer, buf, len, fds, n_fds, 0), (ssize_t)len);
}

VU_TEST_FN void send_msg(uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds, unsigned n_fds)
{
        uint8_t buf[1024];
        put_le32(buf, req);
        put_le32(buf + 4, flags);
        put_le32(buf + 8, size);
        if (size)
                memcpy(buf + 12, payload, size);
        send_raw(buf, 12 + size, fds, n_fds);
}

VU_TEST_FN void send_u64(uint32_t req, uint32_t flags, uint64_t v, const int *fds, unsigned n_fds)
{
        uint8_t p[8];
        put_le64(p, v);
        send_msg(req, flags, p, 8, fds, n_fds);
}

VU_TEST_FN void send_state(uint32_t req, uint32_t q, uint32_t num)
{
        uint8_t p[8];
        put_le32(p, q);
        put_le32(p + 4, num);
        send_msg(req, 1, p, 8, NULL, 0);
}

VU_TEST_FN void pump(void)
{
        for (int i = 0; i < 5; i++)
                smolvm_evloop_run_once(fx->loop, 20);
}

VU_TEST_FN int make_memfd(size_t size)
{
        int fd = memfd_create("guest-ram", MFD_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
        return fd;
}

/* One region: GPA 0, VMM address 0x40000000, file offset 0x1000. */
VU_TEST_FN void send_mem_table(int fd, uint64_t size, uint64_t offset)
{
        uint8_t p[8 + 32];
        memset(p, 0, sizeof(p));
        put_le32(p, 1);
        put_le64(p + 8, 0);
        put_le64(p + 16, size);
        put_le64(p + 24, 0x40000000ull);
        put_le64(p + 32, offset);
        send_msg(SMOLVM_VHOST_USER_SET_MEM_TABLE, 1, p, sizeof(p), &fd, 1);
}
