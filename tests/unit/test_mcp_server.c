/* SPDX-License-Identifier: Apache-2.0 */
/* The MCP server's JSON-RPC framing and dispatch (host/mcp/mcp_server.c) with
 * tools of the test's own: the error codes of JSON-RPC 2.0 and MCP, the
 * lifecycle and version negotiation, tools/list as declared, tools/call on
 * threads (ping answered meanwhile), cancellation (no response, the tool sees
 * its cancel fd), the cap on calls, a client that stops reading. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "mcp_server.h"

static mcp_server *srv;
static int out_r = -1, out_w = -1;
static int started[2] = { -1, -1 }; /* "block" says it runs */
static atomic_int block_saw_cancel;

static int saw_cancel(void)
{
        return atomic_load(&block_saw_cancel);
}

static json_t *tool_echo(mcp_call *c, const json_t *args)
{
        return mcp_result_structured(json_pack("{s:O}", "text", json_object_get(args, "text")), false);
}

static json_t *tool_fail(mcp_call *c, const json_t *args)
{
        return mcp_result_errorf("it broke: %d", 42);
}

static json_t *tool_block(mcp_call *c, const json_t *args)
{
        (void)!write(started[1], "x", 1);
        struct pollfd p = { .fd = mcp_call_cancel_fd(c), .events = POLLIN };
        int r = poll(&p, 1, 20000);
        if (r == 1 && mcp_call_cancelled(c))
                atomic_store(&block_saw_cancel, 1);
        return mcp_result_text("unblocked", false);
}

static const mcp_fragment frags[] = {
        { "text", MCP_JSON({ "type": "string", "minLength": 1 }) },
};

static const mcp_tool tools[] = {
        { .name = "echo", .description = "echoes",
          .input_schema = MCP_JSON({ "type": "object", "properties": { "text": "@text" }, "required": [ "text" ],
                                     "additionalProperties": false }),
          .output_schema = MCP_JSON({ "type": "object", "properties": { "text": { "type": "string" } } }),
          .fn = tool_echo },
        { .name = "fail", .description = "fails", .input_schema = MCP_JSON({ "type": "object" }), .fn = tool_fail },
        { .name = "block", .title = "Blocks", .description = "waits for its cancellation",
          .input_schema = MCP_JSON({ "type": "object" }), .annotations = MCP_JSON({ "readOnlyHint": true }),
          .fn = tool_block },
};

static void start(unsigned max_calls)
{
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        out_r = p[0];
        out_w = p[1];
        ck_assert_int_eq(pipe(started), 0);
        signal(SIGPIPE, SIG_IGN);
        mcp_server_config cfg = { .tools = tools, .n_tools = 3, .fragments = frags, .n_fragments = 1,
                                  .name = "test", .version = "9.9", .instructions = "be nice", .out_fd = out_w,
                                  .max_calls = max_calls };
        char err[256];
        int r = mcp_server_new(&cfg, &srv, err, sizeof(err));
        ck_assert_msg(r == 0, "%s", err);
}

static void stop(void)
{
        mcp_server_cancel_all(srv);
        mcp_server_wait_idle(srv);
        mcp_server_free(srv);
        close(out_r);
        close(out_w);
        close(started[0]);
        close(started[1]);
}

static void send_line(const char *line)
{
        mcp_server_handle(srv, line, strlen(line));
}

/* The next response line (parsed), or NULL when none comes within ms. */
static json_t *next_msg(int ms)
{
        static char buf[1 << 20];
        static size_t len;
        for (;;) {
                char *nl = memchr(buf, '\n', len);
                if (nl) {
                        json_error_t e;
                        json_t *j = json_loadb(buf, (size_t)(nl - buf), 0, &e);
                        ck_assert_msg(j, "a response line is not JSON: %s", e.text);
                        ck_assert_str_eq(json_string_value(json_object_get(j, "jsonrpc")), "2.0");
                        len -= (size_t)(nl - buf) + 1;
                        memmove(buf, nl + 1, len);
                        return j;
                }
                struct pollfd p = { .fd = out_r, .events = POLLIN };
                if (poll(&p, 1, ms) != 1)
                        return NULL;
                ssize_t n = read(out_r, buf + len, sizeof(buf) - len);
                ck_assert_int_gt(n, 0);
                len += (size_t)n;
        }
}

