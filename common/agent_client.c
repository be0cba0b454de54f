/* SPDX-License-Identifier: Apache-2.0 */
/* The agent client state machine (agent_client.h): no I/O, one frame of memory. */
#include "agent_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

int smolvm_agent_client_fail(smolvm_agent_client *c, int err, const char *fmt, ...)
{
        if (c->error)
                return c->error;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why, sizeof(c->why), fmt, ap);
        va_end(ap);
        c->error = err < 0 ? err : -EIO;
        json_decref(c->held);
        c->held = NULL;
        return c->error;
}

int smolvm_agent_client_error(const smolvm_agent_client *c)
{
        return c->error;
}

const char *smolvm_agent_client_why(const smolvm_agent_client *c)
{
        return c->error ? c->why : "";
}

int smolvm_agent_client_init(smolvm_agent_client *c, smolvm_agent_reply reply, uint32_t max_answer_bytes)
{
        if (max_answer_bytes == 0 || max_answer_bytes > SMOLVM_FRAME_MAX_PAYLOAD)
                max_answer_bytes = SMOLVM_FRAME_MAX_PAYLOAD;
        *c = (smolvm_agent_client){ .reply = reply, .max_answer_bytes = max_answer_bytes };
        /* The reader's own bound is never the one that fires: check_head() applies
         * each type's (tighter) bound as soon as a header is in. */
        return smolvm_frame_reader_init(&c->rd, MAX(max_answer_bytes, SMOLVM_AGENT_SMALL_JSON_MAX));
}

void smolvm_agent_client_done(smolvm_agent_client *c)
{
        if (!c)
                return;
        smolvm_frame_reader_done(&c->rd);
        free(c->tx);
        c->tx = NULL;
        c->tx_off = c->tx_len = c->tx_cap = 0;
        json_decref(c->held);
        c->held = NULL;
}

/* ---- output ---- */

static int tx_append(smolvm_agent_client *c, uint16_t type, const void *payload, uint32_t len)
{
        size_t need = SMOLVM_FRAME_HDR_SIZE + (size_t)len;
        size_t pending = c->tx_len - c->tx_off;
        if (pending + need > SMOLVM_AGENT_TX_MAX)
                return -ENOBUFS;
        if (c->tx_off > 0) {
                memmove(c->tx, c->tx + c->tx_off, pending);
                c->tx_off = 0;
                c->tx_len = pending;
        }
        if (c->tx_len + need > c->tx_cap) {
                uint8_t *nb = realloc(c->tx, c->tx_len + need);
                if (!nb)
                        return -ENOMEM;
                c->tx = nb;
                c->tx_cap = c->tx_len + need;
        }
        smolvm_frame_hdr_encode(type, len, c->tx + c->tx_len);
        if (len)
                memcpy(c->tx + c->tx_len + SMOLVM_FRAME_HDR_SIZE, payload, len);
        c->tx_len += need;
        return 0;
}

int smolvm_agent_client_request(smolvm_agent_client *c, const char *json, size_t len)
{
        if (c->error)
                return c->error;
        if (c->requested)
                return -EALREADY;
        if (len > SMOLVM_FRAME_MAX_PAYLOAD)
                return -E2BIG;
        int r = tx_append(c, SMOLVM_FRAME_REQUEST, json, (uint32_t)len);
        if (r == 0)
                c->requested = true;
        return r;
}

int smolvm_agent_client_send(smolvm_agent_client *c, uint16_t type, const void *payload, uint32_t len)
{
        /* Not refused after a sticky error: a client giving up may still send
         * a SIGNAL before it closes. */
        if (!c->requested)
                return -EINVAL;
        switch (type) {
        case SMOLVM_FRAME_STDIN:
                if (len > SMOLVM_FRAME_MAX_PAYLOAD)
                        return -EINVAL;
                break;
        case SMOLVM_FRAME_STDIN_EOF:
                if (len != 0)
                        return -EINVAL;
                break;
        case SMOLVM_FRAME_SIGNAL:
        case SMOLVM_FRAME_RESIZE:
                if (len != 4)
                        return -EINVAL;
                break;
        default:
                return -EINVAL;
        }
        if (c->tx_closed)
                return -EPIPE;
        return tx_append(c, type, payload, len);
}

