/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the agent client state machine (common/agent_client.c)
 * alone, a pure function of the bytes the agent sends, so it runs fast
 * (fuzz_agent drives the whole library against a fake agent thread).
 *
 * Input: byte 0 = reply kind (% 3: ANSWER, STREAM, EXEC) | 0x04 the bytes
 * go in through rx_buf/rx_commit rather than feed | 0x08 the agent closes
 * the stream at the end | 0x10 a small RESULT bound (4 KiB); byte 1 = the
 * size of each piece (0: all at once). The rest is what the agent sends.
 *
 * Checked: next() returns 1, 0 or a negative errno, and an error is sticky;
 * every event is one the protocol allows at that point (STARTED once and
 * first for an exec, EXIT/ERROR/EOF/an ANSWER's RESULT last, data within
 * 64 KiB and never empty, ERROR's errno in 1..4095 and its message free of
 * control characters, a RESULT an object whose "ok" is true, EXIT in range);
 * the client never takes a byte past the frame it is reading (the frame
 * boundaries are recomputed here from the input), so after its final event
 * the bytes it consumed end exactly at a frame boundary; its buffer never
 * outgrows one frame. No crash, leak or undefined behaviour (ASan, UBSan).
 *
 *   fuzz_agent_client -max_len=4096 tests/fuzz/corpus/fuzz_agent_client */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_client.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                                   \
        do {                                                                                                       \
                if (!(c)) {                                                                                        \
                        fprintf(stderr, "fuzz_agent_client: invariant failed at line %d: %s\n", __LINE__, #c);     \
                        abort();                                                                                   \
                }                                                                                                  \
        } while (0)

typedef struct shadow {
        smolvm_agent_reply reply;
        bool started, answered, final;
        unsigned n_events;
} shadow;

static void check_text(const char *s)
{
        CHECK(strlen(s) < SMOLVM_AGENT_MSG_MAX);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                CHECK(*p >= 0x20 && *p != 0x7f);
                CHECK(!(p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F));
        }
}

static void check_event(shadow *sh, const smolvm_agent_event *ev)
{
        CHECK(!sh->final);
        sh->n_events++;
        switch (ev->kind) {
        case SMOLVM_AGENT_EV_STARTED:
                CHECK(sh->reply == SMOLVM_AGENT_REPLY_EXEC && !sh->started);
                CHECK(ev->pid >= 0);
                sh->started = true;
                break;
        case SMOLVM_AGENT_EV_STDOUT:
        case SMOLVM_AGENT_EV_STDERR:
                CHECK(ev->len >= 1 && ev->len <= SMOLVM_FRAME_DATA_CHUNK && ev->data);
                CHECK((sh->reply == SMOLVM_AGENT_REPLY_EXEC && sh->started) ||
                      (sh->reply == SMOLVM_AGENT_REPLY_STREAM && sh->answered && ev->kind == SMOLVM_AGENT_EV_STDOUT));
                (void)*(volatile const uint8_t *)&ev->data[ev->len - 1];
                break;
        case SMOLVM_AGENT_EV_EXIT:
                CHECK(sh->reply == SMOLVM_AGENT_REPLY_EXEC && sh->started);
                CHECK(ev->exit.signal >= 0 && ev->exit.signal <= 64);
                if (ev->exit.signal == 0)
                        CHECK(ev->exit.exit_code >= 0 && ev->exit.exit_code <= 255);
                CHECK(ev->exit.duration_ms <= (UINT64_C(1) << 42));
                sh->final = true;
                break;
        case SMOLVM_AGENT_EV_ERROR:
                CHECK(ev->error <= -1 && ev->error >= -SMOLVM_AGENT_ERRNO_MAX);
                CHECK(ev->message);
                check_text(ev->message);
                sh->final = true;
                break;
        case SMOLVM_AGENT_EV_RESULT:
                CHECK(sh->reply != SMOLVM_AGENT_REPLY_EXEC && !sh->answered);
                CHECK(json_is_object(ev->result) && json_is_true(json_object_get(ev->result, "ok")));
                sh->answered = true;
                sh->final = sh->reply == SMOLVM_AGENT_REPLY_ANSWER;
                break;
        case SMOLVM_AGENT_EV_EOF:
                CHECK(sh->reply == SMOLVM_AGENT_REPLY_STREAM && sh->answered);
                sh->final = true;
                break;
        case SMOLVM_AGENT_EV_NONE:
        default:
                CHECK(!"unknown event kind");
        }
}

