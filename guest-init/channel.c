/* SPDX-License-Identifier: Apache-2.0 */
/* Where streams come from: the virtio-serial channel port (QEMU; demultiplexed
 * by smolvm_mux) and, where the kernel has a vsock transport, an AF_VSOCK
 * listener (Firecracker, vhost-vsock). Either way a stream is an fd handed to a
 * handler process: one interface.
 *
 * virtio-serial quirks this file deals with:
 *  - ports appear (and get their name) asynchronously after the driver loads;
 *  - while the host side is not connected, the port polls POLLHUP and read()
 *    returns 0, so it must not be handed to the mux yet; the driver sends SIGIO
 *    (O_ASYNC) when the host connects or disconnects;
 *  - only one open file per port: a handler must not keep it open (handlers
 *    close every inherited fd), or the port could not be reopened. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_proto.h"
#include "init.h"
#include "mux.h"
#include "util.h"
#include "wire.h"

#define DEFAULT_CHAN_NAME "org.smolvm.chan0"
/* Port discovery: poll fast right after boot (the port shows up a few ms after
 * the driver), slowly later (a VMM with only AF_VSOCK has no port at all). */
#define FAST_RETRY_MS 5
#define FAST_PERIOD_MS 3000
#define SLOW_RETRY_MS 1000

struct agent_channel {
        smolvm_evloop *loop;
        char *name;
        smolvm_mux *mux;
        int wait_fd;        /* port opened, host side not connected yet */
        bool mux_broken;    /* set from the mux callback, handled in tick */
        bool logged_missing;
        uint64_t started_ms, next_try_ms;
        uint8_t hello_extra[12];
        int vsock_fd;
};

static int stream_accept(void *userdata, uint32_t local_port, uint32_t peer_port)
{
        if (local_port != SMOLVM_AGENT_PORT)
                return -ECONNREFUSED;
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                int r = negative_errno();
                init_log("socketpair: %s", strerror(-r));
                return r;
        }
        int r = agent_spawn_handler(sv[1]);
        safe_close(sv[1]);
        if (r < 0) {
                init_log("fork handler: %s", strerror(-r));
                safe_close(sv[0]);
                return r;
        }
        return sv[0];
}

static void mux_broken(void *userdata, int err, const char *why)
{
        agent_channel *ch = userdata;
        ch->mux_broken = true;
        init_log("channel %s closed (%s%s%s)" SMOLVM_CHAN_REOPEN_MARK, ch->name, why, err ? ": " : "",
                 err ? strerror(err < 0 ? -err : err) : "");
}

/* Before the mux resets the streams: a FUSE relay seeing its stream end then
 * knows it was the channel (fuseops.c), not its server. */
static void mux_resetting(void *userdata)
{
        agent_channel_generation_bump();
}

/* A restore's IDENTITY (wire.h), sent by the supervisor right after our HELLO
 * and before any stream packet: applied here, in PID 1, before the mux parses
 * the next packet; the ACK says whether it took (the supervisor reports the VM
 * ready only after it, and fails the start on an error). */
static void mux_control(void *userdata, uint16_t op, const uint8_t *payload, uint32_t len)
{
        agent_channel *ch = userdata;
        if (op != SMOLVM_CHAN_OP_IDENTITY || !ch->mux)
                return;
        uint8_t ack[4 + SMOLVM_CHAN_ACK_MSG_MAX];
        char *msg = (char *)ack + 4;
        agent_identity id;
        msg[0] = '\0';
        int r = agent_identity_parse(payload, len, &id);
        if (r < 0)
                snprintf(msg, SMOLVM_CHAN_ACK_MSG_MAX, "malformed identity (%u bytes): %s", len, strerror(-r));
        else
                r = agent_identity_apply(&id, msg, SMOLVM_CHAN_ACK_MSG_MAX);
        if (r < 0)
                init_log("channel %s: restore identity refused: %s", ch->name, msg);
        put_le32(ack, r < 0 ? (uint32_t)-r : 0);
        r = smolvm_mux_send_control(ch->mux, SMOLVM_CHAN_OP_IDENTITY_ACK, ack,
                                    4 + (uint32_t)strnlen(msg, SMOLVM_CHAN_ACK_MSG_MAX - 1));
        if (r < 0)
                init_log("channel %s: sending the identity's ACK: %s", ch->name, strerror(-r));
}

static const smolvm_mux_ops mux_ops = {
        .accept = stream_accept,
        .broken = mux_broken,
        .resetting = mux_resetting,
        .control = mux_control,
};

/* /dev path of the virtio-serial port named name, or -ENOENT. */
static int find_port(const char *name, char *ret_path, size_t ret_len)
{
        DIR *d = opendir("/sys/class/virtio-ports");
        if (!d)
                return -ENOENT;
        int r = -ENOENT;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char p[512], buf[256];
                snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", de->d_name);
                if (read_line_file(p, buf, sizeof(buf)) < 0)
                        continue;
                if (strcmp(buf, name) == 0) {
                        snprintf(ret_path, ret_len, "/dev/%s", de->d_name);
                        r = 0;
                        break;
                }
        }
        closedir(d);
        return r;
}

static void schedule_retry(agent_channel *ch, uint64_t now)
{
        bool fast = now < ch->started_ms + FAST_PERIOD_MS;
        ch->next_try_ms = now + (fast ? FAST_RETRY_MS : SLOW_RETRY_MS);
}

