/* SPDX-License-Identifier: Apache-2.0 */
#include "guest_path.h"

#include <string.h>

bool guest_relpath_valid(const char *p, size_t len)
{
        if (!p || len == 0 || len > GUEST_RELPATH_MAX || p[0] == '/' || memchr(p, '\0', len))
                return false;
        size_t depth = 0;
        for (size_t i = 0; i < len;) {
                size_t j = i;
                while (j < len && p[j] != '/')
                        j++;
                size_t n = j - i;
                /* "a//b", a trailing "/", "." and ".." are all refused: one spelling per path. */
                if (n == 0 || n > 255 || (n == 1 && p[i] == '.') || (n == 2 && p[i] == '.' && p[i + 1] == '.'))
                        return false;
                if (++depth > GUEST_RELPATH_MAX_DEPTH)
                        return false;
                i = j + 1;
                if (j + 1 == len)
                        return false; /* trailing slash */
        }
        return true;
}

bool guest_symlink_target_valid(const char *p, size_t len)
{
        return p && len > 0 && len <= GUEST_RELPATH_MAX && !memchr(p, '\0', len);
}