const uint8_t *smolvm_agent_client_tx_buf(const smolvm_agent_client *c, size_t *ret_len)
{
        *ret_len = c->tx_len - c->tx_off;
        return c->tx ? c->tx + c->tx_off : NULL;
}

void smolvm_agent_client_tx_commit(smolvm_agent_client *c, size_t n)
{
        c->tx_off += MIN(n, c->tx_len - c->tx_off);
        if (c->tx_off == c->tx_len)
                c->tx_off = c->tx_len = 0;
}

void smolvm_agent_client_tx_close(smolvm_agent_client *c)
{
        c->tx_closed = true;
        c->tx_off = c->tx_len = 0;
}

bool smolvm_agent_client_tx_closed(const smolvm_agent_client *c)
{
        return c->tx_closed;
}

/* ---- input ---- */

static bool from_agent(uint16_t type)
{
        return type >= SMOLVM_FRAME_STARTED && smolvm_frame_type_known(type);
}

/* May the agent send a frame of this type now? */
static bool expected(const smolvm_agent_client *c, uint16_t type)
{
        if (type == SMOLVM_FRAME_ERROR)
                return true;
        switch (c->reply) {
        case SMOLVM_AGENT_REPLY_ANSWER:
                return type == SMOLVM_FRAME_RESULT;
        case SMOLVM_AGENT_REPLY_STREAM:
                return c->answered ? type == SMOLVM_FRAME_STDOUT : type == SMOLVM_FRAME_RESULT;
        case SMOLVM_AGENT_REPLY_EXEC:
                if (!c->started)
                        return type == SMOLVM_FRAME_STARTED;
                return type == SMOLVM_FRAME_STDOUT || type == SMOLVM_FRAME_STDERR || type == SMOLVM_FRAME_EXIT;
        default:
                return false;
        }
}

static uint32_t max_len(const smolvm_agent_client *c, uint16_t type)
{
        switch (type) {
        case SMOLVM_FRAME_RESULT:
                return c->max_answer_bytes;
        case SMOLVM_FRAME_STDOUT:
        case SMOLVM_FRAME_STDERR:
                return SMOLVM_FRAME_DATA_CHUNK;
        default:
                return SMOLVM_AGENT_SMALL_JSON_MAX;
        }
}

/* Validate the header of the frame being received, as soon as it is in and
 * before any of its payload is read: a frame that may not come is refused
 * without buffering it. Returns 0 or the sticky error. */
static int check_head(smolvm_agent_client *c)
{
        if (c->head_checked || c->rd.len < SMOLVM_FRAME_HDR_SIZE)
                return c->error;
        uint32_t len = get_le32(c->rd.buf);
        uint16_t type = get_le16(c->rd.buf + 4);
        if (get_le16(c->rd.buf + 6) != 0)
                return smolvm_agent_client_fail(c, -EPROTO,
                                                "the guest agent sent a frame with a non-zero reserved field");
        if (!from_agent(type))
                return smolvm_agent_client_fail(c, -EPROTO, "the guest agent sent a frame of an unknown type (%u)",
                                                type);
        if (!expected(c, type))
                return smolvm_agent_client_fail(c, -EPROTO, "the guest agent sent an unexpected frame (type %u)",
                                                type);
        if (len > max_len(c, type))
                return smolvm_agent_client_fail(c, -EPROTO,
                                                "the guest agent sent an oversized frame (type %u, %u bytes, at most %u)",
                                                type, len, max_len(c, type));
        c->head_checked = true;
        return 0;
}

uint8_t *smolvm_agent_client_rx_buf(smolvm_agent_client *c, size_t *ret_len)
{
        *ret_len = 0;
        if (c->error || c->finished || c->rx_eof || check_head(c) < 0)
                return NULL;
        size_t space = smolvm_frame_reader_space(&c->rd);
        if (c->rd.error) {
                smolvm_agent_client_fail(c, c->rd.error, "out of memory for the guest agent's frame");
                return NULL;
        }
        *ret_len = space;
        return smolvm_frame_reader_tail(&c->rd);
}

void smolvm_agent_client_rx_commit(smolvm_agent_client *c, size_t n)
{
        smolvm_frame_reader_commit(&c->rd, n);
}

