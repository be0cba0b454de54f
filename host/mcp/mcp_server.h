/* SPDX-License-Identifier: Apache-2.0 */
/* An MCP server over the stdio transport (revisions 2025-06-18 and 2025-11-25):
 * JSON-RPC 2.0, one message per line, the lifecycle (initialize, initialized,
 * ping), tools/list and tools/call over a table of tools, cancellation. It knows
 * nothing of VMs: smolvm's tools are a table (mcp_tools.h) handed to it, and
 * tests hand it others (tests/unit/test_mcp_server.c).
 *
 * Threads: messages are handled in order by the thread that feeds them; each
 * tools/call runs on a thread of its own, so a long call never holds up ping or
 * notifications/cancelled. Responses are written whole, one line each, under a
 * lock, to out_fd, which nothing else writes to.
 *
 * Errors as the specification says: unparseable line -32700; not a request
 * -32600 (also: a batch, a request before initialize, an id already in use by
 * a call in progress); unknown method -32601; bad params, unknown tool -32602;
 * arguments that fail the tool's inputSchema: -32602 under 2025-06-18, a result
 * with isError under 2025-11-25 (SEP-1303); a tool that fails: a result with
 * isError. Notifications are never answered. A cancelled call sends nothing. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define MCP_VERSION_2025_06_18 "2025-06-18"
#define MCP_VERSION_LATEST "2025-11-25"

/* The longest message read; a longer line is answered -32600 and skipped. */
#define MCP_MAX_MESSAGE_BYTES ((size_t)16 * 1024 * 1024)
/* Default for mcp_server_config.max_calls. */
#define MCP_DEFAULT_MAX_CALLS 32u

/* JSON text written as C tokens: MCP_JSON({"type": "string"}) is the string
 * "{\"type\": \"string\"}" (the preprocessor escapes the quotes). A string
 * inside must be one literal: "a" "b" would stay two JSON strings. */
#define MCP_JSON(...) #__VA_ARGS__

typedef struct mcp_server mcp_server;
typedef struct mcp_call mcp_call;

/* A tool: returns a CallToolResult object (mcp_result_*), never NULL. It runs on
 * its own thread; args were validated against input_schema. */
typedef json_t *(*mcp_tool_fn)(mcp_call *call, const json_t *args);

typedef struct mcp_tool {
        const char *name;          /* [A-Za-z0-9_.-]{1,128} */
        const char *title;         /* for people, or NULL */
        const char *description;   /* for the model */
        /* JSON text of the inputSchema (mcp_schema.h's subset). A property whose
         * schema is a string "@NAME" gets the fragment NAME (mcp_fragment), so a
         * property shared by several tools is declared once. */
        const char *input_schema;
        const char *output_schema; /* JSON text (fragments too), or NULL: no structuredContent */
        const char *annotations;   /* JSON text of ToolAnnotations, or NULL */
        mcp_tool_fn fn;
} mcp_tool;

typedef struct mcp_fragment {
        const char *name; /* without the '@' */
        const char *json; /* a schema */
} mcp_fragment;

typedef struct mcp_server_config {
        const mcp_tool *tools;
        size_t n_tools;
        const mcp_fragment *fragments;
        size_t n_fragments;
        const char *name, *version; /* serverInfo */
        const char *instructions;   /* the initialize result's, or NULL */
        void *userdata;             /* mcp_call_userdata() */
        int out_fd;                 /* where responses go (stdout's protocol fd) */
        unsigned max_calls;         /* tools/call in progress at once; 0: MCP_DEFAULT_MAX_CALLS */
} mcp_server_config;

/* Load the tools (schemas parsed, fragments put in, each checked with
 * mcp_schema_check()). cfg's strings and tables must outlive the server. On
 * failure err says which tool and why (a programmer error). Returns 0, -EINVAL
 * or -ENOMEM. */
int mcp_server_new(const mcp_server_config *cfg, mcp_server **ret, char *err, size_t err_size);
/* Call only when idle (mcp_server_wait_idle()). NULL is fine. */
void mcp_server_free(mcp_server *s);

/* Bytes read from the client: complete lines are handled, a partial one is kept
 * for the next call. */
void mcp_server_feed(mcp_server *s, const char *data, size_t len);
/* One message, without its newline. */
void mcp_server_handle(mcp_server *s, const char *line, size_t len);

/* Cancel every call in progress (their responses are not sent). */
void mcp_server_cancel_all(mcp_server *s);
/* Wait until no call is in progress. */
void mcp_server_wait_idle(mcp_server *s);
/* Readable once the client stopped reading (a write to out_fd failed): the
 * caller's loop polls it and shuts down. */
int mcp_server_closed_fd(const mcp_server *s);
/* The protocol version agreed in initialize, or NULL before it. */
const char *mcp_server_version(const mcp_server *s);

/* ---- for tools ---- */

void *mcp_call_userdata(const mcp_call *c);
/* Readable once the call is cancelled (notifications/cancelled, shutdown): pass
 * it as libsmolvm's cancel_fd. */
int mcp_call_cancel_fd(const mcp_call *c);
bool mcp_call_cancelled(mcp_call *c);

/* Results. Each returns a new CallToolResult object (NULL only without memory;
 * the server then answers -32603). */
/* content: one text block; isError as given. */
json_t *mcp_result_text(const char *text, bool is_error);
/* A tool execution error: isError true, the message as text. */
json_t *mcp_result_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* structuredContent (stolen) and, as the specification asks for compatibility,
 * the same JSON as a text block. */
json_t *mcp_result_structured(json_t *structured, bool is_error);
