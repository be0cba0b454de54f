/* SPDX-License-Identifier: Apache-2.0 */
/* The JSON Schema subset of smolvm mcp (host/mcp/mcp_schema.c): declarations
 * using anything it does not enforce are refused; values are validated keyword
 * by keyword with messages that name the property; smolvm's own tool table
 * passes the check. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "mcp_schema.h"
#include "mcp_server.h"
#include "mcp_tools.h"

static json_t *parse(const char *text)
{
        json_error_t e;
        json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        ck_assert_msg(j, "bad test JSON: %s: %s", text, e.text);
        return j;
}

static int check_text(const char *schema, char *err, size_t size)
{
        json_t *s = parse(schema);
        int r = mcp_schema_check(s, err, size);
        json_decref(s);
        return r;
}

/* Validate value (JSON text) against schema (JSON text); err gets the message. */
static int validate(const char *schema, const char *value, char *err, size_t size)
{
        json_t *s = parse(schema), *v = parse(value);
        ck_assert_int_eq(mcp_schema_check(s, err, size), 0);
        int r = mcp_schema_validate(s, v, "arguments", err, size);
        json_decref(s);
        json_decref(v);
        return r;
}

static void assert_invalid(const char *schema, const char *value, const char *want)
{
        char err[512] = "";
        ck_assert_int_eq(validate(schema, value, err, sizeof(err)), -EINVAL);
        ck_assert_msg(strstr(err, want), "%s against %s: got '%s', want '%s'", value, schema, err, want);
}

static void assert_valid(const char *schema, const char *value)
{
        char err[512] = "";
        int r = validate(schema, value, err, sizeof(err));
        ck_assert_msg(r == 0, "%s against %s: %s", value, schema, err);
}

