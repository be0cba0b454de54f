/* SPDX-License-Identifier: Apache-2.0 */
/* What smolvm mcp's tools share (mcp_tools.h): running code in a VM with its
 * output bounded, text and base64 for JSON, the library's errors as tool
 * errors. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/base64.h>

#include "cli_exec.h"
#include "cli_json_text.h"
#include "mcp_schema.h"
#include "mcp_tools.h"
#include "util.h"

json_t *mcp_lib_error(mcp_call *call, const char *what, int r)
{
        if (r == -ECANCELED || mcp_call_cancelled(call))
                return mcp_result_errorf("cancelled");
        const smolvm_error *e = smolvm_last_error();
        return mcp_result_errorf("cannot %s: %s%s%s%s", what, e->message[0] ? e->message : smolvm_strerror(r),
                                 e->hint[0] ? " (" : "", e->hint, e->hint[0] ? ")" : "");
}

/* The finished JSON text of t as a JSON string, with the truncation mark. */
static json_t *text_json(const cli_json_text *t, uint64_t total_bytes, size_t max_bytes, bool *ret_truncated)
{
        char mark[160] = "";
        if (t->truncated)
                /* JSON text itself: "\n" is the escape, two characters. */
                snprintf(mark, sizeof(mark),
                         "\\n[smolvm: truncated after %zu bytes of text; %" PRIu64 " bytes in all]", max_bytes,
                         total_bytes);
        size_t mlen = strlen(mark), n = t->len + mlen + 2;
        char *b = malloc(n);
        if (!b)
                return NULL;
        b[0] = '"';
        if (t->len)
                memcpy(b + 1, t->buf, t->len);
        memcpy(b + 1 + t->len, mark, mlen);
        b[n - 1] = '"';
        json_t *j = json_loadb(b, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        free(b);
        if (ret_truncated)
                *ret_truncated = t->truncated;
        return j;
}

json_t *mcp_text_json(const void *data, size_t len, uint64_t total_bytes, size_t max_bytes, bool *ret_truncated)
{
        cli_json_text t = { .max_len = max_bytes };
        cli_json_text_add(&t, data, len, true);
        json_t *j = text_json(&t, total_bytes, max_bytes, ret_truncated);
        free(t.buf);
        return j;
}

json_t *mcp_base64_json(const void *data, size_t len)
{
        size_t n = BASE64_ENCODE_RAW_LENGTH(len);
        char *b = malloc(n + 1);
        if (!b)
                return NULL;
        if (len)
                base64_encode_raw(b, len, data);
        json_t *j = json_stringn(b, n);
        free(b);
        return j;
}

int mcp_base64_decode(const char *text, size_t text_len, size_t max_bytes, void **ret, size_t *ret_len)
{
        size_t cap = BASE64_DECODE_LENGTH(text_len);
        /* Whitespace may make the text longer than its bytes: only a text that
         * decodes to more is refused, after decoding. */
        uint8_t *b = malloc(cap + 1);
        if (!b)
                return -ENOMEM;
        struct base64_decode_ctx ctx;
        size_t n = cap;
        base64_decode_init(&ctx);
        if (!base64_decode_update(&ctx, &n, b, text_len, text) || !base64_decode_final(&ctx)) {
                free(b);
                return -EINVAL;
        }
        if (n > max_bytes) {
                free(b);
                return -EFBIG;
        }
        *ret = b;
        *ret_len = n;
        return 0;
}

/* ---- running code ---- */

typedef struct collect {
        cli_json_text out, err;
        uint64_t out_bytes, err_bytes; /* what the command wrote, kept or not */
} collect;

static int on_stdout(void *ud, const void *data, size_t len)
{
        collect *c = ud;
        c->out_bytes += len;
        cli_json_text_add(&c->out, data, len, false);
        return 0;
}

static int on_stderr(void *ud, const void *data, size_t len)
{
        collect *c = ud;
        c->err_bytes += len;
        cli_json_text_add(&c->err, data, len, false);
        return 0;
}

json_t *mcp_exec_code(mcp_call *call, smolvm_vm *vm, const json_t *args)
{
        const mcp_ctx *ctx = mcp_call_userdata(call);
        const char *code = json_string_value(json_object_get(args, "code"));
        const char *lang = json_string_value(json_object_get(args, "language"));
        long long timeout_s = mcp_json_int(json_object_get(args, "timeout"), ctx->lim.timeout_max_s);
        /* Code goes in as an argument, not on stdin: a bash script on stdin would
         * be read by the commands it runs. */
        const char *argv[] = { !strcmp(lang, "python") ? "python3" : "bash", "-c", code, NULL };
        smolvm_exec_opts o;
        smolvm_exec_opts_init(&o);
        o.argv = argv;
        o.env = ctx->lim.env;
        o.cwd = json_string_value(json_object_get(args, "cwd"));
        o.timeout_ms = (uint32_t)timeout_s * 1000u;
        o.cancel_fd = mcp_call_cancel_fd(call);

        size_t max = ctx->lim.output_max_bytes;
        collect c = { .out.max_len = max, .err.max_len = max };
        smolvm_exec_callbacks cbs = { .on_stdout = on_stdout, .on_stderr = on_stderr, .userdata = &c };
        smolvm_exec_status st = { 0 };
        int r = smolvm_exec(vm, &o, &cbs, &st);
        cli_json_text_add(&c.out, NULL, 0, true);
        cli_json_text_add(&c.err, NULL, 0, true);
        json_t *res;
        if (r < 0) {
                res = mcp_lib_error(call, "run the code", r);
        } else {
                bool out_trunc = false, err_trunc = false;
                json_t *out = text_json(&c.out, c.out_bytes, max, &out_trunc);
                json_t *err = text_json(&c.err, c.err_bytes, max, &err_trunc);
                json_t *sc = out && err ? json_pack("{s:i, s:i, s:b, s:O, s:O, s:b, s:b, s:I}", "exit_code",
                                                    cli_status_exit_code(&st), "signal", st.signal, "timed_out",
                                                    st.timed_out, "stdout", out, "stderr", err, "stdout_truncated",
                                                    out_trunc, "stderr_truncated", err_trunc, "duration_ms",
                                                    (json_int_t)st.duration_ms)
                                        : NULL;
                json_decref(out);
                json_decref(err);
                /* A non-zero exit is the command's answer, not a failure of the
                 * tool; a timeout is: the command did not finish. */
                res = sc ? mcp_result_structured(sc, st.timed_out) : NULL;
        }
        free(c.out.buf);
        free(c.err.buf);
        return res;
}
