/* SPDX-License-Identifier: Apache-2.0 */
/* The MCP server (mcp_server.h): framing, the JSON-RPC rules, the lifecycle,
 * the method table, tools/call on threads and their cancellation. */
#include "mcp_server.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mcp_schema.h"
#include "util.h"

/* JSON-RPC 2.0 error codes. */
enum {
        RPC_PARSE_ERROR = -32700,
        RPC_INVALID_REQUEST = -32600,
        RPC_METHOD_NOT_FOUND = -32601,
        RPC_INVALID_PARAMS = -32602,
        RPC_INTERNAL_ERROR = -32603,
};

static const char *const supported_versions[] = { MCP_VERSION_LATEST, MCP_VERSION_2025_06_18 };

typedef struct loaded_tool {
        const mcp_tool *tool;
        json_t *input;  /* the inputSchema: listed and validated against */
        json_t *output; /* or NULL */
} loaded_tool;

struct mcp_call {
        mcp_server *s;
        const loaded_tool *tool;
        json_t *id;   /* copies: nothing of them is shared with the reading thread */
        json_t *args;
        int cancel_fd;  /* eventfd */
        bool cancelled; /* protected by s->lock */
        mcp_call *next; /* protected by s->lock */
};

struct mcp_server {
        mcp_server_config cfg;
        loaded_tool *tools;
        json_t *tools_list; /* the tools/list result's "tools" */
        char version[16];   /* agreed in initialize; "" before */
        bool initialized;   /* initialize answered: only the reading thread uses these two */

        pthread_mutex_t lock;
        pthread_cond_t idle;
        mcp_call *calls;   /* in progress; protected by lock */
        unsigned n_calls;  /* protected by lock */

        pthread_mutex_t out_lock; /* one response at a time on out_fd */
        bool closed;              /* protected by out_lock */
        int closed_fd;            /* eventfd, written once a write fails */