START_TEST(test_check_refuses_what_it_does_not_enforce)
{
        char err[256];
        static const struct {
                const char *schema, *want;
        } bad[] = {
                { "{\"type\": \"string\", \"pattern\": \"^a\"}", "keyword 'pattern' is not implemented" },
                { "{\"oneOf\": []}", "keyword 'oneOf'" },
                { "{\"type\": [\"string\", \"null\"]}", "'type' must be one of" },
                { "{\"type\": \"str\"}", "'type' must be one of" },
                { "{\"minimum\": \"1\"}", "'minimum' must be a number" },
                { "{\"maxLength\": -1}", "'maxLength' must be a non-negative integer" },
                { "{\"maxLength\": 1.5}", "'maxLength' must be a non-negative integer" },
                { "{\"enum\": []}", "'enum' must be a non-empty array" },
                { "{\"properties\": []}", "'properties' must be an object" },
                { "{\"properties\": {\"a\": {}}, \"required\": [\"b\"]}", "'required' names b" },
                { "{\"properties\": {\"a\": {\"type\": \"string\", \"format\": \"uri\"}}}", "a: keyword 'format'" },
                { "{\"items\": {\"const\": 1}}", "items: keyword 'const'" },
                { "{\"additionalProperties\": {\"if\": {}}}", "additionalProperties: keyword 'if'" },
                { "[]", "a schema must be an object" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err[0] = 0;
                ck_assert_int_eq(check_text(bad[i].schema, err, sizeof(err)), -EINVAL);
                ck_assert_msg(strstr(err, bad[i].want), "%s: got '%s'", bad[i].schema, err);
        }
        ck_assert_int_eq(check_text("{\"type\": \"object\", \"description\": \"d\", \"title\": \"t\", \"$schema\": "
                                    "\"x\", \"properties\": {\"a\": {\"type\": \"integer\", \"default\": 3}}, "
                                    "\"required\": [\"a\"], \"additionalProperties\": false}",
                                    err, sizeof(err)),
                         0);
}
END_TEST

START_TEST(test_types)
{
        assert_valid("{\"type\": \"integer\"}", "5");
        /* JSON Schema counts a number without a fractional part as an integer. */
        assert_valid("{\"type\": \"integer\"}", "5.0");
        assert_invalid("{\"type\": \"integer\"}", "5.5", "arguments: expected an integer, got a number");
        assert_invalid("{\"type\": \"integer\"}", "\"5\"", "expected an integer, got a string");
        assert_invalid("{\"type\": \"integer\"}", "true", "expected an integer, got a boolean");
        assert_valid("{\"type\": \"number\"}", "5.5");
        assert_valid("{\"type\": \"number\"}", "5");
        assert_invalid("{\"type\": \"string\"}", "null", "expected a string, got null");
        assert_invalid("{\"type\": \"object\"}", "[]", "expected an object, got an array");
        assert_invalid("{\"type\": \"array\"}", "{}", "expected an array, got an object");
        assert_valid("{\"type\": \"boolean\"}", "false");
        assert_valid("{\"type\": \"null\"}", "null");
        assert_valid("{}", "{\"anything\": [1, \"x\"]}");
        ck_assert_int_eq(mcp_json_int(NULL, 7), 7);
        json_t *j = json_real(12.0);
        ck_assert_int_eq(mcp_json_int(j, 7), 12);
        json_decref(j);
}
END_TEST

START_TEST(test_bounds)
{
        assert_invalid("{\"type\": \"integer\", \"minimum\": 1}", "0", "0 is less than the minimum 1");
        assert_invalid("{\"type\": \"integer\", \"maximum\": 300}", "301", "301 is more than the maximum 300");
        assert_valid("{\"type\": \"integer\", \"minimum\": 1, \"maximum\": 300}", "300");
        assert_invalid("{\"type\": \"number\", \"maximum\": 1.5}", "1.75", "1.75 is more than the maximum 1.5");
        /* Lengths are in code points: "é€😀" is 3 characters, 9 bytes. */
        assert_valid("{\"type\": \"string\", \"maxLength\": 3}", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
        assert_invalid("{\"type\": \"string\", \"maxLength\": 2}", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
                       "is 3 characters, longer than the maximum 2");
        assert_invalid("{\"type\": \"string\", \"minLength\": 1}", "\"\"", "is 0 characters, shorter than the minimum 1");
        assert_invalid("{\"type\": \"array\", \"maxItems\": 1}", "[1, 2]", "has 2 items, more than the maximum 1");
        assert_invalid("{\"type\": \"array\", \"minItems\": 1}", "[]", "has 0 items, fewer than the minimum 1");
}
END_TEST

START_TEST(test_enum_and_nul)
{
        assert_valid("{\"enum\": [\"python\", \"bash\"]}", "\"bash\"");
        assert_invalid("{\"enum\": [\"python\", \"bash\"]}", "\"ruby\"", "'ruby' is not one of 'python', 'bash'");
        assert_invalid("{\"enum\": [1, 2]}", "\"1\"", "'1' is not one of 1, 2");
        /* Beyond JSON Schema: C strings all the way down. */
        assert_invalid("{\"type\": \"string\"}", "\"a\\u0000b\"", "must not contain U+0000");
        assert_invalid("{\"properties\": {\"k\": {}}}", "{\"k\": \"\\u0000\"}", "arguments.k: must not contain U+0000");
}
END_TEST

START_TEST(test_objects_and_paths)
{
        const char *s = "{\"type\": \"object\", \"properties\": {"
                        "  \"code\": {\"type\": \"string\"},"
                        "  \"opts\": {\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\"}},"
                        "             \"additionalProperties\": false},"
                        "  \"env\": {\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"}},"
                        "  \"list\": {\"type\": \"array\", \"items\": {\"type\": \"integer\", \"minimum\": 0}}},"
                        " \"required\": [\"code\"], \"additionalProperties\": false}";
        assert_valid(s, "{\"code\": \"x\", \"opts\": {\"n\": 1}, \"env\": {\"A\": \"b\"}, \"list\": [0, 1]}");
        assert_invalid(s, "{}", "arguments: missing required property 'code'");
        assert_invalid(s, "{\"code\": \"x\", \"extra\": 1}",
                       "arguments: unknown property 'extra' (expected: code, opts, env, list)");
        assert_invalid(s, "{\"code\": \"x\", \"opts\": {\"m\": 1}}", "arguments.opts: unknown property 'm' (expected: n)");
        assert_invalid(s, "{\"code\": \"x\", \"opts\": {\"n\": \"1\"}}", "arguments.opts.n: expected an integer");
        assert_invalid(s, "{\"code\": \"x\", \"env\": {\"A\": 1}}", "arguments.env.A: expected a string, got an integer");
        assert_invalid(s, "{\"code\": \"x\", \"list\": [0, -1]}", "arguments.list[1]: -1 is less than the minimum 0");
        /* Without additionalProperties, others pass unchecked. */
        assert_valid("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}}}", "{\"b\": 1}");
}
END_TEST

/* smolvm's own tools: every declaration loads, fragments resolved, within the
 * subset; the timeout fragment carries the server's maximum. */
