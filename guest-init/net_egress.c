/* SPDX-License-Identifier: Apache-2.0 */
/* Egress by name, the guest half (docs/protocol.md, "Egress"). Enabled by the
 * kernel argument smolvm.net=1, which the host's egress duty adds.
 *
 * The guest gets no network device at all. Instead:
 *  - "local 0.0.0.0/0 dev lo" and "local ::/0 dev lo" routes make every
 *    address local (the AnyIP trick), so a connect() to any address reaches
 *    this kernel and nothing ever leaves the VM through a NIC (there is none);
 *  - a BPF sk_lookup program hands every TCP connection to a non-loopback
 *    address, whatever its port, to one listener of ours (one per family), so
 *    no port has to be known in advance and no netfilter module or nft tool is
 *    needed (Debian's kernel has BPF and sockmap built in);
 *  - the accepted socket's local address is the destination the program asked
 *    for; the agent opens a stream to the host's egress port whose first line
 *    names it ("connect ADDR PORT") and the mux relays the socket as it is;
 *  - a resolver on SMOLVM_EGRESS_RESOLVER:53 (UDP) asks the host for each name
 *    ("resolve NAME") and answers the synthetic address the host gave, or
 *    NXDOMAIN.
 * The host decides everything. Guest root can undo all of this (remove the
 * routes, detach the program): then it simply has no network, because the
 * channel is the only way out of the VM. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent_proto.h"
#include "fileutil.h"
#include "init.h"
#include "mux.h"
#include "util.h"

#define DNS_PENDING_MAX 64u
#define DNS_MSG_MAX 512u
#define DNS_NAME_MAX 253u
#define ACCEPT_BATCH 64

typedef struct dns_pending {
        net_egress *ne;
        int fd; /* our end of the socketpair whose other end the mux relays; -1: free */
        struct sockaddr_storage client;
        socklen_t client_len;
        uint8_t query[DNS_MSG_MAX]; /* header + the question, as received */
        size_t query_len;
        uint16_t qtype;
        char reply[64];
        size_t reply_len;
} dns_pending;

struct net_egress {
        smolvm_evloop *loop;
        agent_channel *ch;
        int listen4, listen6, dns_fd;
        int prog_fd, map_fd, link_fd;
        dns_pending dns[DNS_PENDING_MAX];
};

/* ---- set-up: routes ---- */

/* "ip route add local ADDR/0 dev lo" for family af over rtnetlink. */
static int route_local_all(int af)
{
        _cleanup_close_ int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0)
                return negative_errno();
        struct {
                struct nlmsghdr nh;
                struct rtmsg rt;
                struct rtattr oif_attr;
                uint32_t oif;
        } req = {
                .nh = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_NEWROUTE,
                        .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, .nlmsg_seq = 1 },
                .rt = { .rtm_family = (unsigned char)af, .rtm_dst_len = 0, .rtm_table = RT_TABLE_LOCAL,
                        .rtm_protocol = RTPROT_BOOT, .rtm_scope = RT_SCOPE_HOST, .rtm_type = RTN_LOCAL },
                .oif_attr = { .rta_len = RTA_LENGTH(sizeof(uint32_t)), .rta_type = RTA_OIF },
                .oif = if_nametoindex("lo"),
        };
        if (req.oif == 0)
                return -ENODEV;
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
        if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        uint8_t buf[512];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0)
                return negative_errno();
        struct nlmsghdr *nh = (struct nlmsghdr *)buf;
        if ((size_t)n < sizeof(*nh) + sizeof(struct nlmsgerr) || nh->nlmsg_type != NLMSG_ERROR)
                return -EPROTO;
        const struct nlmsgerr *e = NLMSG_DATA(nh);
        return e->error; /* 0 or negative errno */
}

/* ---- set-up: the sk_lookup program ---- */

