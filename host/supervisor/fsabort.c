/* SPDX-License-Identifier: Apache-2.0 */
/* The fuse_abort request to the guest agent (fsabort.h). */
#include "fsabort.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "agent_proto.h"
#include "util.h"

/* The answer is a short JSON object; anything bigger is not one. */
#define ANSWER_MAX (64u * 1024u)

struct sup_fsabort {
        smolvm_evloop *loop;
        sup_fsabort_done_cb done; /* NULL once called */
        void *userdata;
        int fd;          /* our end of the stream's socketpair (the mux owns the other), -1 when done */
        int timer_fd;    /* -1 when done */
        int connect_err; /* the mux's connect result (0: accepted or still pending) */
        bool reader_ready;
        smolvm_frame_reader rd;
};

static void stop_watching(sup_fsabort *a)
{
        if (a->fd >= 0) {
                (void)smolvm_evloop_del(a->loop, a->fd);
                a->fd = safe_close(a->fd);
        }
        if (a->timer_fd >= 0) {
                (void)smolvm_evloop_del(a->loop, a->timer_fd);
                a->timer_fd = safe_close(a->timer_fd);
        }
}

static void finish(sup_fsabort *a, int err, const char *msg)
{
        sup_fsabort_done_cb done = a->done;

        stop_watching(a);
        a->done = NULL;
        if (done)
                done(a->userdata, err, msg);
}

/* One complete frame from the agent: its answer. */
static void answer(sup_fsabort *a, uint16_t type, const uint8_t *payload, uint32_t len)
{
        char msg[512];
        json_t *o = NULL;

        if (type == SMOLVM_FRAME_RESULT || type == SMOLVM_FRAME_ERROR)
                o = json_loadb((const char *)payload, len, 0, NULL);
        if (!json_is_object(o)) {
                json_decref(o);
                finish(a, -EPROTO, "the guest agent sent an unexpected answer");
                return;
        }
        if (type == SMOLVM_FRAME_ERROR) {
                json_int_t e = json_integer_value(json_object_get(o, "errno"));
                const char *m = json_string_value(json_object_get(o, "message"));
                int r = e > 0 && e < 4096 ? -(int)e : -EPROTO;
                /* The guest's words go to our log: printable ASCII only. */
                snprintf(msg, sizeof(msg), "%s", m ? m : strerror(-r));
                for (char *p = msg; *p; p++)
                        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                                *p = '?';
                json_decref(o);
                finish(a, r, msg);
                return;
        }
        if (!json_is_true(json_object_get(o, "ok"))) {
                json_decref(o);
                finish(a, -EPROTO, "the guest agent's answer lacks \"ok\": true");
                return;
        }
        const char *method = json_string_value(json_object_get(o, "method"));
        const char *fstype = json_string_value(json_object_get(o, "fstype"));
        if (method && strcmp(method, "fence") == 0)
                snprintf(msg, sizeof(msg),
                         "the guest covered the %.32s mount with an aborted one (Linux cannot abort virtio-fs); "
                         "processes that were already waiting on it keep waiting",
                         fstype ? fstype : "?");
        else
                snprintf(msg, sizeof(msg), "the guest aborted FUSE connection %lld (%.32s); %lld request(s) were waiting",
                         (long long)json_integer_value(json_object_get(o, "connection")), fstype ? fstype : "?",
                         (long long)json_integer_value(json_object_get(o, "waiting")));
        for (char *p = msg; *p; p++)
                if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                        *p = '?';
        json_decref(o);
        finish(a, 0, msg);
}

static void read_cb(void *userdata, int fd, uint32_t events)
{
        sup_fsabort *a = userdata;
        uint16_t type;
        const uint8_t *payload;
        uint32_t len;

        for (;;) {
                int r = smolvm_frame_reader_next(&a->rd, &type, &payload, &len);
                if (r > 0) {
                        answer(a, type, payload, len);
                        return;
                }
                if (r < 0) {
                        finish(a, -EPROTO, "the guest agent sent a malformed frame");
                        return;
                }
                size_t space = smolvm_frame_reader_space(&a->rd);
                if (space == 0) {
                        finish(a, -EPROTO, "the guest agent's answer is too large");
                        return;
                }
                ssize_t n = read(fd, smolvm_frame_reader_tail(&a->rd), space);
                if (n < 0 && (errno == EINTR))
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        char msg[160];
                        if (a->connect_err < 0)
                                snprintf(msg, sizeof(msg), "cannot open a stream to the guest agent: %s",
                                         strerror(-a->connect_err));
                        else
                                snprintf(msg, sizeof(msg), "the guest agent closed the stream without an answer "
                                                           "(an agent older than fuse_abort, or the VM stopped)");
                        finish(a, a->connect_err < 0 ? a->connect_err : -ECONNRESET, msg);
                        return;
                }
                smolvm_frame_reader_commit(&a->rd, (size_t)n);
        }
}

