/* SPDX-License-Identifier: Apache-2.0 */
/* The subset of JSON Schema (2020-12) that smolvm mcp's tools declare, checked
 * and enforced in one place: a tool's inputSchema is what tools/list shows and
 * what its arguments are validated against, the same json_t.
 *
 * Keywords: type ("object", "array", "string", "integer", "number", "boolean",
 * "null"; one name, not a list), properties, required, additionalProperties
 * (false or a schema), items, enum, minimum, maximum, minLength, maxLength
 * (Unicode code points), minItems, maxItems; annotations description, title,
 * default, $schema are allowed and ignored. A schema using any other keyword is
 * refused by mcp_schema_check(), so nothing is ever declared that is not
 * enforced. One rule beyond JSON Schema: strings never carry U+0000 (C strings
 * all the way down); binary data travels as base64.
 * Tested in tests/unit/test_mcp_schema.c. */
#pragma once

#include <stddef.h>

#include <jansson.h>

/* Check that schema is an object that uses only the keywords above, each well
 * formed (a "required" name must be among "properties"). On failure err
 * (size bytes) says where. Returns 0 or -EINVAL. */
int mcp_schema_check(const json_t *schema, char *err, size_t size);

/* Validate value against a schema mcp_schema_check() accepted. root names the
 * value in messages ("arguments"): err gets e.g. "arguments.timeout: 0 is less
 * than the minimum 1" or "arguments: unknown property 'x' (expected: code,
 * language, timeout)". Returns 0 or -EINVAL. */
int mcp_schema_validate(const json_t *schema, const json_t *value, const char *root, char *err, size_t size);

/* An "integer" value (a JSON integer, or a number with no fractional part, as
 * JSON Schema counts it) as long long; def when value is NULL. */
long long mcp_json_int(const json_t *value, long long def);