START_TEST(test_smolvm_tool_table_loads)
{
        mcp_limits lim = { .timeout_max_s = 123, .output_max_bytes = 1024 };
        mcp_fragment frags[MCP_N_FRAGMENTS];
        char buf[1024];
        mcp_fragments_make(&lim, frags, buf, sizeof(buf));
        int out[2];
        ck_assert_int_eq(pipe(out), 0);
        mcp_server_config cfg = { .tools = mcp_tools, .n_tools = mcp_n_tools, .fragments = frags,
                                  .n_fragments = MCP_N_FRAGMENTS, .name = "smolvm", .version = "0", .out_fd = out[1] };
        mcp_server *s = NULL;
        char err[512] = "";
        int r = mcp_server_new(&cfg, &s, err, sizeof(err));
        ck_assert_msg(r == 0, "the tool table does not load: %s", err);
        mcp_server_free(s);
        for (size_t i = 0; i < MCP_N_FRAGMENTS; i++) {
                json_t *j = parse(frags[i].json);
                ck_assert_msg(mcp_schema_check(j, err, sizeof(err)) == 0, "fragment %s: %s", frags[i].name, err);
                if (!strcmp(frags[i].name, "timeout"))
                        ck_assert_int_eq(json_integer_value(json_object_get(j, "maximum")), 123);
                json_decref(j);
        }
        close(out[0]);
        close(out[1]);
}
END_TEST

/* The server's flags decide which tools the model is offered: the workspace
 * tools only with a workspace directory, the port tool only with
 * --allow-expose; the others always. */
static bool has_tool(const mcp_tool *t, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(t[i].name, name))
                        return true;
        return false;
}

START_TEST(test_tools_offered_by_flags)
{
        mcp_tool t[64];
        ck_assert_uint_le(mcp_n_tools, 64);
        mcp_limits lim = { .workspace_dir_fd = -1 };
        size_t n = mcp_tools_select(&lim, t);
        ck_assert_uint_eq(n, mcp_n_tools - 3);
        ck_assert(has_tool(t, n, "sandbox_snapshot") && has_tool(t, n, "sandbox_fork") && has_tool(t, n, "run"));
        ck_assert(!has_tool(t, n, "sandbox_persist_workspace") && !has_tool(t, n, "sandbox_hydrate_workspace"));
        ck_assert(!has_tool(t, n, "sandbox_expose_port"));
        lim.workspace_dir_fd = 3;
        lim.expose_ports = true;
        n = mcp_tools_select(&lim, t);
        ck_assert_uint_eq(n, mcp_n_tools);
        ck_assert(has_tool(t, n, "sandbox_persist_workspace") && has_tool(t, n, "sandbox_expose_port"));
}
END_TEST

/* A broken declaration is found at start-up, naming the tool. */
static json_t *no_fn(mcp_call *c, const json_t *a)
{
        return NULL;
}

START_TEST(test_bad_declaration_names_the_tool)
{
        static const mcp_tool bad[] = {
                { .name = "ok", .description = "d", .input_schema = "{\"type\": \"object\"}", .fn = no_fn },
                { .name = "broken", .description = "d",
                  .input_schema = "{\"type\": \"object\", \"properties\": {\"a\": \"@nope\"}}", .fn = no_fn },
        };
        mcp_server_config cfg = { .tools = bad, .n_tools = 2, .name = "t", .version = "0", .out_fd = 1 };
        mcp_server *s = NULL;
        char err[256] = "";
        ck_assert_int_eq(mcp_server_new(&cfg, &s, err, sizeof(err)), -EINVAL);
        ck_assert_str_eq(err, "tool broken: no fragment @nope");
        static const mcp_tool not_object[] = {
                { .name = "t", .description = "d", .input_schema = "{\"type\": \"string\"}", .fn = no_fn },
        };
        cfg.tools = not_object;
        cfg.n_tools = 1;
        ck_assert_int_eq(mcp_server_new(&cfg, &s, err, sizeof(err)), -EINVAL);
        ck_assert_str_eq(err, "tool t: a tool's schema must be of type object");
}
END_TEST

static Suite *schema_suite(void)
{
        Suite *s = suite_create("mcp_schema");
        TCase *tc = tcase_create("schema");
        tcase_add_test(tc, test_check_refuses_what_it_does_not_enforce);
        tcase_add_test(tc, test_types);
        tcase_add_test(tc, test_bounds);
        tcase_add_test(tc, test_enum_and_nul);
        tcase_add_test(tc, test_objects_and_paths);
        tcase_add_test(tc, test_smolvm_tool_table_loads);
        tcase_add_test(tc, test_tools_offered_by_flags);
        tcase_add_test(tc, test_bad_declaration_names_the_tool);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(schema_suite());
}
