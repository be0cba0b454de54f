/* SPDX-License-Identifier: Apache-2.0 */
/* Where smolvm keeps things on the host (store.h). */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

const char *smolvm_system_store(void)
{
        const char *env = getenv("SMOLVM_SYSTEM_STORE");
        return env && *env ? env : SMOLVM_SYSTEM_STORE;
}

/* Same directory (a user whose $SMOLVM_HOME is the system store: root building it). */
static bool same_dir(const char *a, const char *b)
{
        struct stat sa, sb;
        return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int image_store_entry(const char *home, const char *name, char **ret_path, image_store *ret_store)
{
        const char *roots[] = { home, smolvm_system_store() };
        int r = -ENOENT;
        for (size_t i = 0; i < ARRAY_SIZE(roots) && r == -ENOENT; i++) {
                if (i == IMAGE_STORE_SYSTEM && same_dir(home, roots[i]))
                        break;
                char *p = NULL;
                if (asprintf(&p, "%s/images/%s", roots[i], name) < 0)
                        return -ENOMEM;
                struct stat st;
                r = stat(p, &st) == 0 ? 0 : negative_errno();
                if (r == -ENOENT || r == -ENOTDIR) {
                        /* ENOTDIR: a file where a store's dir should be, as good as none. */
                        r = -ENOENT;
                        free(p);
                        continue;
                }
                *ret_path = p;
                *ret_store = (image_store)i;
        }
        return r;
}
