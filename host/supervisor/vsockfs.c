/* SPDX-License-Identifier: Apache-2.0 */
/* FUSE over vsock mounts served by sandboxed children (vsockfs.h). */
#include "vsockfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_proto.h"
#include "util.h"

#define CHILD_PREFIX "smolvm-virtiofsd: "

struct sup_vsockfs {
        unsigned index;
        char *guest;
        sup_fsd *fsd;
        int connect_err; /* the mux's connect result, if it failed */
};

static void connect_cb(void *userdata, int err, uint32_t local_port)
{
        sup_vsockfs *v = userdata;

        (void)local_port;
        /* On failure the mux closes its end: the child sees EOF and exits. */
        v->connect_err = err;
}

int sup_vsockfs_start(smolvm_evloop *loop, smolvm_mux *mux, unsigned index, const sup_mount_cfg *m, int state_fd,
                      const char *log_path, sup_vsockfs **ret, char *err, size_t err_len)
{
        int sp[2], r;

        sup_vsockfs *v = calloc(1, sizeof(*v));
        if (!v || !(v->guest = strdup(m->guest))) {
                free(v);
                return errbuf_fail(-ENOMEM, err, err_len, "mount %u: out of memory", index);
        }
        v->index = index;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                r = errbuf_fail(negative_errno(), err, err_len, "mount %u: socketpair: %s", index, strerror(errno));
                goto fail;
        }
        r = sup_fsd_start_stream(loop, index, m, sp[1], state_fd, log_path, &v->fsd, err, err_len);
        safe_close(sp[1]);
        if (r < 0) {
                safe_close(sp[0]);
                goto fail;
        }
        /* The child may write its request before the stream is accepted: the mux
         * does not read its end until then, and on refusal it closes it. */
        r = smolvm_mux_connect(mux, SMOLVM_AGENT_PORT, sp[0], connect_cb, v);
        if (r < 0) {
                snprintf(err, err_len, "mount %u (%s): cannot open a stream to the guest agent: %s", index, m->guest,
                         strerror(-r));
                goto fail;
        }
        *ret = v;
        return 0;
fail:
        sup_vsockfs_free(v);
        return r;
}

int sup_vsockfs_state(sup_vsockfs *v, char *err, size_t err_len)
{
        char why[300];
        int state = sup_fsd_ready_state(v->fsd, why, sizeof(why));

        if (state >= 0)
                return state;
        const char *w = why;
        if (strncmp(w, CHILD_PREFIX, strlen(CHILD_PREFIX)) == 0)
                w += strlen(CHILD_PREFIX);
        if (v->connect_err < 0)
                snprintf(err, err_len, "mount %u (%s, vsock): cannot connect to the guest agent: %s", v->index,
                         v->guest, strerror(-v->connect_err));
        else if (strncmp(w, "the guest ", 10) == 0)
                snprintf(err, err_len, "mount %u (%s, vsock): %s", v->index, v->guest, w);
        else
                snprintf(err, err_len, "mount %u (%s, vsock): its file server failed to start: %s", v->index,
                         v->guest, w[0] ? w : "it exited without a word");
        return state;
}

sup_fsd *sup_vsockfs_fsd(sup_vsockfs *v)
{
        return v->fsd;
}

void sup_vsockfs_free(sup_vsockfs *v)
{
        if (!v)
                return;
        sup_fsd_free(v->fsd);
        free(v->guest);
        free(v);
}
