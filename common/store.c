/* SPDX-License-Identifier: Apache-2.0 */
/* $SMOLVM_HOME, $SMOLVM_LIBEXECDIR and the image directory (store.h). */
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int smolvm_home_path(char **ret)
{
        const char *env = getenv("SMOLVM_HOME");
        char *s = NULL;
        if (env && *env) {
                if (env[0] == '/')
                        s = strdup(env);
                else {
                        char cwd[PATH_MAX];
                        if (!getcwd(cwd, sizeof(cwd)))
                                return negative_errno();
                        if (asprintf(&s, "%s/%s", cwd, env) < 0)
                                s = NULL;
                }
        } else {
                const char *home = getenv("HOME");
                if (!home || !*home) {
                        struct passwd *pw = getpwuid(getuid());
                        home = pw ? pw->pw_dir : NULL;
                }
                if (!home)
                        return -ENOENT;
                if (asprintf(&s, "%s/.local/state/smolvm", home) < 0)
                        s = NULL;
        }
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

const char *smolvm_libexec_dir(void)
{
        const char *env = getenv("SMOLVM_LIBEXECDIR");
        return env && *env ? env : SMOLVM_LIBEXECDIR;
}

bool image_name_valid(const char *name)
{
        return plain_name_valid(name, SMOLVM_IMAGE_NAME_MAX);
}

int image_dir_check(const char *dir, const char **ret_missing)
{
        static const char *const need[] = { IMAGE_KERNEL, IMAGE_INITRD, IMAGE_ROOTFS };
        for (size_t i = 0; i < ARRAY_SIZE(need); i++) {
                char p[PATH_MAX];
                int r = 0;
                if (snprintf(p, sizeof(p), "%s/%s", dir, need[i]) >= (int)sizeof(p))
                        r = -ENAMETOOLONG;
                else if (access(p, R_OK) < 0)
                        r = negative_errno();
                if (r < 0) {
                        *ret_missing = need[i];
                        return r;
                }
        }
        return 0;
}

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
