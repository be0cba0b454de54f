/* SPDX-License-Identifier: Apache-2.0 */
/* One agent operation over one hybrid-vsock stream, blocking with an idle
 * timeout (agent_call_i.h). Memory is bounded by one frame of the reader. */
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>

#include "agent_call_i.h"
#include "util.h"

int agent_call_open(smolvm_vm *vm, json_t *req, const char *what, agent_call *ret)
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
        agent_call c = { .fd = -1 };
        r = smolvm_frame_reader_init(&c.rd, SMOLVM_FRAME_MAX_PAYLOAD);
        if (r < 0)
                return vm_error(r, NULL, "%s: out of memory", what);
        /* vm->dir is immutable after create: no lock needed. */
        c.fd = vsock_connect(vm->dir, SMOLVM_AGENT_PORT, -1);
        if (c.fd < 0) {
                r = c.fd;
                smolvm_frame_reader_done(&c.rd);
                return r;
        }
        r = agent_call_send(&c, SMOLVM_FRAME_REQUEST, s, (uint32_t)len);
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
        smolvm_frame_reader_done(&c->rd);
        c->held = false;
}

/* Wait for events on the stream. Returns revents, or -ETIMEDOUT / -ECANCELED
 * (cancel_fd readable, checked first) / negative errno. */
static int wait_stream(agent_call *c, short events)
{
        for (;;) {
                struct pollfd p[2] = {
                        { .fd = c->fd, .events = events },
                        { .fd = c->cancel_fd > 0 ? c->cancel_fd : -1, .events = POLLIN },
                };
                int k = poll(p, 2, (int)AGENT_CALL_IDLE_TIMEOUT_MS);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        return -ETIMEDOUT;
                if (p[1].revents)
                        return -ECANCELED;
                return p[0].revents;
        }
}

/* Read what is available into the reader. Returns bytes read (0 = EOF seen) or
 * -EAGAIN / negative errno. */
static int read_some(agent_call *c)
{
        size_t space = smolvm_frame_reader_space(&c->rd);
        if (space == 0)
                return -EPROTO; /* the reader holds a full frame: caller pulls first */
        ssize_t n = read(c->fd, smolvm_frame_reader_tail(&c->rd), space);
        if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                        return -EAGAIN;
                if (errno != ECONNRESET)
                        return negative_errno();
                n = 0;
        }
        if (n == 0) {
                c->eof = true;
                return 0;
        }
        smolvm_frame_reader_commit(&c->rd, (size_t)n);
        return (int)MIN(n, (ssize_t)INT32_MAX);
}

/* While sending, the agent may answer early (an ERROR for a path it cannot
 * open). Returns 1 when a complete frame or EOF is there (stop sending), 0 to
 * carry on, negative errno. */
static int absorb_incoming(agent_call *c)
{
        if (c->held || c->eof)
                return 1;
        int r = read_some(c);
        if (r == -EAGAIN)
                return 0;
        if (r < 0)
                return r == -EPROTO ? vm_error(-EPROTO, NULL, "guest agent sent an oversized frame")
                                    : vm_error(r, NULL, "read from guest agent: %s", strerror(-r));
        if (c->eof)
                return 1;
        r = smolvm_frame_reader_next(&c->rd, &c->held_type, &c->held_payload, &c->held_len);
        if (r < 0)
                return vm_error(-EPROTO, NULL, "guest agent sent an invalid frame (%s)",
                                r == -EMSGSIZE ? "too large" : "bad header");
        if (r == 1)
                c->held = true;
        return r;
}

static int send_bytes(agent_call *c, const uint8_t *p, size_t len)
{
        while (len > 0) {
                ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) {
                        p += n;
                        len -= (size_t)n;
                        continue;
                }
                if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
                        return 1; /* the agent stopped reading: its answer tells why */
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                        return vm_error(negative_errno(), NULL, "send to guest agent: %s", strerror(errno));
                short events = POLLOUT | (c->held || c->eof ? 0 : POLLIN);
                int rev = wait_stream(c, events);
                if (rev == -ETIMEDOUT)
                        return vm_error(-ETIMEDOUT, "the guest agent is not responding",
                                        "guest agent did not accept data for %u s",
                                        AGENT_CALL_IDLE_TIMEOUT_MS / 1000u);
                if (rev == -ECANCELED)
                        return vm_error(-ECANCELED, NULL, "interrupted");
                if (rev < 0)
                        return vm_error(rev, NULL, "poll: %s", strerror(-rev));
                if (rev & (POLLIN | POLLHUP | POLLERR)) {
                        int r = absorb_incoming(c);
                        if (r != 0)
                                return r;
                }
        }
        return 0;
}