/* Send line; the response must be error code with this id (-1: null). */
static void expect_error(const char *line, int code, json_int_t id, const char *msg_part)
{
        send_line(line);
        json_t *m = next_msg(5000);
        ck_assert_msg(m, "no response to %s", line);
        json_t *e = json_object_get(m, "error");
        ck_assert_msg(e && !json_object_get(m, "result"), "not an error: %s", line);
        ck_assert_int_eq(json_integer_value(json_object_get(e, "code")), code);
        if (id < 0)
                ck_assert(json_is_null(json_object_get(m, "id")));
        else
                ck_assert_int_eq(json_integer_value(json_object_get(m, "id")), id);
        if (msg_part)
                ck_assert_msg(strstr(json_string_value(json_object_get(e, "message")), msg_part), "%s: message '%s'",
                              line, json_string_value(json_object_get(e, "message")));
        json_decref(m);
}

/* Send line; return the result of the response with this id. */
static json_t *expect_result(const char *line, json_int_t id)
{
        send_line(line);
        json_t *m = next_msg(10000);
        ck_assert_msg(m, "no response to %s", line);
        ck_assert_msg(json_object_get(m, "result"), "not a result: %s -> %s", line,
                      json_string_value(json_object_get(json_object_get(m, "error"), "message")));
        ck_assert_int_eq(json_integer_value(json_object_get(m, "id")), id);
        json_t *r = json_incref(json_object_get(m, "result"));
        json_decref(m);
        return r;
}

static void ping(json_int_t id)
{
        char line[128];
        snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"ping\"}", (long long)id);
        json_t *r = expect_result(line, id);
        ck_assert_int_eq(json_object_size(r), 0);
        json_decref(r);
}

static void initialize(const char *version)
{
        char line[512];
        snprintf(line, sizeof(line),
                 "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"%s\","
                 "\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
                 version);
        json_decref(expect_result(line, 0));
        send_line("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
}

START_TEST(test_framing)
{
        start(0);
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,", -32700, -1, "Parse error");
        expect_error("\"a string\"", -32600, -1, "expected a JSON object");
        expect_error("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", -32600, -1, "batches");
        /* Blank lines are no messages; CR LF ends a line too. */
        send_line("");
        send_line("  \t \r");
        ping(1);
        send_line("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\r");
        json_t *m = next_msg(5000);
        ck_assert_int_eq(json_integer_value(json_object_get(m, "id")), 2);
        json_decref(m);

        /* Feeding: two messages in one read, one message across reads. */
        const char *two = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\n{\"jsonrpc\":\"2.0\",\"id\":4,";
        mcp_server_feed(srv, two, strlen(two));
        m = next_msg(5000);
        ck_assert_int_eq(json_integer_value(json_object_get(m, "id")), 3);
        json_decref(m);
        ck_assert_ptr_null(next_msg(100));
        mcp_server_feed(srv, "\"method\":\"ping\"}", 16);
        ck_assert_ptr_null(next_msg(100));
        mcp_server_feed(srv, "\n", 1);
        m = next_msg(5000);
        ck_assert_int_eq(json_integer_value(json_object_get(m, "id")), 4);
        json_decref(m);

        /* Longer than the limit: one -32600, the rest of the line dropped (also
         * what arrives in later reads), then business as usual. */
        size_t n = MCP_MAX_MESSAGE_BYTES / 2;
        char *junk = malloc(n);
        ck_assert_ptr_nonnull(junk);
        memset(junk, 'x', n);
        for (int i = 0; i < 3; i++)
                mcp_server_feed(srv, junk, n);
        free(junk);
        m = next_msg(5000);
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(m, "error"), "code")), -32600);
        json_decref(m);
        mcp_server_feed(srv, "xxx}\n", 5);
        ck_assert_ptr_null(next_msg(100));
        const char *p5 = "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}\n";
        mcp_server_feed(srv, p5, strlen(p5));
        m = next_msg(5000);
        ck_assert_int_eq(json_integer_value(json_object_get(m, "id")), 5);
        json_decref(m);
        stop();
}
END_TEST

