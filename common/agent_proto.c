/* SPDX-License-Identifier: Apache-2.0 */
#include "agent_proto.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "util.h"

bool smolvm_frame_type_known(uint16_t type)
{
        switch (type) {
        case SMOLVM_FRAME_REQUEST:
        case SMOLVM_FRAME_STDIN:
        case SMOLVM_FRAME_STDIN_EOF:
        case SMOLVM_FRAME_SIGNAL:
        case SMOLVM_FRAME_RESIZE:
        case SMOLVM_FRAME_STARTED:
        case SMOLVM_FRAME_STDOUT:
        case SMOLVM_FRAME_STDERR:
        case SMOLVM_FRAME_EXIT:
        case SMOLVM_FRAME_ERROR:
        case SMOLVM_FRAME_RESULT:
                return true;
        default:
                return false;
        }
}

void smolvm_frame_hdr_encode(uint16_t type, uint32_t payload_len, uint8_t out[SMOLVM_FRAME_HDR_SIZE])
{
        put_le32(out, payload_len);
        put_le16(out + 4, type);
        put_le16(out + 6, 0);
}

int smolvm_frame_reader_init(smolvm_frame_reader *r, uint32_t max_payload)
{
        if (max_payload > SMOLVM_FRAME_MAX_PAYLOAD)
                max_payload = SMOLVM_FRAME_MAX_PAYLOAD;
        *r = (smolvm_frame_reader){ .max_payload = max_payload };
        /* Start small; grow only when a frame's header announces a larger (valid) payload. */
        r->cap = SMOLVM_FRAME_HDR_SIZE + MIN(max_payload, SMOLVM_FRAME_DATA_CHUNK);
        r->buf = malloc(r->cap);
        if (!r->buf)
                return -ENOMEM;
        return 0;
}

void smolvm_frame_reader_done(smolvm_frame_reader *r)
{
        free(r->buf);
        *r = (smolvm_frame_reader){ 0 };
}

/* Bytes of the frame currently at the head of the buffer, once its header is in. */
static size_t frame_need(const smolvm_frame_reader *r)
{
        if (r->len < SMOLVM_FRAME_HDR_SIZE)
                return SMOLVM_FRAME_HDR_SIZE;
        uint32_t plen = get_le32(r->buf);
        if (plen > r->max_payload)
                return SMOLVM_FRAME_HDR_SIZE; /* reported by _next() */
        return SMOLVM_FRAME_HDR_SIZE + plen;
}

size_t smolvm_frame_reader_space(const smolvm_frame_reader *r)
{
        if (r->error)
                return 0;
        size_t need = frame_need(r);
        if (need > r->cap) {
                /* Grow to fit this frame exactly; bounded by max_payload via frame_need(). */
                smolvm_frame_reader *w = (smolvm_frame_reader *)r;
                uint8_t *nb = realloc(w->buf, need);
                if (!nb) {
                        w->error = -ENOMEM;
                        return 0;
                }
                w->buf = nb;
                w->cap = need;
        }
        /* Never read past the current frame: keeps buffer use bounded and
         * lets the caller pull exactly one frame at a time. */
        return need > r->len ? need - r->len : 0;
}

uint8_t *smolvm_frame_reader_tail(smolvm_frame_reader *r)
{
        return r->buf + r->len;
}

void smolvm_frame_reader_commit(smolvm_frame_reader *r, size_t n)
{
        r->len += n;
}

size_t smolvm_frame_reader_feed(smolvm_frame_reader *r, const void *data, size_t len)
{
        size_t done = 0;
        while (done < len) {
                size_t space = smolvm_frame_reader_space(r);
                if (space == 0)
                        break;
                size_t n = MIN(space, len - done);
                memcpy(r->buf + r->len, (const uint8_t *)data + done, n);
                r->len += n;
                done += n;
        }
        return done;
}

int smolvm_frame_reader_next(smolvm_frame_reader *r, uint16_t *ret_type, const uint8_t **ret_payload,
                             uint32_t *ret_len)
{
        if (r->error)
                return r->error;
        if (r->len < SMOLVM_FRAME_HDR_SIZE)
                return 0;
        uint32_t plen = get_le32(r->buf);
        uint16_t type = get_le16(r->buf + 4);
        if (plen > r->max_payload)
                return (r->error = -EMSGSIZE);
        if (!smolvm_frame_type_known(type) || get_le16(r->buf + 6) != 0)
                return (r->error = -EPROTO);
        if (r->len < SMOLVM_FRAME_HDR_SIZE + plen)
                return 0;
        /* The frame is consumed: the next feed overwrites it (space() is computed
         * from len, which we reset here; the payload stays valid until then). */
        r->len = 0;
        *ret_type = type;
        *ret_payload = r->buf + SMOLVM_FRAME_HDR_SIZE;
        *ret_len = plen;
        return 1;
}

int smolvm_frame_send(int fd, uint16_t type, const void *payload, uint32_t len)
{
        uint8_t hdr[SMOLVM_FRAME_HDR_SIZE];
        smolvm_frame_hdr_encode(type, len, hdr);
        struct iovec iov[2] = {
                { .iov_base = hdr, .iov_len = sizeof(hdr) },
                { .iov_base = (void *)payload, .iov_len = len },
        };
        size_t total = sizeof(hdr) + len, done = 0;
        while (done < total) {
                ssize_t n = writev(fd, iov, 2);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                done += (size_t)n;
                /* Advance the iovecs past what was written. */
                for (int i = 0; i < 2 && n > 0; i++) {
                        size_t k = MIN((size_t)n, iov[i].iov_len);
                        iov[i].iov_base = (uint8_t *)iov[i].iov_base + k;
                        iov[i].iov_len -= k;
                        n -= (ssize_t)k;
                }
        }
        return 0;
}

bool agent_env_key_valid_n(const char *key, size_t len)
{
        if (!key || len == 0 || len > AGENT_ENV_MAX_KEY)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = key[i];
                bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
                if (!alpha && (i == 0 || c < '0' || c > '9'))
                        return false;
        }
        return true;
}

bool agent_env_key_valid(const char *key)
{
        return key && agent_env_key_valid_n(key, strlen(key));
}

int agent_env_entry_check(const char *kv, size_t *ret_key_len)
{
        const char *eq = strchr(kv, '=');
        size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
        if (ret_key_len)
                *ret_key_len = klen;
        if (!eq || !agent_env_key_valid_n(kv, klen))
                return -EINVAL;
        if (strlen(eq + 1) > AGENT_ENV_MAX_VALUE)
                return -E2BIG;
        return 0;
}
