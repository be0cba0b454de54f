/* SPDX-License-Identifier: Apache-2.0 */
/* Host directory mounts (smolvm_config.mounts): validation at create, the
 * record's "mounts" field (vm.json) and the supervisor's (config.json).
 *
 * The guest path travels on the guest kernel command line
 * (smolvm.mount=TAG:PATH:MODE, docs/internals.md), which the kernel splits on
 * whitespace, honours '"' in, and truncates at COMMAND_LINE_SIZE (2048 on x86)
 * without telling anyone: hence the character set and the length budget. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "guest_path.h"
#include "smolvm_i.h"
#include "util.h"

/* "smolvm.mount=smolvm-fs-15:" + ":ro" + a space, per mount. */
#define MOUNT_ARG_OVERHEAD 30u
/* Of the kernel's 2048 bytes: ours (console, channel, tsc) take ~100, the user's
 * kernel_cmdline the rest of what is left. */
#define MOUNT_ARGS_MAX_BYTES 1024u

void vm_mounts_free(vm_mount *mounts, size_t n)
{
        for (size_t i = 0; mounts && i < n; i++) {
                free(mounts[i].host_path);
                free(mounts[i].guest_path);
        }
        free(mounts);
}

const char *vm_mount_transport_name(smolvm_mount_transport t)
{
        return t == SMOLVM_MOUNT_VSOCK ? "vsock" : "virtiofs";
}

int vm_mount_transport_parse(const char *s, smolvm_mount_transport *ret)
{
        if (!strcmp(s, "virtiofs"))
                *ret = SMOLVM_MOUNT_VIRTIOFS;
        else if (!strcmp(s, "vsock"))
                *ret = SMOLVM_MOUNT_VSOCK;
        else
                return -EINVAL;
        return 0;
}

bool vm_mount_guest_path_valid(const char *p)
{
        size_t n = p ? strlen(p) : 0;
        if (n < 2 || n > VM_MOUNT_GUEST_PATH_MAX || p[0] != '/')
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)p[i];
                if (c <= ' ' || c == 0x7f || c == '"' || c == ':')
                        return false;
        }
        return guest_relpath_valid(p + 1, n - 1);
}

/* Where smolvm-init mounts file systems or keeps its own state
 * (guest-init/setup.c, modules.c, envstore.c): a share at or under one hides
 * what the guest needs to boot or to run commands (a share at /dev hides the
 * agent's channel: the boot fails after its timeout). subtree: refused below it
 * too; a parent of any entry would hide it as well and is refused. */
static const struct {
        const char *path;
        bool subtree;
} reserved_guest_paths[] = {
        { "/dev", true },        { "/proc", true },       { "/sys", true },
        { "/run/smolvm", true }, { "/etc/smolvm", true },
        { "/tmp", false }, /* init's tmpfs: /tmp/x is an ordinary directory */
};

bool vm_mount_guest_path_reserved(const char *p, char *why, size_t why_len)
{
        size_t n = strlen(p);
        for (size_t i = 0; i < ARRAY_SIZE(reserved_guest_paths); i++) {
                const char *r = reserved_guest_paths[i].path;
                size_t rn = strlen(r);
                const char *how = NULL;
                if (n == rn && !memcmp(p, r, n))
                        how = "is";
                else if (reserved_guest_paths[i].subtree && n > rn && !memcmp(p, r, rn) && p[rn] == '/')
                        how = "is under";
                else if (rn > n && !memcmp(p, r, n) && r[n] == '/')
                        how = "would hide";
                if (!how)
                        continue;
                snprintf(why, why_len,
                         "guest path '%s' %s %s, which the guest's init owns (reserved: /dev, /proc, /sys, "
                         "/run/smolvm, /etc/smolvm and what is under them, their parents, and /tmp itself)",
                         p, how, r);
                return true;
        }
        return false;
}

/* Shared by create and the record parser: one wording per problem. why gets the
 * reason, the return is -EINVAL or 0. */
