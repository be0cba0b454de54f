/* SPDX-License-Identifier: Apache-2.0 */
/* The one JSON Schema subset of smolvm mcp (mcp_schema.h): the check of a
 * declaration and the validation of a value against it. */
#include "mcp_schema.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* Schemas are ours and shallow; the bound only keeps a mistake from recursing
 * for ever. Values are walked only as deep as their schema goes. */
#define SCHEMA_MAX_DEPTH 16

typedef struct vctx {
        char *err;
        size_t size;
        char path[512];
} vctx;

static int failf(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int failf(vctx *v, const char *fmt, ...)
{
        if (v->size) {
                int n = snprintf(v->err, v->size, "%s%s", v->path, v->path[0] ? ": " : "");
                if (n >= 0 && (size_t)n < v->size) {
                        va_list ap;
                        va_start(ap, fmt);
                        vsnprintf(v->err + n, v->size - (size_t)n, fmt, ap);
                        va_end(ap);
                }
        }
        return -EINVAL;
}

/* Append ".name" or "[i]" to the path; returns the old length to restore. */
static size_t path_push(vctx *v, const char *name, size_t index)
{
        size_t old = strlen(v->path);
        if (name)
                snprintf(v->path + old, sizeof(v->path) - old, "%s%.64s", old ? "." : "", name);
        else
                snprintf(v->path + old, sizeof(v->path) - old, "[%zu]", index);
        return old;
}

/* The type names and how messages say them. */
static const struct {
        const char *name, *phrase;
} types[] = {
        { "object", "an object" },   { "array", "an array" },    { "string", "a string" }, { "integer", "an integer" },
        { "number", "a number" },    { "boolean", "a boolean" }, { "null", "null" },
};

static bool is_integral(const json_t *j)
{
        if (json_is_integer(j))
                return true;
        if (!json_is_real(j))
                return false;
        /* Without libm: in range, a double converts to long long exactly when
         * it has no fractional part. */
        double d = json_real_value(j);
        return isfinite(d) && d > -9.2e18 && d < 9.2e18 && (double)(long long)d == d;
}

long long mcp_json_int(const json_t *value, long long def)
{
        if (json_is_integer(value))
                return (long long)json_integer_value(value);
        if (is_integral(value))
                return (long long)json_real_value(value);
        return def;
}

static bool type_matches(const char *type, const json_t *j)
{
        if (!strcmp(type, "object"))
                return json_is_object(j);
        if (!strcmp(type, "array"))
                return json_is_array(j);
        if (!strcmp(type, "string"))
                return json_is_string(j);
        if (!strcmp(type, "integer"))
                return is_integral(j);
        if (!strcmp(type, "number"))
                return json_is_number(j);
        if (!strcmp(type, "boolean"))
                return json_is_boolean(j);
        return json_is_null(j);
}

static const char *type_of(const json_t *j)
{
        switch (json_typeof(j)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
                return "an integer";
        case JSON_REAL:
                return "a number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        case JSON_NULL:
                return "null";
        default:
                return "a value";
        }
}

/* A short rendering of a value for messages: strings quoted (cut at 64 bytes),
 * numbers as numbers, anything else by its type. */
static const char *show(const json_t *j, char *buf, size_t size)
{
        if (json_is_string(j))
                snprintf(buf, size, "'%.64s'%s", json_string_value(j), json_string_length(j) > 64 ? "..." : "");
        else if (json_is_integer(j))
                snprintf(buf, size, "%lld", (long long)json_integer_value(j));
        else if (json_is_real(j))
                snprintf(buf, size, "%g", json_real_value(j));
        else
                snprintf(buf, size, "%s", type_of(j));
        return buf;
}

static size_t code_points(const char *s, size_t len)
{
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
                n += ((unsigned char)s[i] & 0xc0) != 0x80;
        return n;
}

/* ---- the declaration ---- */

static const char *const keywords[] = {
        "type",      "properties", "required",  "additionalProperties", "items",    "enum",
        "minimum",   "maximum",    "minLength", "maxLength",            "minItems", "maxItems",
        /* annotations: shown to the client, not enforced */
        "description", "title", "default", "$schema",
};

static bool is_count(const json_t *j)
{
        return json_is_integer(j) && json_integer_value(j) >= 0;
}

static int check_at(vctx *v, const json_t *s, int depth)
{
        if (depth > SCHEMA_MAX_DEPTH)
                return failf(v, "schema nested deeper than %d", SCHEMA_MAX_DEPTH);
        if (!json_is_object(s))
                return failf(v, "a schema must be an object, not %s", type_of(s));
        const char *key;
        json_t *val;
        json_object_foreach ((json_t *)s, key, val) {
                bool known = false;
                for (size_t i = 0; i < ARRAY_SIZE(keywords) && !known; i++)
                        known = !strcmp(key, keywords[i]);
                if (!known)
                        return failf(v, "keyword '%s' is not implemented by the validator", key);
        }
        const json_t *type = json_object_get(s, "type");
        if (type) {
                bool ok = false;
                for (size_t i = 0; json_is_string(type) && i < ARRAY_SIZE(types) && !ok; i++)
                        ok = !strcmp(json_string_value(type), types[i].name);
                if (!ok)
                        return failf(v, "'type' must be one of object, array, string, integer, number, boolean, null");
        }
        static const char *const numbers[] = { "minimum", "maximum" };
        for (size_t i = 0; i < ARRAY_SIZE(numbers); i++) {
                const json_t *n = json_object_get(s, numbers[i]);
                if (n && !json_is_number(n))
                        return failf(v, "'%s' must be a number", numbers[i]);
        }
        static const char *const counts[] = { "minLength", "maxLength", "minItems", "maxItems" };
        for (size_t i = 0; i < ARRAY_SIZE(counts); i++) {
                const json_t *n = json_object_get(s, counts[i]);
                if (n && !is_count(n))
                        return failf(v, "'%s' must be a non-negative integer", counts[i]);
        }
        const json_t *en = json_object_get(s, "enum");
        if (en && (!json_is_array(en) || json_array_size(en) == 0))
                return failf(v, "'enum' must be a non-empty array");

        const json_t *props = json_object_get(s, "properties");
        if (props) {
                if (!json_is_object(props))
                        return failf(v, "'properties' must be an object");
                json_object_foreach ((json_t *)props, key, val) {
                        size_t old = path_push(v, key, 0);
                        int r = check_at(v, val, depth + 1);
                        v->path[old] = 0;
                        if (r < 0)
                                return r;
                }
        }
        const json_t *req = json_object_get(s, "required");
        if (req) {
                size_t i;
                json_t *name;
                if (!json_is_array(req))
                        return failf(v, "'required' must be an array");
                json_array_foreach (req, i, name)
                        if (!json_is_string(name) || !json_object_get(props, json_string_value(name)))
                                return failf(v, "'required' names %s, which 'properties' does not declare",
                                             json_is_string(name) ? json_string_value(name) : "a non-string");
        }
        const json_t *add = json_object_get(s, "additionalProperties");
        if (add && !json_is_boolean(add)) {
                size_t old = path_push(v, "additionalProperties", 0);
                int r = check_at(v, add, depth + 1);
                v->path[old] = 0;
                if (r < 0)
                        return r;
        }
        const json_t *items = json_object_get(s, "items");
        if (items) {
                size_t old = path_push(v, "items", 0);
                int r = check_at(v, items, depth + 1);
                v->path[old] = 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

int mcp_schema_check(const json_t *schema, char *err, size_t size)
{
        vctx v = { .err = err, .size = size };
        return check_at(&v, schema, 0);
}

/* ---- a value ---- */

/* "a, b, c" of the schema's property names, for messages. */
static void property_names(const json_t *props, char *buf, size_t size)
{
        const char *key;
        json_t *val;
        size_t len = 0;
        buf[0] = 0;
        json_object_foreach ((json_t *)props, key, val) {
                int n = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", key);
                if (n < 0 || (size_t)n >= size - len)
                        break;
                len += (size_t)n;
        }
        if (!buf[0])
                snprintf(buf, size, "none");
}

static int validate_number(vctx *v, const json_t *s, const json_t *j)
{
        const json_t *lo = json_object_get(s, "minimum"), *hi = json_object_get(s, "maximum");
        char a[96], b[96];
        if (lo && json_number_value(j) < json_number_value(lo))
                return failf(v, "%s is less than the minimum %s", show(j, a, sizeof(a)), show(lo, b, sizeof(b)));
        if (hi && json_number_value(j) > json_number_value(hi))
                return failf(v, "%s is more than the maximum %s", show(j, a, sizeof(a)), show(hi, b, sizeof(b)));
        return 0;
}

static int validate_string(vctx *v, const json_t *s, const json_t *j)
{
        const char *str = json_string_value(j);
        size_t len = json_string_length(j);
        if (memchr(str, 0, len))
                return failf(v, "must not contain U+0000 (send binary data as base64)");
        const json_t *lo = json_object_get(s, "minLength"), *hi = json_object_get(s, "maxLength");
        size_t n = (lo || hi) ? code_points(str, len) : 0;
        if (lo && n < (size_t)json_integer_value(lo))
                return failf(v, "is %zu characters, shorter than the minimum %lld", n,
                             (long long)json_integer_value(lo));
        if (hi && n > (size_t)json_integer_value(hi))
                return failf(v, "is %zu characters, longer than the maximum %lld", n,
                             (long long)json_integer_value(hi));
        return 0;
}

static int validate_at(vctx *v, const json_t *s, const json_t *j);

static int validate_object(vctx *v, const json_t *s, const json_t *j)
{
        const json_t *props = json_object_get(s, "properties");
        const json_t *add = json_object_get(s, "additionalProperties");
        const json_t *req = json_object_get(s, "required");
        size_t i;
        json_t *name;
        json_array_foreach (req, i, name)
                if (!json_object_get(j, json_string_value(name)))
                        return failf(v, "missing required property '%s'", json_string_value(name));
        const char *key;
        json_t *val;
        json_object_foreach ((json_t *)j, key, val) {
                const json_t *sub = json_object_get(props, key);
                if (!sub && json_is_false(add)) {
                        char names[256];
                        property_names(props, names, sizeof(names));
                        return failf(v, "unknown property '%.64s' (expected: %s)", key, names);
                }
                if (!sub && json_is_object(add))
                        sub = add;
                if (!sub)
                        continue;
                size_t old = path_push(v, key, 0);
                int r = validate_at(v, sub, val);
                v->path[old] = 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

static int validate_array(vctx *v, const json_t *s, const json_t *j)
{
        const json_t *lo = json_object_get(s, "minItems"), *hi = json_object_get(s, "maxItems");
        size_t n = json_array_size(j);
        if (lo && n < (size_t)json_integer_value(lo))
                return failf(v, "has %zu items, fewer than the minimum %lld", n, (long long)json_integer_value(lo));
        if (hi && n > (size_t)json_integer_value(hi))
                return failf(v, "has %zu items, more than the maximum %lld", n, (long long)json_integer_value(hi));
        const json_t *items = json_object_get(s, "items");
        size_t i;
        json_t *val;
        json_array_foreach (j, i, val) {
                if (!items)
                        break;
                size_t old = path_push(v, NULL, i);
                int r = validate_at(v, items, val);
                v->path[old] = 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

static int validate_at(vctx *v, const json_t *s, const json_t *j)
{
        char a[96];
        const json_t *type = json_object_get(s, "type");
        if (type && !type_matches(json_string_value(type), j)) {
                const char *want = json_string_value(type);
                for (size_t i = 0; i < ARRAY_SIZE(types); i++)
                        if (!strcmp(types[i].name, want))
                                want = types[i].phrase;
                return failf(v, "expected %s, got %s", want, type_of(j));
        }
        const json_t *en = json_object_get(s, "enum");
        if (en) {
                size_t i;
                json_t *opt;
                bool found = false;
                json_array_foreach (en, i, opt)
                        found = found || json_equal(opt, j);
                if (!found) {
                        char list[256] = "";
                        size_t len = 0;
                        json_array_foreach (en, i, opt) {
                                char b[96];
                                int n = snprintf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "",
                                                 show(opt, b, sizeof(b)));
                                if (n < 0 || (size_t)n >= sizeof(list) - len)
                                        break;
                                len += (size_t)n;
                        }
                        return failf(v, "%s is not one of %s", show(j, a, sizeof(a)), list);
                }
        }
        if (json_is_number(j))
                return validate_number(v, s, j);
        if (json_is_string(j))
                return validate_string(v, s, j);
        if (json_is_object(j))
                return validate_object(v, s, j);
        if (json_is_array(j))
                return validate_array(v, s, j);
        return 0;
}

int mcp_schema_validate(const json_t *schema, const json_t *value, const char *root, char *err, size_t size)
{
        vctx v = { .err = err, .size = size };
        snprintf(v.path, sizeof(v.path), "%.64s", root ? root : "");
        return validate_at(&v, schema, value);
}