static void timer_cb(void *userdata, int fd, uint32_t events)
{
        sup_fsabort *a = userdata;
        char msg[96];

        snprintf(msg, sizeof(msg), "the guest agent did not answer within %u s", SUP_FSABORT_TIMEOUT_MS / 1000);
        finish(a, -ETIMEDOUT, msg);
}

static void connect_cb(void *userdata, int err, uint32_t local_port)
{
        sup_fsabort *a = userdata;

        /* On failure the mux closes its end: read_cb sees EOF and reports this. */
        a->connect_err = err;
}

int sup_fsabort_start(smolvm_evloop *loop, smolvm_mux *mux, const char *guest_path, sup_fsabort_done_cb done,
                      void *userdata, sup_fsabort **ret)
{
        _cleanup_free_ char *req = NULL;
        int sp[2], r;

        sup_fsabort *a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->loop = loop;
        a->fd = a->timer_fd = -1;
        json_t *o = json_pack("{s:s, s:s}", "op", "fuse_abort", "path", guest_path);
        req = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!req) {
                r = -ENOMEM;
                goto fail;
        }
        r = smolvm_frame_reader_init(&a->rd, ANSWER_MAX);
        if (r < 0)
                goto fail;
        a->reader_ready = true;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                r = negative_errno();
                goto fail;
        }
        a->fd = sp[1];
        /* Written before the stream exists: the mux reads its end only once the
         * agent accepted, and a request of a path (<= 4 KiB) fits the socket
         * buffer, so this never blocks. */
        size_t req_len = strlen(req);
        uint8_t hdr[SMOLVM_FRAME_HDR_SIZE];
        smolvm_frame_hdr_encode(SMOLVM_FRAME_REQUEST, (uint32_t)req_len, hdr);
        if ((r = write_all(a->fd, hdr, sizeof(hdr))) < 0 || (r = write_all(a->fd, req, req_len)) < 0) {
                safe_close(sp[0]);
                goto fail;
        }
        if (fcntl(a->fd, F_SETFL, O_NONBLOCK) < 0) {
                r = negative_errno();
                safe_close(sp[0]);
                goto fail;
        }
        a->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (a->timer_fd < 0) {
                r = negative_errno();
                safe_close(sp[0]);
                goto fail;
        }
        struct itimerspec its = { .it_value = { .tv_sec = SUP_FSABORT_TIMEOUT_MS / 1000 } };
        if (timerfd_settime(a->timer_fd, 0, &its, NULL) < 0) {
                r = negative_errno();
                safe_close(sp[0]);
                goto fail;
        }
        if ((r = smolvm_evloop_add(loop, a->timer_fd, EPOLLIN, timer_cb, a)) < 0) {
                a->timer_fd = safe_close(a->timer_fd);
                safe_close(sp[0]);
                goto fail;
        }
        if ((r = smolvm_evloop_add(loop, a->fd, EPOLLIN, read_cb, a)) < 0) {
                (void)smolvm_evloop_del(loop, a->timer_fd);
                a->timer_fd = safe_close(a->timer_fd);
                safe_close(sp[0]);
                goto fail;
        }
        /* Last: from here on the mux owns sp[0] (even on failure, which closes it). */
        r = smolvm_mux_connect(mux, SMOLVM_AGENT_PORT, sp[0], connect_cb, a);
        if (r < 0)
                goto fail;
        a->done = done;
        a->userdata = userdata;
        *ret = a;
        return 0;
fail:
        stop_watching(a);
        if (a->reader_ready)
                smolvm_frame_reader_done(&a->rd);
        free(a);
        return r;
}

void sup_fsabort_free(sup_fsabort *a)
{
        if (!a)
                return;
        stop_watching(a);
        if (a->reader_ready)
                smolvm_frame_reader_done(&a->rd);
        free(a);
}
