/* SPDX-License-Identifier: Apache-2.0 */
/* One stream = one operation, served by a child process of PID 1 with plain
 * blocking I/O. PID 1 stays a small event loop that cannot be stalled or
 * crashed by a request; a handler that crashes takes only its stream down. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent_proto.h"
#include "init.h"
#include "stream.h"
#include "util.h"

/* A client that connects must send its request promptly. */
#define REQUEST_TIMEOUT_MS 30000
/* After the poweroff RESULT, how long we wait for the client to close (so the
 * answer leaves the VM before the power does). */
#define POWEROFF_LINGER_MS 1000

static int do_poweroff(int fd)
{
        sync();
        (void)agent_send_json(fd, SMOLVM_FRAME_RESULT, json_pack("{s:b}", "ok", 1));
        /* Our answer goes through PID 1's mux asynchronously: wait for the client
         * to close the stream (it has read the answer), bounded. */
        (void)shutdown(fd, SHUT_WR);
        uint64_t deadline = now_ms() + POWEROFF_LINGER_MS;
        for (;;) {
                uint64_t now = now_ms();
                if (now >= deadline)
                        break;
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, (int)(deadline - now)) > 0) {
                        char buf[256];
                        ssize_t n = read(fd, buf, sizeof(buf));
                        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                                break;
                }
        }
        init_log("powering off on request");
        sync();
        if (reboot(RB_POWER_OFF) < 0) {
                int r = negative_errno();
                init_log("reboot(RB_POWER_OFF): %s", strerror(-r));
                return r;
        }
        return 0;
}

static int serve_exec(int fd, const agent_request *req)
{
        return agent_exec(fd, &req->exec);
}

static int serve_ping(int fd, const agent_request *req)
{
        return agent_send_json(fd, SMOLVM_FRAME_RESULT,
                               json_pack("{s:b,s:I}", "ok", 1, "uptime_ms", (json_int_t)boottime_ms()));
}

static int serve_poweroff(int fd, const agent_request *req)
{
        return do_poweroff(fd);
}

/* How each op is served (its name and request fields: request.c's table). */
static int (*const agent_serve[])(int fd, const agent_request *req) = {
        [AGENT_OP_EXEC] = serve_exec,
        [AGENT_OP_PING] = serve_ping,
        [AGENT_OP_POWEROFF] = serve_poweroff,
        [AGENT_OP_WRITE_FILE] = agent_write_file,
        [AGENT_OP_READ_FILE] = agent_read_file,
        [AGENT_OP_MKDIR] = agent_mkdir,
        [AGENT_OP_LIST_TREE] = agent_list_tree,
        [AGENT_OP_ENV_SET] = agent_env_op,
        [AGENT_OP_ENV_UNSET] = agent_env_op,
        [AGENT_OP_ENV_LIST] = agent_env_op,
        [AGENT_OP_FUSE_MOUNT] = agent_fuse_mount,
        [AGENT_OP_FUSE_SERVE] = agent_fuse_serve,
        [AGENT_OP_FUSE_ABORT] = agent_fuse_abort,
        [AGENT_OP_PORT_CONNECT] = agent_port_connect,
};
_Static_assert(ARRAY_SIZE(agent_serve) == AGENT_OP_COUNT, "an op nobody serves");

int agent_handle_stream(int fd)
{
        smolvm_frame_reader rd;
        uint16_t type;
        const uint8_t *payload;
        uint32_t len;
        char err[512] = "";
        int r;

        /* Writes to a stream the client closed must fail with EPIPE, not kill us. */
        (void)signal(SIGPIPE, SIG_IGN);

        r = smolvm_frame_reader_init(&rd, SMOLVM_FRAME_MAX_PAYLOAD);
        if (r < 0)
                return 1;
        r = agent_read_frame(fd, &rd, now_ms() + REQUEST_TIMEOUT_MS, &type, &payload, &len);
        if (r <= 0) {
                if (r == -EMSGSIZE)
                        (void)agent_send_error(fd, EMSGSIZE, "request frame too large");
                else if (r == -EPROTO)
                        (void)agent_send_error(fd, EPROTO, "malformed frame header");
                else if (r == -ETIMEDOUT)
                        (void)agent_send_error(fd, ETIMEDOUT, "no request received");
                smolvm_frame_reader_done(&rd);
                return 1;
        }
        if (type != SMOLVM_FRAME_REQUEST) {
                (void)agent_send_error(fd, EPROTO, "the first frame must be a REQUEST");
                smolvm_frame_reader_done(&rd);
                return 1;
        }

        agent_request req;
        r = agent_request_parse(payload, len, &req, err, sizeof(err));
        smolvm_frame_reader_done(&rd);
        if (r < 0) {
                if (!err[0])
                        snprintf(err, sizeof(err), "bad request: %s", strerror(-r));
                (void)agent_send_error(fd, -r, err);
                return 1;
        }

        if (req.op == AGENT_OP_EXEC) {
                /* The persistent env (env_set) applies to every command, login shell or not. */
                r = agent_env_apply_stored(&req.exec);
                if (r < 0)
                        init_log("exec: not applying the stored env: %s", strerror(-r));
        }
        r = agent_serve[req.op](fd, &req);
        agent_request_done(&req);
        return r < 0 ? 1 : 0;
}

static void close_fds_from(int lowest)
{
        if (syscall(SYS_close_range, (unsigned)lowest, ~0u, 0u) == 0)
                return;
        for (int i = lowest; i < 4096; i++)
                (void)close(i);
}

int agent_spawn_handler(int fd)
{
        pid_t pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid > 0)
                return pid;

        /* Child: nothing of PID 1 but the stream and the console (0-2) survives,
         * so the channel device is released when PID 1 closes it, and PID 1's
         * blocked mask is not inherited by commands. */
        sigset_t none;
        sigemptyset(&none);
        for (int sig = 1; sig < NSIG; sig++)
                (void)signal(sig, SIG_DFL);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        if (fd != 3) {
                if (dup3(fd, 3, O_CLOEXEC) < 0)
                        _exit(1);
                fd = 3;
        }
        close_fds_from(4);
        (void)fd_set_nonblock(fd, false);
        _exit(agent_handle_stream(fd));
}
