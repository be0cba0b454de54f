/* SPDX-License-Identifier: Apache-2.0 */
/* The client of hybrid vsock (docs/protocol.md, "Hybrid vsock"), the one
 * place that does its handshake: connect to <vm dir>/vsock.sock, write
 * "CONNECT <port>\n", read "OK <n>\n", after which the socket is a byte stream
 * to the guest's port. The OK line is read without consuming a byte past it,
 * so whatever the guest sends first is the caller's.
 *
 * Non-blocking, driven by the caller: smolvm_hvsock_conn_step() does what it
 * can without blocking and says what to wait for (_events(), _timeout_ms()),
 * so it fits an event loop. smolvm_hvsock_connect() drives it blocking, with
 * a deadline and a cancel fd. What the stream carries is not its business
 * (agent_client.h for the agent's port; raw bytes for a port forward). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

/* Longest reply line accepted, '\n' included ("OK 4294967295\n" is 14). */
#define SMOLVM_HVSOCK_REPLY_MAX 32u
/* Longest request line, '\n' included (the supervisor reads at most 64). */
#define SMOLVM_HVSOCK_LINE_MAX 64u

/* Where a connection is, or where it failed. */
typedef enum smolvm_hvsock_step {
        SMOLVM_HVSOCK_STEP_CONNECT, /* connect() to vsock.sock (the supervisor's listener) */
        SMOLVM_HVSOCK_STEP_SEND,    /* writing "CONNECT <port>\n" */
        SMOLVM_HVSOCK_STEP_REPLY,   /* waiting for "OK <n>\n": the guest is asked */
        SMOLVM_HVSOCK_STEP_DONE,    /* connected */
} smolvm_hvsock_step;

typedef struct smolvm_hvsock_conn {
        /* read-only for callers */
        smolvm_hvsock_step step; /* after a failure: the step that failed */
        int error;               /* sticky: 0 or the negative errno of the failure */
        const char *why;         /* static text for the failure ("" when none): the call that
                                  * failed ("open" of the VM dir, "socket", "connect", ...) or
                                  * what went wrong ("the guest did not answer", ...) */
        uint32_t port;           /* the guest port asked for */
        uint32_t local_port;     /* from the OK line, once connected */
        /* private */
        int fd;
        int dir_fd;              /* O_PATH of the VM dir when its path is too long for sun_path */
        uint64_t deadline_ms;
        uint64_t retry_ms;       /* connect() found the listener's backlog full: try again then */
        struct sockaddr_un sa;
        char line[SMOLVM_HVSOCK_LINE_MAX];
        size_t line_len;         /* STEP_SEND: bytes of the CONNECT line; STEP_REPLY: bytes of the reply */
        size_t line_off;         /* STEP_SEND: bytes sent */
} smolvm_hvsock_conn;

/* Prepare a connection to guest port through <vm_dir>/vsock.sock (a path too
 * long for sun_path goes through /proc/self/fd). deadline_ms: now_ms() time
 * after which _step() fails with -ETIMEDOUT, 0 for none. Nothing is sent
 * yet. Returns 0, or a negative errno (recorded in c as by _step()): open of
 * the VM dir, socket(). Call smolvm_hvsock_conn_done() in every case. */
int smolvm_hvsock_conn_start(smolvm_hvsock_conn *c, const char *vm_dir, uint32_t port, uint64_t deadline_ms);

/* Make progress without blocking. Returns 1 when connected (take the fd),
 * 0 to be called again once the socket has _events() or after _timeout_ms(),
 * or a negative errno, sticky, with c->step and c->why:
 *   STEP_CONNECT: connect()'s errno (-ENOENT: no socket, -ECONNREFUSED: no
 *                 listener), -ETIMEDOUT;
 *   STEP_SEND:    send()'s errno, -ETIMEDOUT;
 *   STEP_REPLY:   -ECONNREFUSED (closed before the OK line: the guest refused,
 *                 or did not answer the supervisor), -EPROTO (not "OK <n>", or
 *                 longer than SMOLVM_HVSOCK_REPLY_MAX), -ETIMEDOUT, recv()'s errno. */
int smolvm_hvsock_conn_step(smolvm_hvsock_conn *c);
/* poll events to wait for on smolvm_hvsock_conn_fd() (POLLIN or POLLOUT), 0
 * when only time will tell (a backlog retry), or once finished. */
short smolvm_hvsock_conn_events(const smolvm_hvsock_conn *c);
/* The socket, to watch (owned by c until taken), or -1. */
int smolvm_hvsock_conn_fd(const smolvm_hvsock_conn *c);
/* Milliseconds until _step() must run even without an event (deadline,
 * retry); -1 for no limit. */
int smolvm_hvsock_conn_timeout_ms(const smolvm_hvsock_conn *c);
/* After _step() returned 1: the connected socket (SOCK_STREAM, O_NONBLOCK,
 * O_CLOEXEC), now the caller's. -1 otherwise. */
int smolvm_hvsock_conn_take_fd(smolvm_hvsock_conn *c);
/* Close what c still holds. Idempotent; step/error/why stay readable. */
void smolvm_hvsock_conn_done(smolvm_hvsock_conn *c);

/* The whole handshake, blocking. cancel_fd >= 0: give up with -ECANCELED
 * once it is readable. Returns the connected socket (as _take_fd()) or a
 * negative errno; either way c says how it went (step, why, local_port) and
 * holds nothing (no _done() needed). */
int smolvm_hvsock_connect(smolvm_hvsock_conn *c, const char *vm_dir, uint32_t port, uint64_t deadline_ms,
                          int cancel_fd);
/* A control request to the supervisor itself (docs/internals.md, "Hybrid
 * vsock"): send line (one line, '\n' included, at most SMOLVM_HVSOCK_LINE_MAX
 * bytes), read "OK <n>\n" or "ERR <errno>\n"; the supervisor then closes.
 * Blocking, with a deadline (0: none). Returns 0 with n in *ret_n, the
 * supervisor's negative errno after ERR (c->why "the supervisor refused"),
 * -EINVAL for a bad line, or a failure as smolvm_hvsock_connect()'s
 * (-ENOENT/-ECONNREFUSED: no supervisor, -ECONNREFUSED also: a supervisor that
 * does not know the request). c holds nothing afterwards. */
int smolvm_hvsock_control(smolvm_hvsock_conn *c, const char *vm_dir, const char *line, uint64_t deadline_ms,
                          uint32_t *ret_n);
