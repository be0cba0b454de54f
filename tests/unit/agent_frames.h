/* SPDX-License-Identifier: Apache-2.0 */
/* Agent frames as the guest agent writes them, for the agent client's tests
 * (test_agent_client.c, test_agent_client_io.c). */
#pragma once

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "agent_proto.h"
#include "util.h"

/* A growing byte buffer of frames; free(b.p) when done. */
typedef struct buf {
        uint8_t *p;
        size_t len;
} buf;

static inline void add_raw(buf *b, uint16_t type, uint16_t reserved, const void *payload, uint32_t len)
{
        b->p = realloc(b->p, b->len + SMOLVM_FRAME_HDR_SIZE + len);
        ck_assert_ptr_nonnull(b->p);
        smolvm_frame_hdr_encode(type, len, b->p + b->len);
        put_le16(b->p + b->len + 6, reserved);
        if (len)
                memcpy(b->p + b->len + SMOLVM_FRAME_HDR_SIZE, payload, len);
        b->len += SMOLVM_FRAME_HDR_SIZE + len;
}

static inline void add(buf *b, uint16_t type, const char *text)
{
        add_raw(b, type, 0, text, (uint32_t)strlen(text));
}

static inline void add_bytes(buf *b, const char *bytes)
{
        size_t n = strlen(bytes);
        b->p = realloc(b->p, b->len + n);
        memcpy(b->p + b->len, bytes, n);
        b->len += n;
}