static long bpf(int cmd, union bpf_attr *attr)
{
        return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define LDX32(d, s, o) INSN(BPF_LDX | BPF_MEM | BPF_W, d, s, o, 0)
#define MOV64(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV64I(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define JNEI(d, i, o) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, o, i)
#define JEQI(d, i, o) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, o, i)
#define CALL(f) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define CTX(f) ((short)offsetof(struct bpf_sk_lookup, f))

/* For TCP to an address that is not loopback: assign the listener stored at
 * key 0 (IPv4) or 1 (IPv6) of the sockmap; everything else goes on as usual.
 * Jumps are written as (target - pc - 1) from the labels below. */
enum { L_V6 = 11, L_KEY1 = 19, L_LOOKUP = 20, L_PASS = 34, PROG_LEN = 36 };
#define TO(pc, label) ((short)((label) - (pc) - 1))

static int load_program(int map_fd)
{
        const struct bpf_insn prog[PROG_LEN] = {
                [0] = MOV64(BPF_REG_6, BPF_REG_1),
                [1] = LDX32(BPF_REG_2, BPF_REG_6, CTX(protocol)),
                [2] = JNEI(BPF_REG_2, IPPROTO_TCP, TO(2, L_PASS)),
                [3] = LDX32(BPF_REG_2, BPF_REG_6, CTX(family)),
                [4] = JEQI(BPF_REG_2, AF_INET6, TO(4, L_V6)),
                [5] = JNEI(BPF_REG_2, AF_INET, TO(5, L_PASS)),
                [6] = LDX32(BPF_REG_3, BPF_REG_6, CTX(local_ip4)),
                [7] = INSN(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_3, 0, 0, 0xff), /* first octet */
                [8] = JEQI(BPF_REG_3, 127, TO(8, L_PASS)),
                [9] = MOV64I(BPF_REG_2, 0),
                [10] = INSN(BPF_JMP | BPF_JA, 0, 0, TO(10, L_LOOKUP), 0),
                [L_V6] = LDX32(BPF_REG_3, BPF_REG_6, CTX(local_ip6[3])),
                [12] = JNEI(BPF_REG_3, (int)htonl(1), TO(12, L_KEY1)),
                [13] = LDX32(BPF_REG_3, BPF_REG_6, CTX(local_ip6[0])),
                [14] = LDX32(BPF_REG_4, BPF_REG_6, CTX(local_ip6[1])),
                [15] = INSN(BPF_ALU64 | BPF_OR | BPF_X, BPF_REG_3, BPF_REG_4, 0, 0),
                [16] = LDX32(BPF_REG_4, BPF_REG_6, CTX(local_ip6[2])),
                [17] = INSN(BPF_ALU64 | BPF_OR | BPF_X, BPF_REG_3, BPF_REG_4, 0, 0),
                [18] = JEQI(BPF_REG_3, 0, TO(18, L_PASS)), /* ::1 */
                [L_KEY1] = MOV64I(BPF_REG_2, 1),
                [L_LOOKUP] = INSN(BPF_STX | BPF_MEM | BPF_W, BPF_REG_10, BPF_REG_2, -4, 0),
                [21] = MOV64(BPF_REG_2, BPF_REG_10),
                [22] = INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4),
                [23] = INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd),
                [24] = INSN(0, 0, 0, 0, 0),
                [25] = CALL(BPF_FUNC_map_lookup_elem),
                [26] = JEQI(BPF_REG_0, 0, TO(26, L_PASS)),
                [27] = MOV64(BPF_REG_7, BPF_REG_0),
                [28] = MOV64(BPF_REG_1, BPF_REG_6),
                [29] = MOV64(BPF_REG_2, BPF_REG_7),
                [30] = MOV64I(BPF_REG_3, 0),
                [31] = CALL(BPF_FUNC_sk_assign),
                [32] = MOV64(BPF_REG_1, BPF_REG_7),
                [33] = CALL(BPF_FUNC_sk_release),
                [L_PASS] = MOV64I(BPF_REG_0, SK_PASS),
                [35] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
        };
        static char vlog[4096];
        union bpf_attr a = { 0 };
        a.prog_type = BPF_PROG_TYPE_SK_LOOKUP;
        a.expected_attach_type = BPF_SK_LOOKUP;
        a.insns = (uint64_t)(uintptr_t)prog;
        a.insn_cnt = PROG_LEN;
        a.license = (uint64_t)(uintptr_t)"Apache-2.0";
        a.log_buf = (uint64_t)(uintptr_t)vlog;
        a.log_size = sizeof(vlog);
        a.log_level = 1;
        vlog[0] = '\0';
        long fd = bpf(BPF_PROG_LOAD, &a);
        if (fd < 0) {
                int r = negative_errno();
                init_log("egress: BPF verifier says: %.1000s", vlog);
                return r;
        }
        (void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
        return (int)fd;
}

