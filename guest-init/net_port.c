/* SPDX-License-Identifier: Apache-2.0 */
/* port_connect: the guest end of a port forward (docs/protocol.md). The host
 * supervisor accepted a TCP connection on its listener and opened this stream;
 * we connect to the guest's own server and relay bytes both ways. Only
 * loopback is tried: a server that listens on 0.0.0.0 or :: answers there too,
 * and one bound to another address only was not meant to be reached from
 * outside the guest's loopback anyway (and this VM has no other interface). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "init.h"
#include "relay.h"
#include "stream.h"
#include "util.h"

/* connect() to addr; returns the connected socket or a negative errno. */
static int tcp_connect(const struct sockaddr *sa, socklen_t len)
{
        int s = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return negative_errno();
        int r;
        do
                r = connect(s, sa, len);
        while (r < 0 && errno == EINTR);
        if (r < 0) {
                r = negative_errno();
                safe_close(s);
                return r;
        }
        int one = 1;
        (void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return s;
}

static int relay_loop(int stream, int tcp)
{
        smolvm_relay rl;
        int r = smolvm_relay_init(&rl, stream, tcp);
        if (r < 0)
                return r;
        (void)fd_set_nonblock(stream, true);
        (void)fd_set_nonblock(tcp, true);
        while ((r = smolvm_relay_step(&rl)) == 0) {
                struct pollfd p[2];
                for (int i = 0; i < 2; i++)
                        p[i] = (struct pollfd){ .fd = rl.fd[i], .events = (short)smolvm_relay_events(&rl, i) };
                if (poll(p, 2, -1) < 0 && errno != EINTR) {
                        r = negative_errno();
                        break;
                }
        }
        smolvm_relay_done(&rl);
        return r < 0 ? r : 0;
}

int agent_port_connect(int fd, const agent_request *req)
{
        struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_port = htons(req->port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct sockaddr_in6 v6 = { .sin6_family = AF_INET6, .sin6_port = htons(req->port),
                                   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        const char *where = "127.0.0.1";
        int tcp = tcp_connect((struct sockaddr *)&v4, sizeof(v4));
        if (tcp == -ECONNREFUSED) {
                int t6 = tcp_connect((struct sockaddr *)&v6, sizeof(v6));
                /* A host without IPv6 says EADDRNOTAVAIL/EAFNOSUPPORT: report the IPv4 refusal. */
                if (t6 >= 0 || t6 == -ECONNREFUSED) {
                        tcp = t6;
                        where = "::1";
                }
        }
        if (tcp < 0)
                return agent_send_errorf(fd, -tcp, "port_connect %u: connect to 127.0.0.1 and ::1: %s",
                                         (unsigned)req->port, strerror(-tcp));
        int r = agent_send_json(fd, SMOLVM_FRAME_RESULT, json_pack("{s:b,s:s}", "ok", 1, "address", where));
        if (r >= 0)
                r = relay_loop(fd, tcp);
        safe_close(tcp);
        return r;
}
