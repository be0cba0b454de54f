/* SPDX-License-Identifier: Apache-2.0 */
/* FUSE over vsock mounts served by the supervisor (vsockfs.h). */
#include "vsockfs.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_proto.h"
#include "fuse_client.h"
#include "fuse_stream.h"
#include "log.h"
#include "util.h"

struct sup_vsockfs {
        unsigned index;
        char *guest;
        char *request;    /* the fuse_mount REQUEST payload */
        smolvm_fs *fs;
        smolvm_evloop *loop;
        int wake_fd;      /* eventfd: the thread's state changed */
        int stream_fd;    /* our end of the socketpair; the mux owns the other */
        pthread_t thread;
        bool thread_started;
        int connect_err;  /* main thread only: the mux's connect result */

        pthread_mutex_t lock;
        int state;        /* protected by lock: 0 pending, 1 mounted, < 0 failed */
        char why[512];    /* protected by lock: set with state < 0 */
};

static void set_state(sup_vsockfs *v, int state, const char *why)
{
        uint64_t one = 1;

        pthread_mutex_lock(&v->lock);
        v->state = state;
        if (why)
                snprintf(v->why, sizeof(v->why), "%s", why);
        pthread_mutex_unlock(&v->lock);
        (void)!write(v->wake_fd, &one, sizeof(one));
}

static void *serve_thread(void *arg)
{
        sup_vsockfs *v = arg;
        char err[512] = "";
        int r;

        r = smolvm_fuse_client_request(v->stream_fd, v->request, now_ms() + SUP_VSOCKFS_MOUNT_TIMEOUT_MS, err,
                                       sizeof(err));
        if (r < 0) {
                set_state(v, r, err);
                return NULL;
        }
        set_state(v, 1, NULL);
        r = smolvm_fs_serve_stream(v->fs, v->stream_fd);
        /* The guest unmounting, the VM stopping and our own shutdown all end here. */
        if (r < 0 && r != -EPIPE && r != -ECONNRESET)
                sup_log("mount %u (%s, vsock): stream ended: %s", v->index, v->guest, strerror(-r));
        return NULL;
}

static void wake_cb(void *userdata, int fd, uint32_t events)
{
        uint64_t n;

        (void)userdata;
        (void)events;
        (void)!read(fd, &n, sizeof(n));
}

static void connect_cb(void *userdata, int err, uint32_t local_port)
{
        sup_vsockfs *v = userdata;

        (void)local_port;
        /* On failure the mux closes its end: the thread sees EOF and reports. */
        v->connect_err = err;
}

int sup_vsockfs_start(smolvm_evloop *loop, smolvm_mux *mux, unsigned index, const sup_mount *m,
                      sup_vsockfs **ret, char *err, size_t err_len)
{
        int sp[2], r;

        sup_vsockfs *v = calloc(1, sizeof(*v));
        if (!v) {
                snprintf(err, err_len, "mount %u: out of memory", index);
                return -ENOMEM;
        }
        v->index = index;
        v->loop = loop;
        v->wake_fd = v->stream_fd = -1;
        pthread_mutex_init(&v->lock, NULL);
        v->guest = strdup(m->guest);
        json_t *o = json_pack("{s:s, s:s, s:b}", "op", "fuse_mount", "path", m->guest, "read_only", !m->writable);
        v->request = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!v->guest || !v->request) {
                snprintf(err, err_len, "mount %u: out of memory", index);
                r = -ENOMEM;
                goto fail;
        }
        smolvm_fs_config cfg = { .root = m->host, .read_only = !m->writable };
        r = smolvm_fs_new(&cfg, &v->fs);
        if (r < 0) {
                snprintf(err, err_len, "mount %u (%s): cannot serve %s: %s", index, m->guest, m->host, strerror(-r));
                goto fail;
        }
        v->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (v->wake_fd < 0 || (r = smolvm_evloop_add(loop, v->wake_fd, EPOLLIN, wake_cb, v)) < 0) {
                r = v->wake_fd < 0 ? negative_errno() : r;
                snprintf(err, err_len, "mount %u: eventfd: %s", index, strerror(-r));
                v->wake_fd = safe_close(v->wake_fd);
                goto fail;
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                r = negative_errno();
                snprintf(err, err_len, "mount %u: socketpair: %s", index, strerror(-r));
                goto fail;
        }
        v->stream_fd = sp[1];
        /* The request may be written before the stream is accepted: the mux does
         * not read its end until then, and on refusal it closes it (EPIPE here). */
        r = smolvm_mux_connect(mux, SMOLVM_AGENT_PORT, sp[0], connect_cb, v);
        if (r < 0) {
                snprintf(err, err_len, "mount %u (%s): cannot open a stream to the guest agent: %s", index, m->guest,
                         strerror(-r));
                goto fail;
        }
        r = -pthread_create(&v->thread, NULL, serve_thread, v);
        if (r < 0) {
                snprintf(err, err_len, "mount %u: pthread_create: %s", index, strerror(-r));
                goto fail;
        }
        v->thread_started = true;
        *ret = v;
        return 0;
fail:
        sup_vsockfs_free(v);
        return r;
}

int sup_vsockfs_state(sup_vsockfs *v, char *err, size_t err_len)
{
        int state;

        pthread_mutex_lock(&v->lock);
        state = v->state;
        if (state < 0) {
                if (v->connect_err < 0)
                        snprintf(err, err_len, "mount %u (%s, vsock): cannot connect to the guest agent: %s",
                                 v->index, v->guest, strerror(-v->connect_err));
                else
                        snprintf(err, err_len, "mount %u (%s, vsock): the guest could not mount it: %s", v->index,
                                 v->guest, v->why[0] ? v->why : strerror(-state));
        }
        pthread_mutex_unlock(&v->lock);
        return state;
}

void sup_vsockfs_free(sup_vsockfs *v)
{
        if (!v)
                return;
        if (v->thread_started) {
                /* Wakes the thread in its read (handshake or serve): EOF. */
                (void)shutdown(v->stream_fd, SHUT_RDWR);
                pthread_join(v->thread, NULL);
        }
        safe_close(v->stream_fd);
        if (v->wake_fd >= 0) {
                (void)smolvm_evloop_del(v->loop, v->wake_fd);
                safe_close(v->wake_fd);
        }
        smolvm_fs_free(v->fs);
        pthread_mutex_destroy(&v->lock);
        free(v->request);
        free(v->guest);
        free(v);
}
