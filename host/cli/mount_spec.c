/* SPDX-License-Identifier: Apache-2.0 */
#include "mount_spec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_mounts_add(cli_mounts *m, const char *arg)
{
        size_t len = strlen(arg);
        bool writable = false;

        if (m->n >= SMOLVM_MAX_MOUNTS) {
                cli_error("too many --mount options (max %u)", SMOLVM_MAX_MOUNTS);
                cli_hint("mount a common parent directory instead");
                return -EINVAL;
        }
        if (len >= 3 && arg[len - 3] == ':' && (!strcmp(arg + len - 2, "ro") || !strcmp(arg + len - 2, "rw"))) {
                writable = arg[len - 1] == 'w';
                len -= 3;
        }
        /* GUEST never contains ':' (the library refuses it), so the last ':' splits. */
        const char *colon = memrchr(arg, ':', len);
        if (!colon || colon == arg || (size_t)(colon - arg) + 1 == len) {
                cli_error("invalid value '%s' for --mount (expected HOST:GUEST[:ro|:rw])", arg);
                cli_hint("e.g. --mount ./repo:/workspace (read-only) or --mount ./out:/out:rw");
                return -EINVAL;
        }
        if (colon[1] != '/') {
                if (memchr(arg, ':', (size_t)(colon - arg)))
                        cli_error("invalid mode '%.*s' in --mount '%s' (expected ro or rw)",
                                  (int)(len - (size_t)(colon - arg) - 1), colon + 1, arg);
                else
                        cli_error("invalid value '%s' for --mount: the guest path '%.*s' must be absolute", arg,
                                  (int)(len - (size_t)(colon - arg) - 1), colon + 1);
                return -EINVAL;
        }
        char *host = strndup(arg, (size_t)(colon - arg));
        char *guest = strndup(colon + 1, len - (size_t)(colon - arg) - 1);
        if (!host || !guest) {
                free(host);
                free(guest);
                cli_error("out of memory");
                return -ENOMEM;
        }
        m->items[m->n++] = (smolvm_mount){ .host_path = host, .guest_path = guest, .writable = writable };
        return 0;
}

int cli_mounts_set_transport(cli_mounts *m, const char *arg)
{
        if (!strcmp(arg, "virtiofs"))
                m->transport = SMOLVM_MOUNT_VIRTIOFS;
        else if (!strcmp(arg, "vsock"))
                m->transport = SMOLVM_MOUNT_VSOCK;
        else {
                cli_error("invalid value '%s' for --mount-transport (expected virtiofs or vsock)", arg);
                return -EINVAL;
        }
        return 0;
}

void cli_mounts_apply(const cli_mounts *m, smolvm_config *cfg)
{
        cfg->mounts = m->n ? m->items : NULL;
        cfg->n_mounts = m->n;
        cfg->mount_transport = m->transport;
}

void cli_mounts_done(cli_mounts *m)
{
        for (size_t i = 0; i < m->n; i++) {
                free((char *)m->items[i].host_path);
                free((char *)m->items[i].guest_path);
        }
        m->n = 0;
}