static void try_open_port(agent_channel *ch, uint64_t now)
{
        char path[300];
        int r = find_port(ch->name, path, sizeof(path));
        if (r < 0) {
                if (!ch->logged_missing && now >= ch->started_ms + FAST_PERIOD_MS) {
                        init_log("no virtio-serial port named %s yet; still waiting (AF_VSOCK %s)", ch->name,
                                 ch->vsock_fd >= 0 ? "listening" : "unavailable");
                        ch->logged_missing = true;
                }
                schedule_retry(ch, now);
                return;
        }
        /* The node may lag the sysfs entry by a moment: ENOENT is retried. */
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) {
                if (errno != ENOENT)
                        init_log("open %s: %m", path);
                schedule_retry(ch, now);
                return;
        }
        if (fcntl(fd, F_SETOWN, getpid()) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK | O_ASYNC) < 0)
                init_log("%s: cannot enable SIGIO (%m): polling for the host instead", path);
        ch->wait_fd = fd;
}

/* Hand the port to a new mux once the host side is connected. */
static void try_start_mux(agent_channel *ch, uint64_t now)
{
        struct pollfd p = { .fd = ch->wait_fd, .events = POLLIN | POLLOUT };
        if (poll(&p, 1, 0) < 0 || (p.revents & POLLHUP)) {
                ch->next_try_ms = now + SLOW_RETRY_MS; /* or earlier, on SIGIO */
                return;
        }
        int r = smolvm_mux_new(ch->loop, TAKE_FD(ch->wait_fd), false, &mux_ops, ch, ch->hello_extra,
                               sizeof(ch->hello_extra), &ch->mux);
        if (r < 0) {
                ch->mux = NULL;
                init_log("channel %s: cannot start: %s", ch->name, strerror(-r));
                ch->next_try_ms = now + SLOW_RETRY_MS;
        }
}

int agent_channel_tick(agent_channel *ch)
{
        uint64_t now = now_ms();
        if (ch->mux_broken) {
                smolvm_mux_free(ch->mux);
                ch->mux = NULL;
                ch->mux_broken = false;
                ch->next_try_ms = now;
        }
        if (ch->mux)
                return -1;
        if (now >= ch->next_try_ms) {
                if (ch->wait_fd < 0)
                        try_open_port(ch, now);
                if (ch->wait_fd >= 0)
                        try_start_mux(ch, now);
                if (ch->mux)
                        return -1;
        }
        return (int)(ch->next_try_ms > now ? ch->next_try_ms - now : 0);
}

smolvm_mux *agent_channel_mux(agent_channel *ch)
{
        return ch->mux && !smolvm_mux_is_broken(ch->mux) ? ch->mux : NULL;
}

void agent_channel_sigio(agent_channel *ch)
{
        /* The host connected (or went away: the mux sees EOF by itself). */
        if (ch->wait_fd >= 0)
                ch->next_try_ms = 0;
}

static void vsock_ready(void *userdata, int fd, uint32_t events)
{
        for (int i = 0; i < 64; i++) {
                int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                init_log("vsock accept: %m");
                        return;
                }
                int r = agent_spawn_handler(c);
                if (r < 0)
                        init_log("fork handler: %s", strerror(-r));
                safe_close(c);
        }
}

static int vsock_listen(void)
{
        int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        struct sockaddr_vm addr = {
                .svm_family = AF_VSOCK,
                .svm_cid = VMADDR_CID_ANY,
                .svm_port = SMOLVM_AGENT_PORT,
        };
        if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 64) < 0) {
                int r = negative_errno();
                safe_close(fd);
                return r;
        }
        return fd;
}

int agent_channel_new(smolvm_evloop *loop, uint32_t init_start_ms, uint32_t ready_ms, agent_channel **ret)
{
        agent_channel *ch = calloc(1, sizeof(*ch));
        if (!ch)
                return -ENOMEM;
        agent_channel_generation_init();
        ch->loop = loop;
        ch->wait_fd = -1;
        ch->vsock_fd = -1;
        ch->started_ms = now_ms();
        ch->name = cmdline_get("smolvm.chan");
        if (!ch->name || !ch->name[0]) {
                free(ch->name);
                ch->name = strdup(DEFAULT_CHAN_NAME);
                if (!ch->name) {
                        free(ch);
                        return -ENOMEM;
                }
        }
        put_le32(ch->hello_extra, init_start_ms);
        put_le32(ch->hello_extra + 4, ready_ms);
        put_le32(ch->hello_extra + 8, SMOLVM_HELLO_FEATURES);

        /* Our QEMU setup has no virtio-vsock device, so the image left the vsock
         * modules out: an AF_VSOCK socket would only make the kernel try modprobe. */
        int fd = module_skipped_at_boot("vsock.ko") ? -EAFNOSUPPORT : vsock_listen();
        if (fd >= 0) {
                int r = smolvm_evloop_add(loop, fd, EPOLLIN, vsock_ready, ch);
                if (r < 0) {
                        init_log("vsock listener: %s", strerror(-r));
                        safe_close(fd);
                } else {
                        ch->vsock_fd = fd;
                }
        }
        *ret = ch;
        return 0;
}
