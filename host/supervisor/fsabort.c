/* SPDX-License-Identifier: Apache-2.0 */
/* The fuse_abort request to the guest agent (fsabort.h): one agent operation
 * on the event loop (common/agent_client_loop.h) over a socketpair whose
 * other end the mux relays. */
#include "fsabort.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent_client_loop.h"
#include "util.h"

/* The answer is a short JSON object; anything bigger is not one. */
#define ANSWER_MAX (64u * 1024u)

struct sup_fsabort {
        sup_fsabort_done_cb done; /* NULL once called */
        void *userdata;
        smolvm_agent_loop_call *call;
        int connect_err; /* the mux's connect result (0: accepted or still pending) */
        char result[512]; /* what the RESULT says was done */
};

/* The RESULT, in words for the log. */
static void on_event(void *userdata, const smolvm_agent_event *ev)
{
        sup_fsabort *a = userdata;
        if (ev->kind != SMOLVM_AGENT_EV_RESULT)
                return;
        const char *method = json_string_value(json_object_get(ev->result, "method"));
        const char *fstype = json_string_value(json_object_get(ev->result, "fstype"));
        if (method && strcmp(method, "fence") == 0)
                snprintf(a->result, sizeof(a->result),
                         "the guest covered the %.32s mount with an aborted one (Linux cannot abort virtio-fs); "
                         "processes that were already waiting on it keep waiting",
                         fstype ? fstype : "?");
        else
                snprintf(a->result, sizeof(a->result),
                         "the guest aborted FUSE connection %lld (%.32s); %lld request(s) were waiting",
                         (long long)json_integer_value(json_object_get(ev->result, "connection")),
                         fstype ? fstype : "?", (long long)json_integer_value(json_object_get(ev->result, "waiting")));
        smolvm_agent_sanitize(a->result); /* fstype is the guest's word */
}

static void on_done(void *userdata, int err, const char *why)
{
        sup_fsabort *a = userdata;
        sup_fsabort_done_cb done = a->done;
        char msg[256];

        a->done = NULL;
        if (!done)
                return;
        if (err == 0) {
                done(a->userdata, 0, a->result);
                return;
        }
        if (err == -ECONNRESET && a->connect_err < 0) {
                /* The mux refused the stream and closed its end: our EOF. */
                err = a->connect_err;
                snprintf(msg, sizeof(msg), "cannot open a stream to the guest agent: %s", strerror(-err));
        } else if (err == -ECONNRESET) {
                snprintf(msg, sizeof(msg), "%s (an agent older than fuse_abort, or the VM stopped)", why);
        } else if (err == -ETIMEDOUT) {
                snprintf(msg, sizeof(msg), "the guest agent did not answer within %u s", SUP_FSABORT_TIMEOUT_MS / 1000);
        } else {
                snprintf(msg, sizeof(msg), "%s", why); /* the agent's ERROR message, or what was wrong with its answer */
        }
        done(a->userdata, err, msg);
}

static void connect_cb(void *userdata, int err, uint32_t local_port)
{
        sup_fsabort *a = userdata;

        /* On failure the mux closes its end right after this: the call sees EOF. */
        a->connect_err = err;
}

int sup_fsabort_start(smolvm_evloop *loop, smolvm_mux *mux, const char *guest_path, sup_fsabort_done_cb done,
                      void *userdata, sup_fsabort **ret)
{
        static const smolvm_agent_loop_ops ops = { .event = on_event, .done = on_done };
        int sp[2], r;

        json_t *o = json_pack("{s:s, s:s}", "op", "fuse_abort", "path", guest_path);
        _cleanup_free_ char *req = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!req)
                return -ENOMEM;
        sup_fsabort *a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                r = negative_errno();
                free(a);
                return r;
        }
        /* The request waits in the socketpair until the mux, once the agent
         * accepted, relays it; the timer bounds the whole exchange. */
        r = smolvm_agent_loop_call_start(loop, sp[1], SMOLVM_AGENT_REPLY_ANSWER, ANSWER_MAX, req, strlen(req),
                                         SUP_FSABORT_TIMEOUT_MS, &ops, a, &a->call);
        if (r < 0) {
                safe_close(sp[0]);
                free(a);
                return r;
        }
        /* Last: from here on the mux owns sp[0] (even on failure, which closes it). */
        r = smolvm_mux_connect(mux, SMOLVM_AGENT_PORT, sp[0], connect_cb, a);
        if (r < 0) {
                smolvm_agent_loop_call_free(a->call);
                free(a);
                return r;
        }
        a->done = done;
        a->userdata = userdata;
        *ret = a;
        return 0;
}

void sup_fsabort_free(sup_fsabort *a)
{
        if (!a)
                return;
        smolvm_agent_loop_call_free(a->call);
        free(a);
}
