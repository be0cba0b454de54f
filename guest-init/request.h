/* SPDX-License-Identifier: Apache-2.0 */
/* Agent requests: the first frame of a stream, JSON, parsed into plain structs.
 * Pure code (no I/O), so the hostile-input rules are unit-tested on the host. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_proto.h" /* agent_env_key_valid, AGENT_ENV_MAX_* */

/* Bounds on what one request may ask us to allocate (the frame itself is
 * bounded by SMOLVM_FRAME_MAX_PAYLOAD). */
#define AGENT_MAX_ARGV 4096u
#define AGENT_MAX_ENV 4096u
/* File ops: longest accepted path, in bytes (PATH_MAX includes the NUL). */
#define AGENT_MAX_PATH 4096u

/* The environment every command starts from; "env" entries are added on top. */
#define AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define AGENT_DEFAULT_CWD "/root"

typedef enum agent_op {
        AGENT_OP_EXEC,
        AGENT_OP_PING,
        AGENT_OP_POWEROFF,
        AGENT_OP_WRITE_FILE,
        AGENT_OP_READ_FILE,
        AGENT_OP_MKDIR,
        AGENT_OP_LIST_TREE,
        AGENT_OP_ENV_SET,
        AGENT_OP_ENV_UNSET,
        AGENT_OP_ENV_LIST,
        AGENT_OP_FUSE_MOUNT,
        AGENT_OP_FUSE_SERVE,
        AGENT_OP_FUSE_ABORT,
        AGENT_OP_PORT_CONNECT,
        AGENT_OP_COUNT
} agent_op;
/* Its name on the wire ("exec", "env_set", ...). */
const char *agent_op_name(agent_op op);

typedef struct agent_exec_spec {
        char **argv;          /* NULL-terminated, n_argv >= 1 */
        size_t n_argv;
        char **envp;          /* base env merged with the request's "env", NULL-terminated */
        size_t n_envp;
        char **env_extra;     /* the request's own "env" entries (to re-merge over the stored env) */
        size_t n_env_extra;
        char *cwd;            /* absolute */
        uint64_t timeout_ms;  /* 0 = none */
        bool want_stdin;      /* false: the command reads /dev/null */
        bool keep_background; /* true: do not kill the process group when the command exits */
        bool tty;             /* run on a pty (stdin, stdout, stderr: its slave; one output stream) */
        uint16_t rows, cols;  /* tty: the window size at start (0: left to the kernel) */
        bool detach;          /* answer RESULT {pid, log} at once; the output goes to the log */
} agent_exec_spec;

/* write_file, read_file, mkdir, list_tree, fuse_mount, fuse_serve, fuse_abort. */
typedef struct agent_path_spec {
        char *path;    /* absolute, at most AGENT_MAX_PATH bytes */
        uint32_t mode; /* permission bits (<= 07777): write_file (default 0644), mkdir (0755) */
        bool parents;  /* write_file "mkdirs", mkdir "parents" */
        bool read_only; /* fuse_mount "read_only" (default true) */
        bool reattach;  /* fuse_mount "reattach": a new stream for the existing mount at path */
} agent_path_spec;

/* env_set (keys + values), env_unset (keys), env_list (empty). Keys are valid names. */
typedef struct agent_env_spec {
        char **keys;   /* NULL-terminated */
        char **values; /* env_set: parallel to keys, NULL-terminated; else NULL */
        size_t n;
} agent_env_spec;

#define AGENT_HOSTNAME_MAX 64u

/* A hostname we set: 1..AGENT_HOSTNAME_MAX of [a-z0-9-]. */
bool agent_hostname_valid(const char *name);

typedef struct agent_request {
        agent_op op;
        agent_exec_spec exec; /* AGENT_OP_EXEC only */
        agent_path_spec file; /* the file ops */
        agent_env_spec env;   /* the env ops */
        uint16_t port;        /* port_connect: the guest TCP port, 1..65535 */
} agent_request;

/* Parse a REQUEST frame payload. Returns 0 and fills *ret (free with
 * agent_request_done), or a negative errno with a message naming the offending
 * field in errbuf: -EINVAL (bad JSON, missing or ill-typed field, bad env
 * key), -E2BIG (argv/env/vars too long, env value too large), -ENAMETOOLONG
 * (path), -EOPNOTSUPP (unknown op), -ENOMEM. *ret is untouched on
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