START_TEST(test_lifecycle)
{
        start(0);
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", -32600, 1, "not initialized");
        ping(2);
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":{\"protocolVersion\":1,"
                     "\"capabilities\":{},\"clientInfo\":{}}}",
                     -32602, 3, "protocolVersion");
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"initialize\"}", -32602, 4, NULL);
        ck_assert_ptr_null(mcp_server_version(srv));
        json_t *r = expect_result("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"initialize\",\"params\":{"
                                  "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{}}}",
                                  5);
        ck_assert_str_eq(json_string_value(json_object_get(r, "protocolVersion")), "2025-06-18");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "serverInfo"), "name")), "test");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "serverInfo"), "version")), "9.9");
        ck_assert_str_eq(json_string_value(json_object_get(r, "instructions")), "be nice");
        ck_assert(json_is_object(json_object_get(json_object_get(r, "capabilities"), "tools")));
        json_decref(r);
        ck_assert_str_eq(mcp_server_version(srv), "2025-06-18");
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"initialize\",\"params\":{"
                     "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{}}}",
                     -32600, 6, "already initialized");
        stop();

        /* A version we do not speak: our latest; the client decides. */
        start(0);
        r = expect_result("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                          "\"protocolVersion\":\"2099-01-01\",\"capabilities\":{},\"clientInfo\":{}}}",
                          1);
        ck_assert_str_eq(json_string_value(json_object_get(r, "protocolVersion")), MCP_VERSION_LATEST);
        json_decref(r);
        stop();
}
END_TEST

START_TEST(test_requests_and_notifications)
{
        start(0);
        initialize(MCP_VERSION_LATEST);
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"nope\"}", -32601, 1, "Method not found: nope");
        expect_error("{\"jsonrpc\":\"1.0\",\"id\":2,\"method\":\"ping\"}", -32600, 2, "jsonrpc");
        expect_error("{\"id\":3,\"method\":\"ping\"}", -32600, 3, "jsonrpc");
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", -32600, -1, "id");
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}", -32600, -1, "id");
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":4}", -32600, 4, "method");
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":[]}", -32600, 5, "method");
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\",\"params\":\"x\"}", -32602, 6, "params");
        /* Notifications, known or not, and responses get no answer. */
        send_line("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\",\"params\":{}}");
        send_line("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":12345}}");
        send_line("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":7}");
        send_line("{\"jsonrpc\":\"2.0\",\"id\":77,\"result\":{}}");
        send_line("{\"jsonrpc\":\"2.0\",\"id\":78,\"error\":{\"code\":1,\"message\":\"m\"}}");
        ping(7);
        /* A string id comes back as it was. */
        send_line("{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"ping\"}");
        json_t *m = next_msg(5000);
        ck_assert_str_eq(json_string_value(json_object_get(m, "id")), "abc");
        json_decref(m);
        stop();
}
END_TEST

START_TEST(test_tools_list)
{
        start(0);
        initialize(MCP_VERSION_LATEST);
        json_t *r = expect_result("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{}}", 1);
        json_t *list = json_object_get(r, "tools");
        ck_assert_int_eq(json_array_size(list), 3);
        json_t *echo = json_array_get(list, 0);
        ck_assert_str_eq(json_string_value(json_object_get(echo, "name")), "echo");
        ck_assert_str_eq(json_string_value(json_object_get(echo, "description")), "echoes");
        /* The fragment is in place, as declared. */
        json_t *want = json_loads("{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\",\"minLength\":1}},"
                                  "\"required\":[\"text\"],\"additionalProperties\":false}",
                                  0, NULL);
        ck_assert(json_equal(json_object_get(echo, "inputSchema"), want));
        json_decref(want);
        ck_assert(json_is_object(json_object_get(echo, "outputSchema")));
        json_t *block = json_array_get(list, 2);
        ck_assert_str_eq(json_string_value(json_object_get(block, "title")), "Blocks");
        ck_assert(json_is_true(json_object_get(json_object_get(block, "annotations"), "readOnlyHint")));
        ck_assert_ptr_null(json_object_get(block, "outputSchema"));
        json_decref(r);
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{\"cursor\":\"c\"}}", -32602, 2,
                     "cursor");
        stop();
}
END_TEST