/* Bytes from offset pos to the end of the frame that covers it, walking the
 * headers of the input (a header cut short counts to its own end). */
static size_t frame_left(const uint8_t *in, size_t len, size_t pos)
{
        size_t off = 0;
        for (;;) {
                size_t end = off + SMOLVM_FRAME_HDR_SIZE;
                if (end <= len)
                        end += get_le32(in + off);
                if (pos < end)
                        return end - pos;
                off = end;
        }
}

static bool at_boundary(const uint8_t *in, size_t len, size_t pos)
{
        size_t off = 0;
        while (off < pos && off + SMOLVM_FRAME_HDR_SIZE <= len)
                off += SMOLVM_FRAME_HDR_SIZE + (size_t)get_le32(in + off);
        return off == pos;
}

static int drain(smolvm_agent_client *c, shadow *sh)
{
        smolvm_agent_event ev;
        int r;
        while ((r = smolvm_agent_client_next(c, &ev)) > 0) {
                CHECK(r == 1);
                check_event(sh, &ev);
        }
        CHECK(r == 0 || (r < 0 && r >= -4095));
        if (r == 0)
                CHECK(!sh->final || smolvm_agent_client_finished(c));
        return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 2)
                return 0;
        uint8_t flags = data[0], piece = data[1];
        const uint8_t *in = data + 2;
        size_t len = size - 2;
        shadow sh = { .reply = (smolvm_agent_reply)(flags % 3u) };
        uint32_t max_answer = (flags & 0x10u) ? 4096u : 0;
        smolvm_agent_client c;
        CHECK(smolvm_agent_client_init(&c, sh.reply, max_answer) == 0);
        CHECK(smolvm_agent_client_request(&c, "{\"op\":\"x\"}", 10) == 0);

        size_t off = 0;
        int r = 0;
        while (off < len && r >= 0) {
                size_t want = piece ? MIN((size_t)piece, len - off) : len - off;
                size_t n;
                if (flags & 0x04u) {
                        size_t space;
                        uint8_t *p = smolvm_agent_client_rx_buf(&c, &space);
                        /* Never more than the rest of the frame being read. */
                        CHECK(space <= frame_left(in, len, off));
                        n = MIN(space, want);
                        if (n)
                                memcpy(p, in + off, n);
                        smolvm_agent_client_rx_commit(&c, n);
                } else {
                        n = smolvm_agent_client_feed(&c, in + off, want);
                        CHECK(n <= want && n <= frame_left(in, len, off));
                }
                off += n;
                r = drain(&c, &sh);
                if (n == 0) {
                        /* Nothing taken: the client is finished or failed. */
                        CHECK(smolvm_agent_client_finished(&c));
                        break;
                }
        }
        if (r >= 0 && (flags & 0x08u) && !smolvm_agent_client_finished(&c)) {
                smolvm_agent_client_rx_eof(&c);
                r = drain(&c, &sh);
                CHECK(r < 0 || sh.final);
        }
        if (sh.final && r >= 0) {
                /* Ended exactly after its last frame; nothing more is taken. */
                CHECK(smolvm_agent_client_finished(&c) && smolvm_agent_client_error(&c) == 0);
                CHECK(at_boundary(in, len, off));
                CHECK(smolvm_agent_client_feed(&c, "\0\0\0\0\x11\0\0\0", 8) == 0);
        }
        if (r < 0) {
                /* Sticky, explained, and nothing more is taken. */
                smolvm_agent_event ev;
                CHECK(smolvm_agent_client_error(&c) == r);
                CHECK(smolvm_agent_client_why(&c)[0] != '\0');
                CHECK(smolvm_agent_client_next(&c, &ev) == r);
                size_t space;
                smolvm_agent_client_rx_buf(&c, &space);
                CHECK(space == 0);
        }
        /* One frame of memory at most. */
        CHECK(c.rd.cap <= SMOLVM_FRAME_HDR_SIZE + MAX(max_answer ? max_answer : SMOLVM_FRAME_MAX_PAYLOAD,
                                                      SMOLVM_AGENT_SMALL_JSON_MAX));
        smolvm_agent_client_done(&c);
        return 0;
}