size_t smolvm_agent_client_feed(smolvm_agent_client *c, const void *data, size_t len)
{
        size_t done = 0;
        while (done < len) {
                size_t space;
                uint8_t *p = smolvm_agent_client_rx_buf(c, &space);
                if (space == 0)
                        break;
                size_t n = MIN(space, len - done);
                memcpy(p, (const uint8_t *)data + done, n);
                smolvm_agent_client_rx_commit(c, n);
                done += n;
        }
        return done;
}

void smolvm_agent_client_rx_eof(smolvm_agent_client *c)
{
        c->rx_eof = true;
}

bool smolvm_agent_client_finished(const smolvm_agent_client *c)
{
        return c->finished || c->error;
}

bool smolvm_agent_client_ready(smolvm_agent_client *c)
{
        if (c->error)
                return true;
        if (c->finished)
                return false;
        return c->rx_eof || (c->rd.len >= SMOLVM_FRAME_HDR_SIZE && smolvm_frame_reader_space(&c->rd) == 0);
}

/* The longest prefix of s (NUL-terminated) that does not end inside a UTF-8
 * sequence: a message cut to fit stays valid UTF-8. */
static void utf8_trim(char *s)
{
        size_t n = strlen(s), i = n;
        while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
                i--;
        if (i == 0)
                return;
        unsigned char lead = (unsigned char)s[i - 1];
        size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (n - (i - 1) < want)
                s[i - 1] = '\0';
}

void smolvm_agent_sanitize(char *s)
{
        for (unsigned char *p = (unsigned char *)s; *p; p++) {
                if (*p < 0x20 || *p == 0x7f)
                        *p = '?';
                else if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) {
                        p[0] = p[1] = '?';
                        p++;
                }
        }
}

static json_t *parse_object(const uint8_t *p, uint32_t len)
{
        json_error_t jerr;
        json_t *o = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
        if (o && !json_is_object(o)) {
                json_decref(o);
                return NULL;
        }
        return o;
}

/* An integer field in [lo, hi]; absent or null -> def, unless required. */
static int int_field(json_t *o, const char *key, bool required, int64_t lo, int64_t hi, int64_t def, int64_t *ret)
{
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v)) {
                if (required)
                        return -EBADMSG;
                *ret = def;
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
                return -EBADMSG;
        *ret = json_integer_value(v);
        return 0;
}

static int on_error(smolvm_agent_client *c, json_t *o, smolvm_agent_event *ev)
{
        int64_t e;
        if (int_field(o, "errno", true, 1, SMOLVM_AGENT_ERRNO_MAX, 0, &e) < 0)
                return smolvm_agent_client_fail(c, -EBADMSG,
                                                "the guest agent sent an ERROR frame without an errno in 1..%d",
                                                SMOLVM_AGENT_ERRNO_MAX);
        const char *m = json_string_value(json_object_get(o, "message"));
        snprintf(c->msg, sizeof(c->msg), "%s", m && *m ? m : strerror((int)e));
        utf8_trim(c->msg);
        smolvm_agent_sanitize(c->msg);
        ev->kind = SMOLVM_AGENT_EV_ERROR;
        ev->error = -(int)e;
        ev->message = c->msg;
        c->finished = true;
        return 1;
}

static int on_exit_frame(smolvm_agent_client *c, json_t *o, smolvm_agent_event *ev)
{
        int64_t code = 0, sig = 0, dur = 0;
        json_t *to = json_object_get(o, "timed_out");
        /* With a signal the agent reports exit_code -1; without one it is the status. */
        if (int_field(o, "signal", false, 0, 64, 0, &sig) < 0 ||
            int_field(o, "exit_code", sig == 0, sig ? INT32_MIN : 0, sig ? INT32_MAX : 255, 0, &code) < 0 ||
            int_field(o, "duration_ms", false, 0, INT64_C(1) << 42, 0, &dur) < 0 ||
            (to && !json_is_boolean(to)))
                return smolvm_agent_client_fail(c, -EBADMSG, "the guest agent sent an invalid EXIT frame");
        ev->kind = SMOLVM_AGENT_EV_EXIT;
        ev->exit = (smolvm_agent_exit){ .exit_code = (int)code, .signal = (int)sig,
                                        .timed_out = json_is_true(to), .duration_ms = (uint64_t)dur };
        c->finished = true;
        return 1;
}

/* One complete frame whose header passed check_head(). Returns 1 with an
 * event, 0 for a frame that makes none, or the sticky error. */
