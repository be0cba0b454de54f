/* SPDX-License-Identifier: Apache-2.0 */
/* Fields of a JSON record file (vm.json: state.c, snapshot.json:
 * snapshot_record.c), read bounded; a bad one is SMOLVM_ECORRUPT naming the
 * file, the field and the fix (smolvm_i.h). Pure: unit-tested through both. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "smolvm_i.h"

int rec_corrupt(const rec_reader *rr, const char *fmt, ...)
{
        char why[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        return vm_error(SMOLVM_ECORRUPT, rr->hint, "%s %s is corrupt: %s", rr->what, rr->path, why);
}

int rec_get_str(const rec_reader *rr, json_t *root, const char *key, bool required, size_t max, char **ret)
{
        json_t *v = json_object_get(root, key);
        *ret = NULL;
        if (!v || json_is_null(v))
                return required ? rec_corrupt(rr, "missing field '%s'", key) : 0;
        if (!json_is_string(v) || json_string_length(v) > max)
                return max == SIZE_MAX ? rec_corrupt(rr, "field '%s' must be a string", key)
                                       : rec_corrupt(rr, "field '%s' must be a string of at most %zu bytes", key, max);
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : vm_error(-ENOMEM, NULL, "out of memory");
}

int rec_get_u64(const rec_reader *rr, json_t *root, const char *key, bool required, uint64_t min, uint64_t max,
                uint64_t *ret)
{
        json_t *v = json_object_get(root, key);
        if (!required && (!v || json_is_null(v))) {
                *ret = 0;
                return 0;
        }
        if (!v || json_is_null(v))
                return rec_corrupt(rr, "missing field '%s'", key);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < min ||
            (uint64_t)json_integer_value(v) > max)
                return rec_corrupt(rr, "field '%s' must be an integer from %llu to %llu", key, (unsigned long long)min,
                                   (unsigned long long)max);
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

int rec_get_uint(const rec_reader *rr, json_t *root, const char *key, bool required, unsigned min, unsigned max,
                 unsigned *ret)
{
        uint64_t v;
        int r = rec_get_u64(rr, root, key, required, min, max, &v);
        if (r == 0)
                *ret = (unsigned)v;
        return r;
}

int rec_get_bool(const rec_reader *rr, json_t *root, const char *key, bool *ret)
{
        json_t *v = json_object_get(root, key);
        if (v && !json_is_boolean(v))
                return rec_corrupt(rr, "field '%s' must be a boolean", key);
        *ret = json_is_true(v);
        return v ? 1 : 0;
}

int rec_check_version(const rec_reader *rr, json_t *root, unsigned version, const char *other_hint)
{
        uint64_t v;
        int r = rec_get_u64(rr, root, "version", true, 0, 1000, &v);
        if (r < 0)
                return r;
        if (v != version)
                return vm_error(SMOLVM_ECORRUPT, other_hint, "%s %s has version %llu, this smolvm reads version %u",
                                rr->what, rr->path, (unsigned long long)v, version);
        return 0;
}

int rec_check_image(const rec_reader *rr, const char *image_dir, const char *accel)
{
        if (image_dir[0] != '/')
                return rec_corrupt(rr, "field 'image_dir' must be an absolute path");
        if (accel && strcmp(accel, "auto") && strcmp(accel, "kvm") && strcmp(accel, "tcg"))
                return rec_corrupt(rr, "field 'accel' must be auto, kvm or tcg");
        return 0;
}