int agent_call_send(agent_call *c, uint16_t type, const void *payload, uint32_t len)
{
        if (c->held || c->eof)
                return 1;
        uint8_t hdr[SMOLVM_FRAME_HDR_SIZE];
        smolvm_frame_hdr_encode(type, len, hdr);
        int r = send_bytes(c, hdr, sizeof(hdr));
        if (r == 0 && len)
                r = send_bytes(c, payload, len);
        /* A frame cut short (r == 1) is harmless: we never send on this stream again. */
        return r;
}

int agent_call_next(agent_call *c, uint16_t *ret_type, const uint8_t **ret_payload, uint32_t *ret_len)
{
        if (c->held) {
                c->held = false;
                *ret_type = c->held_type;
                *ret_payload = c->held_payload;
                *ret_len = c->held_len;
                return 1;
        }
        for (;;) {
                int r = smolvm_frame_reader_next(&c->rd, ret_type, ret_payload, ret_len);
                if (r == 1)
                        return 1;
                if (r < 0)
                        return vm_error(-EPROTO, NULL, "guest agent sent an invalid frame (%s)",
                                        r == -EMSGSIZE ? "too large" : "bad header");
                if (c->eof) {
                        if (c->rd.len > 0)
                                return vm_error(-ECONNRESET, "the VM may have crashed",
                                                "guest agent closed the stream in the middle of a frame");
                        return 0;
                }
                int rev = wait_stream(c, POLLIN);
                if (rev == -ETIMEDOUT)
                        return vm_error(-ETIMEDOUT, "the guest agent is not responding",
                                        "no answer from the guest agent for %u s", AGENT_CALL_IDLE_TIMEOUT_MS / 1000u);
                if (rev == -ECANCELED)
                        return vm_error(-ECANCELED, NULL, "interrupted");
                if (rev < 0)
                        return vm_error(rev, NULL, "poll: %s", strerror(-rev));
                r = read_some(c);
                if (r < 0 && r != -EAGAIN)
                        return vm_error(r, NULL, "read from guest agent: %s", strerror(-r));
        }
}

int agent_call_result(agent_call *c, const char *what, json_t **ret)
{
        uint16_t type;
        const uint8_t *p;
        uint32_t len;
        int r = agent_call_next(c, &type, &p, &len);
        if (r < 0)
                return r;
        if (r == 0)
                return vm_error(-ECONNRESET, "the guest agent may be too old for this operation, or the VM crashed",
                                "%s: guest agent closed the stream without an answer", what);
        if (type == SMOLVM_FRAME_ERROR)
                return agent_parse_error(p, len);
        if (type != SMOLVM_FRAME_RESULT)
                return vm_error(-EPROTO, NULL, "%s: guest agent sent an unexpected frame (type %u)", what, type);
        json_t *o = agent_parse_object(p, len);
        if (!o)
                return vm_error(-EBADMSG, NULL, "%s: guest agent sent an invalid RESULT frame", what);
        json_t *ok = json_object_get(o, "ok");
        if (!json_is_true(ok)) {
                json_decref(o);
                return vm_error(-EBADMSG, NULL, "%s: guest agent sent a RESULT without \"ok\": true", what);
        }
        *ret = o;
        return 0;
}

int agent_call_simple(smolvm_vm *vm, json_t *req, const char *what, json_t **ret)
{
        agent_call c;
        int r = agent_call_open(vm, req, what, &c);
        if (r < 0)
                return r;
        r = agent_call_result(&c, what, ret);
        agent_call_close(&c);
        return r;
}
