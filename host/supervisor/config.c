/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h" /* common/ */

/* An optional boolean key (absent: false). */
static int get_bool(const char *path, json_t *root, const char *key, bool *ret, char *err, size_t err_len)
{
        json_t *v = json_object_get(root, key);
        if (v && !json_is_boolean(v))
                return errbuf_fail(-EINVAL, err, err_len, "%s: \"%s\" must be true or false", path, key);
        *ret = json_is_true(v);
        return 0;
}

static int get_string(const char *path, json_t *root, const char *key, bool required, bool abs_path, char **ret,
                      char *err, size_t err_len)
{
        json_t *v = json_object_get(root, key);

        if (!v || json_is_null(v)) {
                if (!required)
                        return 0;
                return errbuf_fail(-EINVAL, err, err_len, "%s: \"%s\" is missing", path, key);
        }
        if (!json_is_string(v) || (abs_path && json_string_value(v)[0] != '/'))
                return errbuf_fail(-EINVAL, err, err_len, "%s: \"%s\" must be %s", path, key,
                                   abs_path ? "an absolute path" : "a string");
        *ret = strdup(json_string_value(v));
        if (!*ret)
                return errbuf_fail(-ENOMEM, err, err_len, "%s: out of memory", path);
        return 0;
}

/* Absent or null keeps *ret (the default). */
static int get_uint(const char *path, json_t *root, const char *key, uint64_t min, uint64_t max, uint64_t *ret,
                    char *err, size_t err_len)
{
        json_t *v = json_object_get(root, key);

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < min ||
            (uint64_t)json_integer_value(v) > max) {
                return errbuf_fail(-EINVAL, err, err_len, "%s: \"%s\" must be an integer in %llu..%llu", path, key,
                                   (unsigned long long)min, (unsigned long long)max);
        }
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

static bool tag_valid(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > SUP_MOUNT_TAG_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
        return true;
}

/* The guest path goes on the kernel command line: no word or quote breaks. */
static bool guest_path_valid(const char *s)
{
        if (s[0] != '/' || strlen(s) > 255)
                return false;
        for (; *s; s++)
                if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '"' || *s == ':')
                        return false;
        return true;
}

static int get_mounts(const char *path, json_t *root, sup_config *c, char *err, size_t err_len)
{
        json_t *a = json_object_get(root, "mounts");
        if (!a || json_is_null(a))
                return 0;
        if (!json_is_array(a) || json_array_size(a) > SUP_MAX_MOUNTS)
                return errbuf_fail(-EINVAL, err, err_len, "%s: \"mounts\" must be an array of at most %u objects", path,
                                   SUP_MAX_MOUNTS);
        for (size_t i = 0; i < json_array_size(a); i++) {
                json_t *e = json_array_get(a, i);
                json_t *t = json_object_get(e, "tag"), *h = json_object_get(e, "host"), *g = json_object_get(e, "guest"),
                       *w = json_object_get(e, "writable");
                if (!json_is_object(e) || !json_is_string(t) || !json_is_string(h) || !json_is_string(g) ||
                    (w && !json_is_boolean(w)) || !tag_valid(json_string_value(t)) ||
                    json_string_value(h)[0] != '/' || !guest_path_valid(json_string_value(g))) {
                        return errbuf_fail(-EINVAL, err, err_len,
                                           "%s: \"mounts[%zu]\" must be {\"tag\": [a-z0-9-]{1,36}, \"host\": absolute path, "
                                           "\"guest\": absolute path, \"writable\": bool}",
                                           path, i);
                }
                for (size_t j = 0; j < c->n_mounts; j++)
                        if (!strcmp(c->mounts[j].tag, json_string_value(t)))
                                return errbuf_fail(-EINVAL, err, err_len, "%s: mount tag %s is used twice", path,
                                                   json_string_value(t));
                sup_mount_cfg *m = &c->mounts[c->n_mounts];
                m->tag = strdup(json_string_value(t));
                m->host = strdup(json_string_value(h));
                m->guest = strdup(json_string_value(g));
                m->writable = json_is_true(w);
                c->n_mounts++; /* freed by sup_config_done() even if incomplete */
                if (!m->tag || !m->host || !m->guest)
                        return errbuf_fail(-ENOMEM, err, err_len, "%s: out of memory", path);
        }
        return 0;
}

static bool machine_id_valid(const char *s)
{
        size_t n = strspn(s, "0123456789abcdef");
        return n == 32 && !s[n] && strspn(s, "0") != n;
}