START_TEST(test_tools_call)
{
        start(0);
        initialize(MCP_VERSION_LATEST);
        json_t *r = expect_result("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
                                  "\"arguments\":{\"text\":\"hi \\u00e9\"}}}",
                                  1);
        ck_assert(json_is_false(json_object_get(r, "isError")));
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "structuredContent"), "text")),
                         "hi \xc3\xa9");
        json_t *block = json_array_get(json_object_get(r, "content"), 0);
        ck_assert_str_eq(json_string_value(json_object_get(block, "type")), "text");
        json_t *again = json_loads(json_string_value(json_object_get(block, "text")), 0, NULL);
        ck_assert(json_equal(again, json_object_get(r, "structuredContent")));
        json_decref(again);
        json_decref(r);

        r = expect_result("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"fail\"}}", 2);
        ck_assert(json_is_true(json_object_get(r, "isError")));
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r, "content"), 0), "text")),
                         "it broke: 42");
        json_decref(r);

        expect_error("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}}", -32602, 3,
                     "Unknown tool: nope");
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"arguments\":{}}}", -32602, 4,
                     "name");
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
                     "\"arguments\":\"text\"}}",
                     -32602, 5, "'arguments' must be an object");
        /* 2025-11-25: arguments that fail the schema are a tool execution error. */
        r = expect_result("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
                          "\"arguments\":{\"text\":\"\"}}}",
                          6);
        ck_assert(json_is_true(json_object_get(r, "isError")));
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r, "content"), 0), "text")),
                         "invalid arguments for echo: arguments.text: is 0 characters, shorter than the minimum 1");
        json_decref(r);
        stop();

        /* 2025-06-18: the same is a protocol error, -32602. */
        start(0);
        initialize(MCP_VERSION_2025_06_18);
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}", -32602, 7,
                     "Invalid params: arguments: missing required property 'text'");
        stop();
}
END_TEST

static void wait_started(void)
{
        char c;
        struct pollfd p = { .fd = started[0], .events = POLLIN };
        ck_assert_int_eq(poll(&p, 1, 10000), 1);
        ck_assert_int_eq(read(started[0], &c, 1), 1);
}

START_TEST(test_cancel)
{
        start(0);
        initialize(MCP_VERSION_LATEST);
        atomic_store(&block_saw_cancel, 0);
        send_line("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"block\"}}");
        wait_started();
        /* A call in progress holds up nothing, and its id is taken. */
        ping(8);
        json_t *r = expect_result("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
                                  "\"arguments\":{\"text\":\"x\"}}}",
                                  9);
        json_decref(r);
        expect_error("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
                     "\"arguments\":{\"text\":\"x\"}}}",
                     -32600, 7, "already used");
        /* Cancelled: the tool sees its fd, and no response is sent for it. */
        send_line("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":7,"
                  "\"reason\":\"test\"}}");
        mcp_server_wait_idle(srv);
        ck_assert_int_eq(saw_cancel(), 1);
        ping(10); /* the very next message */

        /* A string id, and cancel_all (the server's shutdown). */
        atomic_store(&block_saw_cancel, 0);
        send_line("{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"tools/call\",\"params\":{\"name\":\"block\"}}");
        wait_started();
        send_line("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":\"t\"}}");
        ping(11);
        ck_assert_int_eq(saw_cancel(), 0);
        mcp_server_cancel_all(srv);
        mcp_server_wait_idle(srv);
        ck_assert_int_eq(saw_cancel(), 1);
        ping(12);
        stop();
}
END_TEST

START_TEST(test_max_calls)
{
        start(1);
        initialize(MCP_VERSION_LATEST);
        send_line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"block\"}}");
        wait_started();
        json_t *r = expect_result("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
                                  "\"arguments\":{\"text\":\"x\"}}}",
                                  2);
        ck_assert(json_is_true(json_object_get(r, "isError")));
        ck_assert(strstr(json_string_value(json_object_get(json_array_get(json_object_get(r, "content"), 0), "text")),
                         "1 tool calls are already in progress"));
        json_decref(r);
        stop();
}
END_TEST

START_TEST(test_client_stops_reading)
{
        start(0);
        int cfd = mcp_server_closed_fd(srv);
        struct pollfd p = { .fd = cfd, .events = POLLIN };
        ck_assert_int_eq(poll(&p, 1, 0), 0);
        close(out_r);
        out_r = -1;
        send_line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
        ck_assert_int_eq(poll(&p, 1, 1000), 1);
        /* Later responses are dropped quietly. */
        send_line("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
        stop();
}
END_TEST

static Suite *server_suite(void)
{
        Suite *s = suite_create("mcp_server");
        TCase *tc = tcase_create("server");
        tcase_add_test(tc, test_framing);
        tcase_add_test(tc, test_lifecycle);
        tcase_add_test(tc, test_requests_and_notifications);
        tcase_add_test(tc, test_tools_list);
        tcase_add_test(tc, test_tools_call);
        tcase_add_test(tc, test_cancel);
        tcase_add_test(tc, test_max_calls);
        tcase_add_test(tc, test_client_stops_reading);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(server_suite());
}