static int tcp_listener(int af)
{
        _cleanup_close_ int fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        int one = 1;
        struct sockaddr_storage ss = { 0 };
        socklen_t len;
        if (af == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *)&ss;
                in->sin_family = AF_INET;
                in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                len = sizeof(*in);
        } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
                in6->sin6_family = AF_INET6;
                in6->sin6_addr = in6addr_loopback;
                len = sizeof(*in6);
                (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        }
        if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 256) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

static int sockmap_put(int map_fd, uint32_t key, int sock_fd)
{
        uint64_t v = (uint64_t)sock_fd;
        union bpf_attr a = { 0 };
        a.map_fd = (uint32_t)map_fd;
        a.key = (uint64_t)(uintptr_t)&key;
        a.value = (uint64_t)(uintptr_t)&v;
        a.flags = BPF_ANY;
        return bpf(BPF_MAP_UPDATE_ELEM, &a) < 0 ? negative_errno() : 0;
}

/* The map, both listeners, the program and its link to our network namespace. */
static int setup_redirect(net_egress *ne)
{
        union bpf_attr a = { 0 };
        a.map_type = BPF_MAP_TYPE_SOCKMAP;
        a.key_size = sizeof(uint32_t);
        a.value_size = sizeof(uint64_t);
        a.max_entries = 2;
        long m = bpf(BPF_MAP_CREATE, &a);
        if (m < 0) {
                int r = negative_errno();
                init_log("egress: create sockmap: %s", strerror(-r));
                return r;
        }
        ne->map_fd = (int)m;
        (void)fcntl(ne->map_fd, F_SETFD, FD_CLOEXEC);
        ne->listen4 = tcp_listener(AF_INET);
        ne->listen6 = tcp_listener(AF_INET6);
        if (ne->listen4 < 0) {
                init_log("egress: IPv4 listener: %s", strerror(-ne->listen4));
                return ne->listen4;
        }
        int r = sockmap_put(ne->map_fd, 0, ne->listen4);
        if (r < 0) {
                init_log("egress: sockmap: %s", strerror(-r));
                return r;
        }
        if (ne->listen6 >= 0 && (r = sockmap_put(ne->map_fd, 1, ne->listen6)) < 0)
                init_log("egress: sockmap (IPv6): %s", strerror(-r));
        ne->prog_fd = load_program(ne->map_fd);
        if (ne->prog_fd < 0) {
                init_log("egress: load sk_lookup program: %s", strerror(-ne->prog_fd));
                return ne->prog_fd;
        }
        _cleanup_close_ int ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (ns < 0) {
                r = negative_errno();
                init_log("egress: open /proc/self/ns/net: %s", strerror(-r));
                return r;
        }
        union bpf_attr l = { 0 };
        l.link_create.prog_fd = (uint32_t)ne->prog_fd;
        l.link_create.target_fd = (uint32_t)ns;
        l.link_create.attach_type = BPF_SK_LOOKUP;
        long lk = bpf(BPF_LINK_CREATE, &l);
        if (lk < 0) {
                r = negative_errno();
                init_log("egress: attach sk_lookup: %s", strerror(-r));
                return r;
        }
        ne->link_fd = (int)lk;
        (void)fcntl(ne->link_fd, F_SETFD, FD_CLOEXEC);
        return 0;
}

/* ---- TCP: one stream per connection ---- */

static void connect_done(void *userdata, int err, uint32_t local_port)
{
        (void)userdata;
        (void)local_port;
        if (err < 0 && err != -ECONNREFUSED)
                init_log("egress: stream to the host: %s", strerror(-err));
}

static void on_tcp(void *userdata, int lfd, uint32_t events)
{
        net_egress *ne = userdata;
        (void)events;
        for (int i = 0; i < ACCEPT_BATCH; i++) {
                int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                init_log("egress: accept: %m");
                        return;
                }
                /* A refusal reaches the program as a reset: the host resets the
                 * stream and the mux closes a reset TCP end abortively. */
                struct sockaddr_storage dst;
                socklen_t dlen = sizeof(dst);
                char addr[INET6_ADDRSTRLEN], line[128];
                uint16_t port;
                if (getsockname(c, (struct sockaddr *)&dst, &dlen) < 0) {
                        safe_close(c);
                        continue;
                }
                if (dst.ss_family == AF_INET) {
                        const struct sockaddr_in *in = (const struct sockaddr_in *)&dst;
                        inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
                        port = ntohs(in->sin_port);
                } else {
                        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&dst;
                        inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
                        port = ntohs(in6->sin6_port);
                }
                int n = snprintf(line, sizeof(line), "connect %s %u\n", addr, port);
                smolvm_mux *mux = agent_channel_mux(ne->ch);
                int r = mux ? smolvm_mux_connect_first(mux, SMOLVM_EGRESS_PORT, c, line, (size_t)n, connect_done, ne)
                            : (safe_close(c), -ENOTCONN);
                if (r < 0)
                        init_log("egress: connect %s port %u: %s", addr, port, strerror(-r));
        }
}

