/* SPDX-License-Identifier: Apache-2.0 */
/* xz and zstd decompression in memory, through liblzma and libzstd (no xz or
 * zstd process per module). The output is bounded: a corrupt or unexpected
 * input gets -EFBIG once it would pass max_bytes, never a larger allocation,
 * and the decoders' own memory is capped (dictionary / window). */
#include "image_i.h"

#include <lzma.h>
#include <zstd.h>

/* Both decoders' memory: xz's dictionary, zstd's window (2^27, zstd's default limit). */
#define XZ_MEMLIMIT_BYTES (128ull << 20)
#define ZSTD_WINDOW_LOG_MAX 27
#define FIRST_CHUNK_BYTES (1u << 20)

/* Grows *buf so that at least one more byte fits, never past max_bytes + 1 (the
 * extra byte is how an over-long output is noticed). -EFBIG once full. */
static int grow(uint8_t **buf, size_t *cap, size_t used, size_t hint, size_t max_bytes)
{
        if (used < *cap)
                return 0;
        if (*cap > max_bytes)
                return -EFBIG;
        size_t n = *cap ? *cap * 2 : (hint ? hint + 1 : FIRST_CHUNK_BYTES); /* +1: an exact hint ends without a realloc */
        if (n <= *cap || n > max_bytes)
                n = max_bytes + 1;
        uint8_t *b = realloc(*buf, n);
        if (!b)
                return -ENOMEM;
        *buf = b;
        *cap = n;
        return 0;
}

int ib_unxz(const void *in, size_t in_len, size_t size_hint, size_t max_bytes, void **ret, size_t *ret_len)
{
        lzma_stream s = LZMA_STREAM_INIT;
        /* Concatenated streams and stream padding, as the xz tool accepts them. */
        lzma_ret lr = lzma_stream_decoder(&s, XZ_MEMLIMIT_BYTES, LZMA_CONCATENATED);
        if (lr != LZMA_OK)
                return lr == LZMA_MEM_ERROR ? -ENOMEM : -EINVAL;
        _cleanup_free_ uint8_t *out = NULL;
        size_t cap = 0, used = 0;
        int r = 0;
        s.next_in = in;
        s.avail_in = in_len;
        for (;;) {
                if ((r = grow(&out, &cap, used, size_hint, max_bytes)) < 0)
                        break;
                s.next_out = out + used;
                s.avail_out = cap - used;
                lr = lzma_code(&s, LZMA_FINISH);
                used = cap - s.avail_out;
                if (used > max_bytes) {
                        r = -EFBIG;
                        break;
                }
                if (lr == LZMA_STREAM_END)
                        break;
                if (lr != LZMA_OK) {
                        /* LZMA_MEMLIMIT_ERROR too: no module needs a dictionary that big. */
                        r = lr == LZMA_MEM_ERROR ? -ENOMEM : -EBADMSG;
                        break;
                }
        }
        lzma_end(&s);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out);
        *ret_len = used;
        return 0;
}

int ib_unzstd(const void *in, size_t in_len, size_t max_bytes, void **ret, size_t *ret_len)
{
        ZSTD_DCtx *d = ZSTD_createDCtx();
        if (!d)
                return -ENOMEM;
        if (ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX))) {
                ZSTD_freeDCtx(d);
                return -EINVAL;
        }
        _cleanup_free_ uint8_t *out = NULL;
        size_t cap = 0, used = 0, left = 1;
        int r = 0;
        ZSTD_inBuffer ib = {.src = in, .size = in_len, .pos = 0};
        /* Until every frame is decoded (left == 0) and all input used. */
        while (ib.pos < ib.size || left != 0) {
                if ((r = grow(&out, &cap, used, 0, max_bytes)) < 0)
                        break;
                ZSTD_outBuffer ob = {.dst = out, .size = cap, .pos = used};
                size_t in_before = ib.pos, out_before = used;
                left = ZSTD_decompressStream(d, &ob, &ib);
                if (ZSTD_isError(left)) {
                        r = -EBADMSG;
                        break;
                }
                used = ob.pos;
                if (used > max_bytes) {
                        r = -EFBIG;
                        break;
                }
                /* No progress although input was offered or room was left: the
                 * input ends inside a frame. */
                if (ib.pos == in_before && used == out_before && used < cap) {
                        r = -EBADMSG;
                        break;
                }
        }
        ZSTD_freeDCtx(d);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out);
        *ret_len = used;
        return 0;
}