static int on_frame(smolvm_agent_client *c, uint16_t type, const uint8_t *p, uint32_t len, smolvm_agent_event *ev)
{
        if (type == SMOLVM_FRAME_STDOUT || type == SMOLVM_FRAME_STDERR) {
                if (len == 0)
                        return 0;
                ev->kind = type == SMOLVM_FRAME_STDOUT ? SMOLVM_AGENT_EV_STDOUT : SMOLVM_AGENT_EV_STDERR;
                ev->data = p;
                ev->len = len;
                return 1;
        }
        static const char *const names[] = {
                [SMOLVM_FRAME_STARTED] = "STARTED", [SMOLVM_FRAME_EXIT] = "EXIT",
                [SMOLVM_FRAME_ERROR] = "ERROR", [SMOLVM_FRAME_RESULT] = "RESULT",
        };
        json_t *o = parse_object(p, len);
        if (!o)
                return smolvm_agent_client_fail(c, -EBADMSG, "the guest agent sent an invalid %s frame (not a JSON object)",
                                                names[type]);
        int r;
        switch (type) {
        case SMOLVM_FRAME_STARTED: {
                int64_t pid;
                if (int_field(o, "pid", false, 0, INT32_MAX, 0, &pid) < 0) {
                        r = smolvm_agent_client_fail(c, -EBADMSG, "the guest agent sent an invalid STARTED frame");
                        break;
                }
                c->started = true;
                ev->kind = SMOLVM_AGENT_EV_STARTED;
                ev->pid = (int)pid;
                r = 1;
                break;
        }
        case SMOLVM_FRAME_EXIT:
                r = on_exit_frame(c, o, ev);
                break;
        case SMOLVM_FRAME_ERROR:
                r = on_error(c, o, ev);
                break;
        case SMOLVM_FRAME_RESULT:
                if (!json_is_true(json_object_get(o, "ok"))) {
                        r = smolvm_agent_client_fail(c, -EBADMSG, "the guest agent sent a RESULT without \"ok\": true");
                        break;
                }
                c->answered = true;
                if (c->reply == SMOLVM_AGENT_REPLY_ANSWER)
                        c->finished = true;
                ev->kind = SMOLVM_AGENT_EV_RESULT;
                ev->result = c->held = TAKE_PTR(o);
                r = 1;
                break;
        default: /* check_head() let no other type through */
                r = smolvm_agent_client_fail(c, -EPROTO, "the guest agent sent an unexpected frame (type %u)", type);
                break;
        }
        json_decref(o);
        return r;
}

static int on_eof(smolvm_agent_client *c, smolvm_agent_event *ev)
{
        if (c->rd.len > 0)
                return smolvm_agent_client_fail(c, -ECONNRESET,
                                                "the guest agent closed the stream in the middle of a frame");
        if (c->reply == SMOLVM_AGENT_REPLY_STREAM && c->answered) {
                c->finished = true;
                ev->kind = SMOLVM_AGENT_EV_EOF;
                return 1;
        }
        return smolvm_agent_client_fail(c, -ECONNRESET, "the guest agent closed the stream without %s",
                                        c->reply == SMOLVM_AGENT_REPLY_EXEC ? "an exit status" : "an answer");
}

int smolvm_agent_client_next(smolvm_agent_client *c, smolvm_agent_event *ret)
{
        *ret = (smolvm_agent_event){ .kind = SMOLVM_AGENT_EV_NONE };
        json_decref(c->held);
        c->held = NULL;
        for (;;) {
                if (c->error)
                        return c->error;
                if (c->finished)
                        return 0;
                if (check_head(c) < 0)
                        return c->error;
                uint16_t type;
                const uint8_t *p;
                uint32_t len;
                int r = smolvm_frame_reader_next(&c->rd, &type, &p, &len);
                if (r < 0)
                        return smolvm_agent_client_fail(c, r == -ENOMEM ? -ENOMEM : -EPROTO,
                                                        "the guest agent sent an invalid frame (%s)",
                                                        r == -ENOMEM ? "out of memory" : "bad header");
                if (r == 0)
                        return c->rx_eof ? on_eof(c, ret) : 0;
                c->head_checked = false;
                r = on_frame(c, type, p, len, ret);
                if (r != 0)
                        return r;
        }
}
