/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int get_string(const char *path, json_t *root, const char *key, bool required, bool abs_path, char **ret,
                      char *err, size_t err_len)
{
        json_t *v = json_object_get(root, key);

        if (!v || json_is_null(v)) {
                if (!required)
                        return 0;
                snprintf(err, err_len, "%s: \"%s\" is missing", path, key);
                return -EINVAL;
        }
        if (!json_is_string(v) || (abs_path && json_string_value(v)[0] != '/')) {
                snprintf(err, err_len, "%s: \"%s\" must be %s", path, key,
                         abs_path ? "an absolute path" : "a string");
                return -EINVAL;
        }
        *ret = strdup(json_string_value(v));
        if (!*ret) {
                snprintf(err, err_len, "%s: out of memory", path);
                return -ENOMEM;
        }
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
                snprintf(err, err_len, "%s: \"%s\" must be an integer in %llu..%llu", path, key,
                         (unsigned long long)min, (unsigned long long)max);
                return -EINVAL;
        }
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

int sup_config_load(const char *path, sup_config *ret, char *err, size_t err_len)
{
        sup_config c = {};
        uint64_t mem = 512, cpus = 1, timeout = 0, disk = 0;
        json_error_t jerr;
        json_t *root;
        int r;

        root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                snprintf(err, err_len, "%s: %s", path, jerr.text);
                return -EINVAL;
        }
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
            (r = get_uint(path, root, "disk_mib", 0, 64 * 1024 * 1024, &disk, err, err_len)) < 0) {
                json_decref(root);
                sup_config_done(&c);
                return r;
        }
        json_decref(root);
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
        *c = (sup_config){};
}