int sup_config_load(const char *path, sup_config *ret, char *err, size_t err_len)
{
        sup_config c = {};
        char *transport = NULL;
        uint64_t mem = 512, cpus = 1, timeout = 0, disk = 0;
        json_error_t jerr;
        json_t *root;
        int r;

        root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return errbuf_fail(-EINVAL, err, err_len, "%s: %s", path, jerr.text);
        if (!json_is_object(root)) {
                snprintf(err, err_len, "%s: not a JSON object", path);
                json_decref(root);
                return -EINVAL;
        }
        if ((r = get_string(path, root, "kernel", true, true, &c.kernel, err, err_len)) < 0 ||
            (r = get_string(path, root, "initrd", true, true, &c.initrd, err, err_len)) < 0 ||
            (r = get_string(path, root, "rootfs", true, true, &c.rootfs, err, err_len)) < 0 ||
            (r = get_string(path, root, "cmdline", false, false, &c.cmdline_extra, err, err_len)) < 0 ||
            (r = get_string(path, root, "accel", false, false, &c.accel, err, err_len)) < 0 ||
            (r = get_uint(path, root, "mem_mib", 64, 1024 * 1024, &mem, err, err_len)) < 0 ||
            (r = get_uint(path, root, "cpus", 1, 255, &cpus, err, err_len)) < 0 ||
            (r = get_uint(path, root, "boot_timeout_ms", 0, 3600 * 1000, &timeout, err, err_len)) < 0 ||
            (r = get_uint(path, root, "disk_mib", 0, 64 * 1024 * 1024, &disk, err, err_len)) < 0 ||
            (r = get_string(path, root, "mount_transport", false, false, &transport, err, err_len)) < 0 ||
            (r = get_string(path, root, "snapshot_dir", false, true, &c.snapshot_dir, err, err_len)) < 0 ||
            (r = get_string(path, root, "disk_layer", false, false, &c.disk_layer, err, err_len)) < 0 ||
            (r = get_string(path, root, "machine_id", false, false, &c.machine_id, err, err_len)) < 0 ||
            (r = get_mounts(path, root, &c, err, err_len)) < 0) {
                free(transport);
                json_decref(root);
                sup_config_done(&c);
                return r;
        }
        if ((r = get_bool(path, root, "ram_copy", &c.ram_copy, err, err_len)) < 0 ||
            (r = get_bool(path, root, "fresh_mounts", &c.fresh_mounts, err, err_len)) < 0 ||
            (r = get_bool(path, root, "lane", &c.snapshot_lane, err, err_len)) < 0) {
                free(transport);
                json_decref(root);
                sup_config_done(&c);
                return r;
        }
        json_decref(root);
        if (transport && strcmp(transport, "virtiofs") != 0 && strcmp(transport, "vsock") != 0) {
                snprintf(err, err_len, "%s: \"mount_transport\" must be \"virtiofs\" or \"vsock\"", path);
                free(transport);
                sup_config_done(&c);
                return -EINVAL;
        }
        if (!c.snapshot_dir != !c.disk_layer ||
            (c.disk_layer && (strchr(c.disk_layer, '/') || strncmp(c.disk_layer, "layer-", 6) != 0))) {
                snprintf(err, err_len, "%s: \"snapshot_dir\" and \"disk_layer\" (a layer-*.qcow2 file name) go together",
                         path);
                free(transport);
                sup_config_done(&c);
                return -EINVAL;
        }
        if (c.machine_id && !machine_id_valid(c.machine_id)) {
                snprintf(err, err_len, "%s: \"machine_id\" must be 32 lowercase hex digits, not all zero", path);
                free(transport);
                sup_config_done(&c);
                return -EINVAL;
        }
        c.mounts_vsock = transport && !strcmp(transport, "vsock");
        free(transport);
        c.mem_mib = (uint32_t)mem;
        c.cpus = (uint32_t)cpus;
        c.boot_timeout_ms = timeout;
        c.disk_mib = disk;
        *ret = c;
        return 0;
}

void sup_config_done(sup_config *c)
{
        free(c->kernel);
        free(c->initrd);
        free(c->rootfs);
        free(c->cmdline_extra);
        free(c->accel);
        free(c->snapshot_dir);
        free(c->disk_layer);
        free(c->machine_id);
        for (size_t i = 0; i < c->n_mounts; i++) {
                free(c->mounts[i].tag);
                free(c->mounts[i].host);
                free(c->mounts[i].guest);
        }
        *c = (sup_config){};
}
