/* SPDX-License-Identifier: Apache-2.0 */
/* Cache keys are SHA-256 via nettle (Debian: nettle-dev).
 * Why nettle: keys name content-addressed cache entries built partly from user input
 * (tarball identity, package names), so the hash should be collision resistant, which
 * rules out xxhash (libxxhash-dev). nettle is small, plain C, has a pkg-config file and
 * is already on every Debian system as a dependency of gnutls; libmd-dev would do too,
 * but is not installed by default and offers nothing more. */
#include "image_i.h"

#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>

struct ib_hash {
        struct sha256_ctx ctx;
};

ib_hash *ib_hash_new(void)
{
        ib_hash *h = malloc(sizeof(*h));
        if (h)
                sha256_init(&h->ctx);
        return h;
}

void ib_hash_bytes(ib_hash *h, const void *p, size_t len)
{
        sha256_update(&h->ctx, len, p);
}

/* Length-prefixed so ("ab","c") and ("a","bc") hash differently. */
void ib_hash_str(ib_hash *h, const char *tag, const char *s)
{
        uint8_t len[8];
        ib_hash_bytes(h, tag, strlen(tag) + 1);
        if (!s)
                s = "";
        put_le64(len, strlen(s));
        ib_hash_bytes(h, len, sizeof(len));
        ib_hash_bytes(h, s, strlen(s));
}

void ib_hash_final_hex(ib_hash *h, char out[65])
{
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256_digest(&h->ctx, sizeof(d), d);
        for (size_t i = 0; i < sizeof(d); i++)
                snprintf(out + 2 * i, 3, "%02x", d[i]);
        free(h);
}

void ib_hash_free(ib_hash *h)
{
        free(h);
}

int ib_hash_file(ib_hash *h, const char *path)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        for (;;) {
                uint8_t buf[65536];
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return 0;
                ib_hash_bytes(h, buf, (size_t)n);
        }
}
