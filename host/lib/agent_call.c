/* SPDX-License-Identifier: Apache-2.0 */
/* One agent operation over one hybrid-vsock stream, blocking with an idle
 * timeout (agent_call_i.h). Memory is bounded by one frame of the client. */
#include "agent_call_i.h"

#include "agent_client_io.h"
#include "util.h"

int agent_error_record(const smolvm_agent_event *ev)
{
        int r = vm_error(ev->error, NULL, "%s", ev->message);
        vm_error_mark_guest();
        return r;
}

int agent_client_record(const smolvm_agent_client *cl, const char *what)
{
        int r = smolvm_agent_client_error(cl);
        const char *hint = NULL;
        if (r == -ETIMEDOUT)
                hint = "the guest agent is not responding";
        else if (r == -ECONNRESET && cl->reply == SMOLVM_AGENT_REPLY_EXEC)
                hint = "the VM may have crashed or run out of memory";
        else if (r == -ECONNRESET)
                hint = "the guest agent may be too old for this operation, or the VM crashed";
        if (r == -ECANCELED)
                return vm_error(r, NULL, "interrupted");
        return vm_error(r, hint, "%s: %s", what, smolvm_agent_client_why(cl));
}

int agent_call_open(smolvm_vm *vm, json_t *req, const char *what, smolvm_agent_reply reply, agent_call *ret)
{
        if (!vm)
                return vm_error(-EINVAL, NULL, "%s: no VM", what);
        _cleanup_free_ char *s = json_dumps(req, JSON_COMPACT);
        if (!s)
                return vm_error(-ENOMEM, NULL, "%s: out of memory", what);
        size_t len = strlen(s);
        if (len > SMOLVM_FRAME_MAX_PAYLOAD)
                return vm_error(-E2BIG, NULL, "%s: request exceeds %u bytes", what, SMOLVM_FRAME_MAX_PAYLOAD);

        /* Not running / paused get their own codes rather than a refused connect. */
        int r = vm_check_exec_ready(vm);
        if (r < 0)
                return r;
        agent_call c = { .fd = -1, .what = what };
        r = smolvm_agent_client_init(&c.cl, reply, 0);
        if (r == 0)
                r = smolvm_agent_client_request(&c.cl, s, len);
        if (r < 0) {
                smolvm_agent_client_done(&c.cl);
                return vm_error(r, NULL, "%s: out of memory", what);
        }
        /* vm->dir is immutable after create: no lock needed. */
        c.fd = vsock_connect(vm->dir, SMOLVM_AGENT_PORT, -1);
        if (c.fd < 0) {
                r = c.fd;
                smolvm_agent_client_done(&c.cl);
                return r;
        }
        r = agent_call_send(&c, 0, NULL, 0);
        if (r < 0) {
                agent_call_close(&c);
                return r;
        }
        /* r == 1: the agent answered at once (an ERROR); the caller reads it. */
        *ret = c;
        return 0;
}

void agent_call_close(agent_call *c)
{
        if (!c)
                return;
        c->fd = safe_close(c->fd);
        smolvm_agent_client_done(&c->cl);
}

static smolvm_agent_io_opts io_opts(const agent_call *c)
{
        return (smolvm_agent_io_opts){ .idle_ms = c->idle_ms ? c->idle_ms : AGENT_CALL_IDLE_TIMEOUT_MS,
                                       .cancel_fd = c->cancel_fd > 0 ? c->cancel_fd : -1 };
}

/* type 0: only flush what is queued (the REQUEST). */
int agent_call_send(agent_call *c, uint16_t type, const void *payload, uint32_t len)
{
        if (smolvm_agent_client_ready(&c->cl) || smolvm_agent_client_finished(&c->cl) ||
            smolvm_agent_client_tx_closed(&c->cl))
                return 1;
        if (type) {
                int r = smolvm_agent_client_send(&c->cl, type, payload, len);
                if (r < 0)
                        return vm_error(r, NULL, "%s: %s", c->what, strerror(-r));
        }
        smolvm_agent_io_opts o = io_opts(c);
        int r = smolvm_agent_client_io(&c->cl, c->fd, &o, NULL);
        return r < 0 ? agent_client_record(&c->cl, c->what) : r;
}

int agent_call_next(agent_call *c, smolvm_agent_event *ret)
{
        smolvm_agent_io_opts o = io_opts(c);
        int r = smolvm_agent_client_io(&c->cl, c->fd, &o, ret);
        if (r < 0)
                return agent_client_record(&c->cl, c->what);
        if (r == 0 || ret->kind == SMOLVM_AGENT_EV_EOF)
                return 0;
        if (ret->kind == SMOLVM_AGENT_EV_ERROR)
                return agent_error_record(ret);
        return 1;
}

int agent_call_result(agent_call *c, json_t **ret)
{
        smolvm_agent_event ev;
        int r = agent_call_next(c, &ev);
        if (r < 0)
                return r;
        /* ANSWER, STREAM: the first event is RESULT or ERROR, never the end. */
        if (r == 0 || ev.kind != SMOLVM_AGENT_EV_RESULT)
                return vm_error(-EPROTO, NULL, "%s: guest agent sent no answer", c->what);
        *ret = json_incref(ev.result);
        return 0;
}

int agent_call_simple(smolvm_vm *vm, json_t *req, const char *what, json_t **ret)
{
        agent_call c;
        int r = agent_call_open(vm, req, what, SMOLVM_AGENT_REPLY_ANSWER, &c);
        if (r < 0)
                return r;
        r = agent_call_result(&c, ret);
        agent_call_close(&c);
        return r;
}