        char *line;               /* a line being received: reading thread only */
        size_t line_len, line_cap;
        bool skipping;            /* the rest of a too-long line is dropped */
};

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("smolvm mcp: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

/* ---- output ---- */

static void send_msg(mcp_server *s, json_t *msg)
{
        char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
        json_decref(msg);
        if (!text) {
                logf_("out of memory: a response was lost");
                return;
        }
        size_t len = strlen(text);
        char *line = realloc(text, len + 2);
        if (!line) {
                free(text);
                logf_("out of memory: a response was lost");
                return;
        }
        line[len] = '\n';
        pthread_mutex_lock(&s->out_lock);
        if (!s->closed && write_all(s->cfg.out_fd, line, len + 1) < 0) {
                s->closed = true;
                uint64_t one = 1;
                (void)!write(s->closed_fd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&s->out_lock);
        free(line);
}

static json_t *response(const json_t *id, const char *member, json_t *value)
{
        json_t *m = json_object();
        if (!m || !value) {
                json_decref(m);
                json_decref(value);
                return NULL;
        }
        json_object_set_new(m, "jsonrpc", json_string("2.0"));
        json_object_set_new(m, "id", id ? json_deep_copy(id) : json_null());
        json_object_set_new(m, member, value);
        return m;
}

static void send_result(mcp_server *s, const json_t *id, json_t *result)
{
        if (!result) {
                send_msg(s, response(id, "error",
                                     json_pack("{s:i, s:s}", "code", RPC_INTERNAL_ERROR, "message",
                                               "Internal error: out of memory")));
                return;
        }
        send_msg(s, response(id, "result", result));
}

/* id NULL: null (the request's id could not be read). */
static void send_error(mcp_server *s, const json_t *id, int code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void send_error(mcp_server *s, const json_t *id, int code, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        json_t *e = json_pack("{s:i, s:s%}", "code", code, "message", msg, strlen(msg));
        send_msg(s, response(id, "error", e));
}

/* ---- results ---- */

json_t *mcp_result_text(const char *text, bool is_error)
{
        json_t *t = json_string(text);
        if (!t) /* not UTF-8: the caller's bug, but the client still gets an answer */
                t = json_string("(unprintable message)");
        return json_pack("{s:[{s:s, s:o}], s:b}", "content", "type", "text", "text", t, "isError", is_error);
}

json_t *mcp_result_errorf(const char *fmt, ...)
{
        char msg[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return mcp_result_text(msg, true);
}

json_t *mcp_result_structured(json_t *structured, bool is_error)
{
        char *text = structured ? json_dumps(structured, JSON_COMPACT) : NULL;
        json_t *r = text ? mcp_result_text(text, is_error) : NULL;
        free(text);
        if (r && json_object_set(r, "structuredContent", structured) < 0) {
                json_decref(r);
                r = NULL;
        }
        json_decref(structured);
        return r;
}

/* ---- calls ---- */

void *mcp_call_userdata(const mcp_call *c)
{
        return c->s->cfg.userdata;
}

int mcp_call_cancel_fd(const mcp_call *c)
{
        return c->cancel_fd;
}

bool mcp_call_cancelled(mcp_call *c)
{
        pthread_mutex_lock(&c->s->lock);
        bool r = c->cancelled;
        pthread_mutex_unlock(&c->s->lock);
        return r;
}

static void call_free(mcp_call *c)
{
        json_decref(c->id);
        json_decref(c->args);
        safe_close(c->cancel_fd);
        free(c);
}

/* Caller holds s->lock. */
static void call_cancel_locked(mcp_call *c)
{
        if (c->cancelled)
                return;
        c->cancelled = true;
        uint64_t one = 1;
        (void)!write(c->cancel_fd, &one, sizeof(one));
}

/* Take c out of the calls in progress (wait_idle may return once none are
 * left); the caller frees it. */
static void call_remove(mcp_server *s, mcp_call *c)
{
        pthread_mutex_lock(&s->lock);
        for (mcp_call **p = &s->calls; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        s->n_calls--;
        pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->lock);
}

static void *call_thread(void *arg)
{
        mcp_call *c = arg;
        mcp_server *s = c->s;
        json_t *result = c->tool->tool->fn(c, c->args);
        if (mcp_call_cancelled(c))
                json_decref(result); /* the client gave up on it: no response (cancellation) */
        else
                send_result(s, c->id, result);

        call_remove(s, c);
        /* s may be gone from here on. */
        call_free(c);
        return NULL;
}

void mcp_server_cancel_all(mcp_server *s)
{
        pthread_mutex_lock(&s->lock);
        for (mcp_call *c = s->calls; c; c = c->next)
                call_cancel_locked(c);
        pthread_mutex_unlock(&s->lock);
}

void mcp_server_wait_idle(mcp_server *s)
{
        pthread_mutex_lock(&s->lock);
        while (s->n_calls > 0)
                pthread_cond_wait(&s->idle, &s->lock);
        pthread_mutex_unlock(&s->lock);
}

/* ---- methods ---- */

static bool version_supported(const char *v)
{
        for (size_t i = 0; i < ARRAY_SIZE(supported_versions); i++)
                if (!strcmp(v, supported_versions[i]))
                        return true;
        return false;
}

static void m_initialize(mcp_server *s, const json_t *id, const json_t *params)
{
        const json_t *pv = json_object_get(params, "protocolVersion");
        const json_t *caps = json_object_get(params, "capabilities");
        const json_t *info = json_object_get(params, "clientInfo");
        if (!json_is_string(pv) || !json_is_object(caps) || !json_is_object(info)) {
                send_error(s, id, RPC_INVALID_PARAMS,
                           "Invalid params: initialize needs protocolVersion (a string), capabilities and "
                           "clientInfo (objects)");
                return;
        }
        if (s->initialized) {
                send_error(s, id, RPC_INVALID_REQUEST, "Invalid Request: the session is already initialized");
                return;
        }
        /* The client's version if we speak it, else our latest (the client
         * decides whether to carry on). */
        const char *want = json_string_value(pv);
        snprintf(s->version, sizeof(s->version), "%s", version_supported(want) ? want : MCP_VERSION_LATEST);
        json_t *r = json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s}}", "protocolVersion", s->version, "capabilities",
                              "tools", "listChanged", 0, "serverInfo", "name", s->cfg.name, "version",
                              s->cfg.version);
        if (r && s->cfg.instructions)
                json_object_set_new(r, "instructions", json_string(s->cfg.instructions));
        const json_t *cname = json_object_get(info, "name"), *cver = json_object_get(info, "version");
        logf_("client %.64s %.32s asked for protocol %.32s; speaking %s",
              json_is_string(cname) ? json_string_value(cname) : "?",
              json_is_string(cver) ? json_string_value(cver) : "?", want, s->version);
        s->initialized = true;
        send_result(s, id, r);
}

static void m_ping(mcp_server *s, const json_t *id, const json_t *params)
{
        send_result(s, id, json_object());
}

static void m_tools_list(mcp_server *s, const json_t *id, const json_t *params)
{
        /* Every tool fits one page: a cursor can only be one we never gave. */
        if (json_object_get(params, "cursor")) {
                send_error(s, id, RPC_INVALID_PARAMS, "Invalid params: unknown cursor (tools/list has one page)");
                return;
        }
        send_result(s, id, json_pack("{s:O}", "tools", s->tools_list));
}

static const loaded_tool *find_tool(const mcp_server *s, const char *name)
{
        for (size_t i = 0; i < s->cfg.n_tools; i++)
                if (!strcmp(s->tools[i].tool->name, name))
                        return &s->tools[i];
        return NULL;
}

static void m_tools_call(mcp_server *s, const json_t *id, const json_t *params)
{
        const json_t *name = json_object_get(params, "name");
        if (!json_is_string(name)) {
                send_error(s, id, RPC_INVALID_PARAMS, "Invalid params: tools/call needs the tool's name (a string)");
                return;
        }
        const loaded_tool *t = find_tool(s, json_string_value(name));
        if (!t) {
                send_error(s, id, RPC_INVALID_PARAMS, "Unknown tool: %.128s", json_string_value(name));
                return;
        }
        const json_t *args = json_object_get(params, "arguments");
        if (args && !json_is_object(args)) {
                send_error(s, id, RPC_INVALID_PARAMS, "Invalid params: 'arguments' must be an object");
                return;
        }
        json_t *copy = args ? json_deep_copy(args) : json_object();
        char err[512];
        if (copy && mcp_schema_validate(t->input, copy, "arguments", err, sizeof(err)) < 0) {
                json_decref(copy);
                /* 2025-06-18 lists invalid arguments among protocol errors; 2025-11-25
                 * makes them tool execution errors, so the model can correct them. */
                if (!strcmp(s->version, MCP_VERSION_2025_06_18))
                        send_error(s, id, RPC_INVALID_PARAMS, "Invalid params: %s", err);
                else
                        send_result(s, id, mcp_result_errorf("invalid arguments for %s: %s", t->tool->name, err));
                return;
        }

        mcp_call *c = calloc(1, sizeof(*c));
        int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        json_t *idc = json_deep_copy(id);
        if (!c || efd < 0 || !copy || !idc) {
                int e = efd < 0 ? errno : ENOMEM;
                free(c);
                safe_close(efd);
                json_decref(copy);
                json_decref(idc);
                send_error(s, id, RPC_INTERNAL_ERROR, "Internal error: %s", strerror(e));
                return;
        }
        *c = (mcp_call){ .s = s, .tool = t, .id = idc, .args = copy, .cancel_fd = efd };

        pthread_mutex_lock(&s->lock);
        bool dup = false;
        for (mcp_call *o = s->calls; o && !dup; o = o->next)
                dup = json_equal(o->id, id);
        unsigned max = s->cfg.max_calls ? s->cfg.max_calls : MCP_DEFAULT_MAX_CALLS;
        bool full = s->n_calls >= max;
        if (!dup && !full) {
                c->next = s->calls;
                s->calls = c;
                s->n_calls++;
        }
        pthread_mutex_unlock(&s->lock);
        if (dup || full) {
                call_free(c);
                if (dup)
                        send_error(s, id, RPC_INVALID_REQUEST,
                                   "Invalid Request: this id is already used by a call in progress");
                else
                        send_result(s, id,
                                    mcp_result_errorf("%u tool calls are already in progress (the server's "
                                                      "limit): wait for one to finish",
                                                      max));
                return;
        }

        int r = thread_start_detached(call_thread, c);
        if (r < 0) {
                call_remove(s, c);
                call_free(c);
                send_error(s, id, RPC_INTERNAL_ERROR, "Internal error: cannot start a thread: %s", strerror(-r));
        }
}

typedef struct method {
        const char *name;
        void (*fn)(mcp_server *s, const json_t *id, const json_t *params);
        bool before_init; /* allowed before initialize */
} method;

static const method requests[] = {
        { "initialize", m_initialize, true },
        { "ping", m_ping, true },
        { "tools/list", m_tools_list, false },
        { "tools/call", m_tools_call, false },
};

static void n_cancelled(mcp_server *s, const json_t *params)
{
        /* Unknown, finished or malformed: ignored, as the specification says. */
        const json_t *rid = json_object_get(params, "requestId");
        if (!json_is_string(rid) && !json_is_integer(rid))
                return;
        pthread_mutex_lock(&s->lock);
        for (mcp_call *c = s->calls; c; c = c->next)
                if (json_equal(c->id, rid)) {
                        const json_t *why = json_object_get(params, "reason");
                        logf_("cancelling a call of %s%s%.200s", c->tool->tool->name, json_is_string(why) ? ": " : "",
                              json_is_string(why) ? json_string_value(why) : "");
                        call_cancel_locked(c);
                }
        pthread_mutex_unlock(&s->lock);
}

static const struct {
        const char *name;
        void (*fn)(mcp_server *s, const json_t *params);
} notifications[] = {
        { "notifications/cancelled", n_cancelled },
};

/* ---- messages ---- */

static bool valid_id(const json_t *id)
{
        /* MCP: a string or an integer, never null. */
        return json_is_string(id) || json_is_integer(id);
}

void mcp_server_handle(mcp_server *s, const char *line, size_t len)
{
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
                len--;
        size_t start = 0;
        while (start < len && (line[start] == ' ' || line[start] == '\t'))
                start++;
        if (start == len)
                return; /* a blank line is no message */

        json_error_t jerr;
        /* \u0000 is valid JSON; strings that hold it are refused by the validator.
         * Any JSON value parses: a valid one that is not an object is -32600. */
        json_t *msg = json_loadb(line + start, len - start, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
        if (!msg) {
                send_error(s, NULL, RPC_PARSE_ERROR, "Parse error: %s (at byte %d)", jerr.text, jerr.position);
                return;
        }
        const json_t *id = json_object_get(msg, "id");
        const json_t *jsonrpc = json_object_get(msg, "jsonrpc");
        const json_t *m = json_object_get(msg, "method");
        const json_t *params = json_object_get(msg, "params");
        const json_t *reply_id = valid_id(id) ? id : NULL;
        if (!json_is_object(msg)) {
                send_error(s, NULL, RPC_INVALID_REQUEST, "Invalid Request: expected a JSON object%s",
                           json_is_array(msg) ? " (batches are not part of MCP since 2025-06-18)" : "");
        } else if (!json_is_string(jsonrpc) || strcmp(json_string_value(jsonrpc), "2.0") != 0) {
                send_error(s, reply_id, RPC_INVALID_REQUEST, "Invalid Request: \"jsonrpc\" must be \"2.0\"");
        } else if (!m && (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
                /* A response: we send no requests, so it answers nothing of ours. */
                logf_("ignored a response from the client (this server sends no requests)");
        } else if (!json_is_string(m)) {
                send_error(s, reply_id, RPC_INVALID_REQUEST, "Invalid Request: \"method\" must be a string");
        } else if (id && !valid_id(id)) {
                send_error(s, NULL, RPC_INVALID_REQUEST, "Invalid Request: \"id\" must be a string or an integer");
        } else if (!id) {
                for (size_t i = 0; i < ARRAY_SIZE(notifications); i++)
                        if (!strcmp(json_string_value(m), notifications[i].name) && json_is_object(params))
                                notifications[i].fn(s, params);
        } else if (params && !json_is_object(params)) {
                send_error(s, id, RPC_INVALID_PARAMS, "Invalid params: \"params\" must be an object");
        } else {
                const method *found = NULL;
                for (size_t i = 0; i < ARRAY_SIZE(requests) && !found; i++)
                        if (!strcmp(json_string_value(m), requests[i].name))
                                found = &requests[i];
                if (!found)
                        send_error(s, id, RPC_METHOD_NOT_FOUND, "Method not found: %.128s", json_string_value(m));
                else if (!found->before_init && !s->initialized)
                        send_error(s, id, RPC_INVALID_REQUEST,
                                   "Invalid Request: the session is not initialized (send initialize first)");
                else
                        found->fn(s, id, params);
        }
        json_decref(msg);
}

void mcp_server_feed(mcp_server *s, const char *data, size_t len)
{
        while (len > 0) {
                const char *nl = memchr(data, '\n', len);
                size_t n = nl ? (size_t)(nl - data) : len;
                if (s->skipping) {
                        s->skipping = !nl;
                } else if (s->line_len + n > MCP_MAX_MESSAGE_BYTES) {
                        send_error(s, NULL, RPC_INVALID_REQUEST, "Invalid Request: a message is longer than %zu bytes",
                                   MCP_MAX_MESSAGE_BYTES);
                        s->line_len = 0;
                        s->skipping = !nl;
                } else if (nl && s->line_len == 0) {
                        mcp_server_handle(s, data, n); /* the common case: a whole line, no copy */
                } else {
                        if (s->line_len + n > s->line_cap) {
                                size_t cap = MAX(s->line_cap * 2, s->line_len + n);
                                cap = MIN(MAX(cap, (size_t)4096), MCP_MAX_MESSAGE_BYTES);
                                char *b = realloc(s->line, cap);
                                if (!b) {
                                        send_error(s, NULL, RPC_INTERNAL_ERROR, "Internal error: out of memory");
                                        s->line_len = 0;
                                        s->skipping = !nl;
                                        goto next;
                                }
                                s->line = b;
                                s->line_cap = cap;
                        }
                        memcpy(s->line + s->line_len, data, n);
                        s->line_len += n;
                        if (nl) {
                                mcp_server_handle(s, s->line, s->line_len);
                                s->line_len = 0;
                        }
                }
        next:
                if (!nl)
                        break;
                data += n + 1;
                len -= n + 1;
        }
}

/* ---- set-up ---- */

static const json_t *fragment(json_t *const *frags, const mcp_server_config *cfg, const char *name)
{
        for (size_t i = 0; i < cfg->n_fragments; i++)
                if (!strcmp(cfg->fragments[i].name, name))
                        return frags[i];
        return NULL;
}

/* Put fragments in for "@NAME" strings where a schema goes: the schema itself,
 * a property, items, additionalProperties. Returns 0 or -EINVAL (unknown name). */
static int resolve(json_t **pj, json_t *const *frags, const mcp_server_config *cfg, char *err, size_t size)
{
        json_t *j = *pj;
        if (json_is_string(j) && json_string_value(j)[0] == '@') {
                const json_t *f = fragment(frags, cfg, json_string_value(j) + 1);
                if (!f)
                        return errbuf_fail(-EINVAL, err, size, "no fragment %s", json_string_value(j));
                *pj = json_deep_copy(f);
                json_decref(j);
                return *pj ? 0 : -ENOMEM;
        }
        if (!json_is_object(j))
                return 0;
        static const char *const subs[] = { "items", "additionalProperties" };
        for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
                json_t *sub = json_object_get(j, subs[i]);
                if (!sub)
                        continue;
                json_incref(sub);
                int r = resolve(&sub, frags, cfg, err, size);
                if (r == 0)
                        json_object_set(j, subs[i], sub);
                json_decref(sub);
                if (r < 0)
                        return r;
        }
        json_t *props = json_object_get(j, "properties");
        const char *key;
        json_t *val;
        json_object_foreach (props, key, val) {
                json_incref(val);
                json_t *sub = val;
                int r = resolve(&sub, frags, cfg, err, size);
                if (r == 0 && sub != val)
                        json_object_set(props, key, sub);
                json_decref(sub);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Parse, resolve and check one schema text. */
static int load_schema(const char *text, json_t *const *frags, const mcp_server_config *cfg, json_t **ret, char *err,
                       size_t size)
{
        json_error_t jerr;
        /* JSON_DECODE_ANY: a schema may be just "@NAME", a fragment. */
        json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
        if (!j)
                return errbuf_fail(-EINVAL, err, size, "not JSON: %s at %d", jerr.text, jerr.position);
        int r = resolve(&j, frags, cfg, err, size);
        if (r == 0)
                r = mcp_schema_check(j, err, size);
        const char *type = json_string_value(json_object_get(j, "type"));
        if (r == 0 && (!type || strcmp(type, "object") != 0)) {
                snprintf(err, size, "a tool's schema must be of type object");
                r = -EINVAL;
        }
        if (r < 0) {
                json_decref(j);
                return r;
        }
        *ret = j;
        return 0;
}

static int load_tools(mcp_server *s, char *err, size_t size)
{
        const mcp_server_config *cfg = &s->cfg;
        json_t **frags = calloc(cfg->n_fragments + 1, sizeof(*frags));
        int r = frags ? 0 : -ENOMEM;
        for (size_t i = 0; i < cfg->n_fragments && r == 0; i++) {
                json_error_t jerr;
                frags[i] = json_loads(cfg->fragments[i].json, 0, &jerr);
                if (!frags[i]) {
                        snprintf(err, size, "fragment %s: not JSON: %s", cfg->fragments[i].name, jerr.text);
                        r = -EINVAL;
                }
        }
        s->tools_list = r == 0 ? json_array() : NULL;
        s->tools = r == 0 ? calloc(cfg->n_tools + 1, sizeof(*s->tools)) : NULL;
        if (r == 0 && (!s->tools_list || !s->tools))
                r = -ENOMEM;
        for (size_t i = 0; i < cfg->n_tools && r == 0; i++) {
                const mcp_tool *t = &cfg->tools[i];
                loaded_tool *lt = &s->tools[i];
                char why[400] = "";
                lt->tool = t;
                r = load_schema(t->input_schema, frags, cfg, &lt->input, why, sizeof(why));
                if (r == 0 && t->output_schema)
                        r = load_schema(t->output_schema, frags, cfg, &lt->output, why, sizeof(why));
                json_t *entry = r == 0 ? json_pack("{s:s, s:s, s:O}", "name", t->name, "description", t->description,
                                                   "inputSchema", lt->input)
                                       : NULL;
                if (r == 0 && !entry)
                        r = -ENOMEM;
                if (r == 0 && t->title)
                        json_object_set_new(entry, "title", json_string(t->title));
                if (r == 0 && lt->output)
                        json_object_set(entry, "outputSchema", lt->output);
                if (r == 0 && t->annotations) {
                        json_t *a = json_loads(t->annotations, 0, NULL);
                        if (!json_is_object(a)) {
                                snprintf(why, sizeof(why), "annotations are not a JSON object");
                                r = -EINVAL;
                        }
                        json_object_set_new(entry, "annotations", a ? a : json_null());
                }
                if (r == 0)
                        json_array_append(s->tools_list, entry);
                json_decref(entry);
                if (r < 0 && why[0])
                        snprintf(err, size, "tool %s: %s", t->name, why);
        }
        for (size_t i = 0; frags && i < cfg->n_fragments; i++)
                json_decref(frags[i]);
        free(frags);
        return r;
}

int mcp_server_new(const mcp_server_config *cfg, mcp_server **ret, char *err, size_t err_size)
{
        mcp_server *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->cfg = *cfg;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->idle, NULL);
        pthread_mutex_init(&s->out_lock, NULL);
        s->closed_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (err_size)
                err[0] = 0;
        int r = s->closed_fd < 0 ? negative_errno() : load_tools(s, err, err_size);
        if (r < 0) {
                mcp_server_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

void mcp_server_free(mcp_server *s)
{
        if (!s)
                return;
        for (size_t i = 0; s->tools && i < s->cfg.n_tools; i++) {
                json_decref(s->tools[i].input);
                json_decref(s->tools[i].output);
        }
        free(s->tools);
        json_decref(s->tools_list);
        free(s->line);
        safe_close(s->closed_fd);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->idle);
        pthread_mutex_destroy(&s->out_lock);
        free(s);
}

int mcp_server_closed_fd(const mcp_server *s)
{
        return s->closed_fd;
}

const char *mcp_server_version(const mcp_server *s)
{
        return s->version[0] ? s->version : NULL;
}
