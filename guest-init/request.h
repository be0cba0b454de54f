/* SPDX-License-Identifier: Apache-2.0 */
/* Agent requests: the first frame of a stream, JSON, parsed into plain structs.
 * Pure code (no I/O), so the hostile-input rules are unit-tested on the host. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on what one request may ask us to allocate (the frame itself is
 * bounded by SMOLVM_FRAME_MAX_PAYLOAD). */
#define AGENT_MAX_ARGV 4096u
#define AGENT_MAX_ENV 4096u

/* The environment every command starts from; "env" entries are added on top. */
#define AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define AGENT_DEFAULT_CWD "/root"

typedef enum agent_op {
        AGENT_OP_EXEC,
        AGENT_OP_PING,
        AGENT_OP_POWEROFF,
} agent_op;

typedef struct agent_exec_spec {
        char **argv;          /* NULL-terminated, n_argv >= 1 */
        size_t n_argv;
        char **envp;          /* base env merged with the request's "env", NULL-terminated */
        size_t n_envp;
        char *cwd;            /* absolute */
        uint64_t timeout_ms;  /* 0 = none */
        bool want_stdin;      /* false: the command reads /dev/null */
        bool keep_background; /* true: do not kill the process group when the command exits */
} agent_exec_spec;

typedef struct agent_request {
        agent_op op;
        agent_exec_spec exec; /* AGENT_OP_EXEC only */
} agent_request;

/* Parse a REQUEST frame payload. Returns 0 and fills *ret (free with
 * agent_request_done), or a negative errno with a message naming the offending
 * field in errbuf: -EINVAL (bad JSON, missing or ill-typed field), -E2BIG
 * (argv/env too long), -EOPNOTSUPP (unknown op), -ENOMEM. *ret is untouched on
 * failure. */
int agent_request_parse(const void *json, size_t len, agent_request *ret, char *errbuf, size_t errbuf_len);
void agent_request_done(agent_request *r);

/* Merge extra ("K=V" strings) over base: an extra entry replaces a base (or an
 * earlier extra) entry with the same key, keeping the first position. Entries
 * must contain '=' with a non-empty key. Returns 0 and a NULL-terminated,
 * malloc'd vector of malloc'd strings in *ret (free with agent_strv_free), or
 * -EINVAL with the index of the bad extra entry in *ret_bad_index, or -ENOMEM. */
int agent_env_merge(const char *const *base, size_t n_base, const char *const *extra, size_t n_extra,
                    char ***ret, size_t *ret_n, size_t *ret_bad_index);

/* The base environment (PATH, HOME, TERM, LANG), NULL-terminated. */
const char *const *agent_base_env(size_t *ret_n);

void agent_strv_free(char **v);