static int check_mount_list(const vm_mount *m, size_t n, char *why, size_t why_len)
{
        size_t budget = 0;
        if (n > SMOLVM_MAX_MOUNTS) {
                snprintf(why, why_len, "%zu mounts, at most %u are supported", n, SMOLVM_MAX_MOUNTS);
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
                if (!vm_mount_guest_path_valid(m[i].guest_path)) {
                        snprintf(why, why_len,
                                 "invalid guest path '%s' (absolute, at most %u bytes, no '.', '..' or empty "
                                 "components, not '/', no whitespace, '\"' or ':')",
                                 m[i].guest_path, VM_MOUNT_GUEST_PATH_MAX);
                        return -EINVAL;
                }
                if (vm_mount_guest_path_reserved(m[i].guest_path, why, why_len))
                        return -EINVAL;
                if (!m[i].host_path || m[i].host_path[0] != '/') {
                        snprintf(why, why_len, "host path of mount %zu is not absolute", i);
                        return -EINVAL;
                }
                for (size_t j = 0; j < i; j++)
                        if (!strcmp(m[i].guest_path, m[j].guest_path)) {
                                snprintf(why, why_len, "two mounts at guest path %s", m[i].guest_path);
                                return -EINVAL;
                        }
                budget += MOUNT_ARG_OVERHEAD + strlen(m[i].guest_path);
        }
        if (budget > MOUNT_ARGS_MAX_BYTES) {
                snprintf(why, why_len,
                         "the guest paths are too long together (%zu bytes of kernel command line, at most %u)",
                         budget, MOUNT_ARGS_MAX_BYTES);
                return -EINVAL;
        }
        return 0;
}

int vm_mounts_from_config(const smolvm_config *cfg, vm_record *rec)
{
        char why[512];
        if (cfg->n_mounts == 0)
                return 0;
        if (!cfg->mounts)
                return vm_error(-EINVAL, NULL, "n_mounts is %zu but mounts is NULL", cfg->n_mounts);
        if (cfg->n_mounts > SMOLVM_MAX_MOUNTS)
                return vm_error(-EINVAL, "share a common parent directory instead", "too many mounts (%zu, at most %u)",
                                cfg->n_mounts, SMOLVM_MAX_MOUNTS);
        if (cfg->mount_transport != SMOLVM_MOUNT_VIRTIOFS && cfg->mount_transport != SMOLVM_MOUNT_VSOCK)
                return vm_error(-EINVAL, "use virtiofs or vsock", "invalid mount transport %d",
                                (int)cfg->mount_transport);

        /* Guest paths first (pure checks), with a placeholder host path. */
        vm_mount probe[SMOLVM_MAX_MOUNTS];
        for (size_t i = 0; i < cfg->n_mounts; i++)
                probe[i] = (vm_mount){ .host_path = (char *)"/",
                                       .guest_path = (char *)(cfg->mounts[i].guest_path ? cfg->mounts[i].guest_path : "") };
        for (size_t i = 0; i < cfg->n_mounts; i++)
                if (vm_mount_guest_path_valid(probe[i].guest_path) &&
                    vm_mount_guest_path_reserved(probe[i].guest_path, why, sizeof(why)))
                        return vm_error(-EINVAL, "mount it elsewhere, e.g. at /workspace or /mnt/NAME", "%s", why);
        if (check_mount_list(probe, cfg->n_mounts, why, sizeof(why)) < 0)
                return vm_error(-EINVAL, "the guest side of --mount HOST:GUEST is an absolute path like /workspace",
                                "%s", why);

        vm_mount *m = calloc(cfg->n_mounts, sizeof(*m));
        if (!m)
                return vm_error(-ENOMEM, NULL, "out of memory");
        int r = 0;
        for (size_t i = 0; i < cfg->n_mounts && r == 0; i++) {
                const char *host = cfg->mounts[i].host_path ? cfg->mounts[i].host_path : "";
                struct stat st;
                if (!*host || stat(host, &st) < 0) {
                        r = *host ? negative_errno() : -ENOENT;
                        r = vm_error(r, "the host side of --mount HOST:GUEST must be an existing directory",
                                     "mount source %s: %s", *host ? host : "(empty)", strerror(-r));
                        break;
                }
                if (!S_ISDIR(st.st_mode)) {
                        r = vm_error(-ENOTDIR, "the host side of --mount HOST:GUEST must be a directory",
                                     "mount source %s: %s", host, strerror(ENOTDIR));
                        break;
                }
                /* The server is given this exact directory: resolve it now, so a
                 * symlink swapped later cannot redirect a persistent VM's mount. */
                char real[PATH_MAX];
                if (!realpath(host, real)) {
                        r = negative_errno();
                        r = vm_error(r, NULL, "mount source %s: realpath: %s", host, strerror(-r));
                        break;
                }
                m[i].host_path = strdup(real);
                m[i].guest_path = strdup(cfg->mounts[i].guest_path);
                m[i].writable = cfg->mounts[i].writable;
                if (!m[i].host_path || !m[i].guest_path)
                        r = vm_error(-ENOMEM, NULL, "out of memory");
        }
        if (r < 0) {
                vm_mounts_free(m, cfg->n_mounts);
                return r;
        }
        rec->mounts = m;
        rec->n_mounts = cfg->n_mounts;
        rec->mount_transport = cfg->mount_transport;
        return 0;
}

