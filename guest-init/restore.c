/* SPDX-License-Identifier: Apache-2.0 */
/* The "restored" op: what must differ between the clones of one snapshot
 * (Firecracker's "snapshot uniqueness" advice): the kernel RNG state (every
 * child would otherwise draw the same numbers), the wall clock (frozen at the
 * snapshot instant), the hostname and the machine-id. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "fileutil.h"
#include "init.h"
#include "stream.h"
#include "util.h"

#define MACHINE_ID_PATH "/etc/machine-id"

/* RNDADDENTROPY credits the bytes (the host's getrandom() output is full
 * entropy) and RNDRESEEDCRNG makes the CRNG use them now, not at its next
 * scheduled reseed: a child's next read already differs from its siblings'. */
static int reseed(const agent_restore_spec *r)
{
        _cleanup_close_ int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        /* struct rand_pool_info ends in a flexible array: the bytes follow it. */
        _Alignas(struct rand_pool_info) uint8_t raw[sizeof(struct rand_pool_info) + AGENT_RESTORE_ENTROPY_MAX];
        struct rand_pool_info *p = (struct rand_pool_info *)raw;
        p->entropy_count = (int)(r->entropy_len * 8);
        p->buf_size = (int)r->entropy_len;
        memcpy(raw + sizeof(*p), r->entropy, r->entropy_len);
        if (ioctl(fd, RNDADDENTROPY, p) < 0)
                return negative_errno();
        if (ioctl(fd, RNDRESEEDCRNG) < 0)
                return negative_errno();
        return 0;
}

int agent_restored(int fd, const agent_request *req)
{
        const agent_restore_spec *r = &req->restore;
        int k = reseed(r);
        if (k < 0)
                return agent_send_errorf(fd, -k, "restored: reseeding the kernel RNG: %s", strerror(-k));
        bool stepped = false;
        if (r->realtime_ns > 0) {
                struct timespec ts = { .tv_sec = (time_t)(r->realtime_ns / 1000000000),
                                       .tv_nsec = (long)(r->realtime_ns % 1000000000) };
                if (clock_settime(CLOCK_REALTIME, &ts) < 0)
                        return agent_send_errorf(fd, errno, "restored: clock_settime: %m");
                stepped = true;
        }
        if (r->hostname[0] && sethostname(r->hostname, strlen(r->hostname)) < 0)
                return agent_send_errorf(fd, errno, "restored: sethostname %s: %m", r->hostname);
        if (r->machine_id[0]) {
                char line[34];
                snprintf(line, sizeof(line), "%s\n", r->machine_id);
                k = write_file_atomic(MACHINE_ID_PATH, line, 33, 0444);
                if (k < 0)
                        return agent_send_errorf(fd, -k, "restored: write " MACHINE_ID_PATH ": %s", strerror(-k));
        }
        return agent_send_json(fd, SMOLVM_FRAME_RESULT,
                               json_pack("{s:b,s:b,s:b}", "ok", 1, "reseeded", 1, "clock_stepped", stepped));
}