/* ---- DNS: one question per datagram, answered by the host's verdict ---- */

/* Name of the one question of q (lowercased, dotted, no trailing dot) and the
 * end of the question. Returns 0 or -EINVAL (malformed, compressed, too long). */
static int dns_question(const uint8_t *q, size_t len, char *ret_name, size_t *ret_end, uint16_t *ret_qtype)
{
        if (len < 12 || (q[2] & 0x80) || (q[2] & 0x78) || q[4] != 0 || q[5] != 1)
                return -EINVAL; /* a response, not QUERY, or not exactly one question */
        size_t off = 12, n = 0;
        for (;;) {
                if (off >= len)
                        return -EINVAL;
                uint8_t l = q[off++];
                if (l == 0)
                        break;
                if (l > 63 || off + l > len || n + l + 1 > DNS_NAME_MAX + 1)
                        return -EINVAL;
                if (n > 0)
                        ret_name[n++] = '.';
                for (uint8_t i = 0; i < l; i++) {
                        char c = (char)q[off + i];
                        ret_name[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
                }
                off += l;
        }
        if (n == 0 || off + 4 > len)
                return -EINVAL;
        ret_name[n] = '\0';
        *ret_qtype = (uint16_t)(q[off] << 8 | q[off + 1]);
        *ret_end = off + 4;
        return 0;
}

static void dns_answer(net_egress *ne, dns_pending *p)
{
        uint8_t out[DNS_MSG_MAX + 16];
        struct in_addr a;
        bool ok = p->reply_len > 2 && p->reply[0] == 'A' && p->reply[1] == ' ' &&
                  inet_pton(AF_INET, p->reply + 2, &a) == 1;
        memcpy(out, p->query, p->query_len);
        size_t n = p->query_len;
        out[2] = (uint8_t)(0x84 | (p->query[2] & 0x01)); /* QR, AA, the client's RD */
        out[3] = ok ? 0x80 : 0x83;                         /* RA; NOERROR or NXDOMAIN */
        memset(out + 6, 0, 6);                             /* ANCOUNT, NSCOUNT, ARCOUNT */
        if (ok && (p->qtype == 1 || p->qtype == 255)) {
                static const uint8_t rr[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4 };
                memcpy(out + n, rr, sizeof(rr));
                memcpy(out + n + sizeof(rr), &a, 4);
                n += sizeof(rr) + 4;
                out[7] = 1;
        }
        (void)sendto(ne->dns_fd, out, n, MSG_DONTWAIT, (struct sockaddr *)&p->client, p->client_len);
}

static void dns_pending_done(dns_pending *p)
{
        (void)smolvm_evloop_del(p->ne->loop, p->fd);
        safe_close(p->fd);
        p->fd = -1;
}

static void on_dns_reply(void *userdata, int fd, uint32_t events)
{
        dns_pending *p = userdata;
        (void)events;
        ssize_t r = read(fd, p->reply + p->reply_len, sizeof(p->reply) - 1 - p->reply_len);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (r > 0) {
                p->reply_len += (size_t)r;
                p->reply[p->reply_len] = '\0';
                char *nl = memchr(p->reply, '\n', p->reply_len);
                if (!nl && p->reply_len < sizeof(p->reply) - 1)
                        return;
                if (nl) {
                        *nl = '\0';
                        p->reply_len = (size_t)(nl - p->reply);
                }
        } else {
                p->reply_len = 0; /* the host closed without a verdict: NXDOMAIN */
        }
        dns_answer(p->ne, p);
        dns_pending_done(p);
}

static void on_dns(void *userdata, int fd, uint32_t events)
{
        net_egress *ne = userdata;
        (void)events;
        for (int i = 0; i < ACCEPT_BATCH; i++) {
                uint8_t q[DNS_MSG_MAX];
                struct sockaddr_storage from;
                socklen_t flen = sizeof(from);
                ssize_t n = recvfrom(fd, q, sizeof(q), MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
                if (n < 0)
                        return;
                char name[DNS_NAME_MAX + 2], line[DNS_NAME_MAX + 16];
                size_t end;
                uint16_t qtype;
                if (dns_question(q, (size_t)n, name, &end, &qtype) < 0)
                        continue; /* not ours to answer */
                dns_pending *p = NULL;
                for (size_t k = 0; k < DNS_PENDING_MAX && !p; k++)
                        if (ne->dns[k].fd < 0)
                                p = &ne->dns[k];
                smolvm_mux *mux = agent_channel_mux(ne->ch);
                if (!p || !mux)
                        continue; /* busy: the client retries */
                int sv[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
                        continue;
                int len = snprintf(line, sizeof(line), "resolve %s\n", name);
                if (smolvm_mux_connect_first(mux, SMOLVM_EGRESS_PORT, sv[0], line, (size_t)len, connect_done, ne) < 0) {
                        safe_close(sv[1]);
                        continue;
                }
                p->ne = ne;
                p->fd = sv[1];
                memcpy(p->query, q, end);
                p->query_len = end;
                p->qtype = qtype;
                p->client = from;
                p->client_len = flen;
                p->reply_len = 0;
                if (smolvm_evloop_add(ne->loop, p->fd, EPOLLIN, on_dns_reply, p) < 0) {
                        safe_close(p->fd);
                        p->fd = -1;
                }
        }
}

static int dns_listener(void)
{
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        int one = 1;
        (void)setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(53) };
        inet_pton(AF_INET, SMOLVM_EGRESS_RESOLVER, &in.sin_addr);
        if (bind(fd, (struct sockaddr *)&in, sizeof(in)) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

/* ---- the whole ---- */

int net_egress_start(smolvm_evloop *loop, agent_channel *ch, net_egress **ret)
{
        *ret = NULL;
        _cleanup_free_ char *on = cmdline_get("smolvm.net");
        if (!on || strcmp(on, "1") != 0)
                return 0;
        net_egress *ne = calloc(1, sizeof(*ne));
        if (!ne)
                return -ENOMEM;
        ne->loop = loop;
        ne->ch = ch;
        ne->listen4 = ne->listen6 = ne->dns_fd = ne->prog_fd = ne->map_fd = ne->link_fd = -1;
        for (size_t k = 0; k < DNS_PENDING_MAX; k++)
                ne->dns[k].fd = -1;
        int r = route_local_all(AF_INET);
        if (r < 0)
                init_log("egress: route local 0.0.0.0/0 dev lo: %s", strerror(-r));
        int r6 = route_local_all(AF_INET6);
        if (r6 < 0)
                init_log("egress: route local ::/0 dev lo: %s", strerror(-r6));
        if (r >= 0)
                r = setup_redirect(ne);
        if (r >= 0) {
                ne->dns_fd = dns_listener();
                if (ne->dns_fd < 0)
                        init_log("egress: resolver on %s:53: %s", SMOLVM_EGRESS_RESOLVER, strerror(-ne->dns_fd));
                else
                        (void)smolvm_evloop_add(loop, ne->dns_fd, EPOLLIN, on_dns, ne);
                (void)smolvm_evloop_add(loop, ne->listen4, EPOLLIN, on_tcp, ne);
                if (ne->listen6 >= 0)
                        (void)smolvm_evloop_add(loop, ne->listen6, EPOLLIN, on_tcp, ne);
                static const char conf[] = "# smolvm: names are resolved by the host's egress policy\n"
                                           "nameserver " SMOLVM_EGRESS_RESOLVER "\n";
                /* /etc/resolv.conf may be a symlink (systemd-resolved): replace it. */
                (void)unlink("/etc/resolv.conf");
                int w = write_file_atomic("/etc/resolv.conf", conf, sizeof(conf) - 1, 0644);
                if (w < 0)
                        init_log("egress: write /etc/resolv.conf: %s", strerror(-w));
                init_log("egress: on (every TCP connection and DNS question goes to the host's policy)");
        } else {
                init_log("egress: off: this guest has no network");
        }
        *ret = ne;
        return 0;
}