json_t *vm_mounts_to_json(const vm_record *rec, bool with_tags)
{
        json_t *a = json_array();
        for (size_t i = 0; a && i < rec->n_mounts; i++) {
                const vm_mount *m = &rec->mounts[i];
                json_t *o = json_pack("{s:s, s:s, s:b}", "host", m->host_path, "guest", m->guest_path, "writable",
                                      m->writable);
                if (o && with_tags) {
                        char tag[32];
                        snprintf(tag, sizeof(tag), VM_MOUNT_TAG_PREFIX "%zu", i);
                        if (json_object_set_new(o, "tag", json_string(tag)) < 0) {
                                json_decref(o);
                                o = NULL;
                        }
                }
                if (!o || json_array_append_new(a, o) < 0) {
                        json_decref(a);
                        return NULL;
                }
        }
        return a;
}

int vm_mounts_parse(json_t *root, vm_record *rec, char *why, size_t why_len)
{
        json_t *a = json_object_get(root, "mounts");
        json_t *t = json_object_get(root, "mount_transport");
        rec->mount_transport = SMOLVM_MOUNT_VIRTIOFS;
        if (t && !json_is_null(t) &&
            (!json_is_string(t) || vm_mount_transport_parse(json_string_value(t), &rec->mount_transport) < 0)) {
                snprintf(why, why_len, "field 'mount_transport' must be \"virtiofs\" or \"vsock\"");
                return -EINVAL;
        }
        if (!a || json_is_null(a))
                return 0;
        if (!json_is_array(a) || json_array_size(a) > SMOLVM_MAX_MOUNTS) {
                snprintf(why, why_len, "field 'mounts' must be an array of at most %u objects", SMOLVM_MAX_MOUNTS);
                return -EINVAL;
        }
        size_t n = json_array_size(a);
        if (n == 0)
                return 0;
        vm_mount *m = calloc(n, sizeof(*m));
        if (!m) {
                snprintf(why, why_len, "out of memory");
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(a, i);
                json_t *h = json_object_get(e, "host"), *g = json_object_get(e, "guest"),
                       *w = json_object_get(e, "writable");
                if (!json_is_object(e) || !json_is_string(h) || !json_is_string(g) || (w && !json_is_boolean(w))) {
                        snprintf(why, why_len, "field 'mounts[%zu]' must be {\"host\", \"guest\", \"writable\"}", i);
                        vm_mounts_free(m, n);
                        return -EINVAL;
                }
                m[i].host_path = strdup(json_string_value(h));
                m[i].guest_path = strdup(json_string_value(g));
                m[i].writable = json_is_true(w);
                if (!m[i].host_path || !m[i].guest_path) {
                        snprintf(why, why_len, "out of memory");
                        vm_mounts_free(m, n);
                        return -ENOMEM;
                }
        }
        int r = check_mount_list(m, n, why, why_len);
        if (r < 0) {
                vm_mounts_free(m, n);
                return r;
        }
        rec->mounts = m;
        rec->n_mounts = n;
        return 0;
}
