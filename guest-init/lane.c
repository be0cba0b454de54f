/* SPDX-License-Identifier: Apache-2.0 */
/* The guest's end of the lane (docs/protocol.md, "The lane"; common/lane.h):
 * when the VMM gives the lane's virtio-net device (found by its MAC), PID 1
 * brings its interface up with no address and a large MTU, reads it through a
 * packet socket bound to the lane's ethertype, and asks the host, on each new
 * channel, to send its bytes that way (smolvm_mux_lane_request). Without the
 * device nothing changes: every byte stays on the channel. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "lane_io.h"
#include "mux.h"
#include "util.h"

/* Each stream's receive window once the host's bytes ride the lane
 * (smolvm_mux_set_rx_window; 256 KiB on the channel): the host waits for our
 * credit less, and we write a stream's local fd in quarters of it (fewer
 * writes, fewer wake-ups of its reader, fewer CREDIT_UPDATEs on the channel). */
#define LANE_STREAM_WINDOW (1u << 20)
/* What we ask the host to keep in flight on the lane (all streams: more than
 * one stream's window, or the lane's window would stall a stream first), and
 * the socket buffer that holds it (each ~64 KiB frame costs ~68 KiB of it:
 * twice the window leaves room). */
#define LANE_WINDOW (2u << 20)
#define LANE_RCVBUF (8 << 20)
#define LANE_NICE (-10)

struct agent_lane {
        int fd;
        smolvm_lane_guest g;
        uint64_t epoch;
        char ifname[IF_NAMESIZE];
};

/* The lane's interface: the one with the lane's MAC address. */
static int find_iface(char ret[IF_NAMESIZE])
{
        DIR *d = opendir("/sys/class/net");
        if (!d)
                return -ENODEV;
        int r = -ENODEV;
        struct dirent *de;
        while ((de = readdir(d))) {
                char p[300], mac[64];
                if (de->d_name[0] == '.' || strlen(de->d_name) >= IF_NAMESIZE)
                        continue;
                snprintf(p, sizeof(p), "/sys/class/net/%s/address", de->d_name);
                if (read_line_file(p, mac, sizeof(mac)) < 0 || strcasecmp(mac, SMOLVM_LANE_GUEST_MAC_STR) != 0)
                        continue;
                snprintf(ret, IF_NAMESIZE, "%s", de->d_name);
                r = 0;
                break;
        }
        closedir(d);
        return r;
}

/* No IPv6 on the lane (the kernel would send router solicitations and MLD
 * reports on it), the lane's MTU, up. */
static int iface_up(const char *ifname)
{
        char p[300];
        snprintf(p, sizeof(p), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
        _cleanup_close_ int v6 = open(p, O_WRONLY | O_CLOEXEC);
        if (v6 >= 0 && write(v6, "1", 1) != 1)
                init_log("lane: %s: %m", p);
        _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return negative_errno();
        struct ifreq ifr = { 0 };
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
        ifr.ifr_mtu = (int)SMOLVM_LANE_MTU;
        if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
                return negative_errno();
        if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                return negative_errno();
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
                return negative_errno();
        return 0;
}

static int lane_socket(const char *ifname)
{
        unsigned idx = if_nametoindex(ifname);
        if (!idx)
                return negative_errno();
        /* Protocol 0 here, the ethertype at bind(): a socket opened with a
         * protocol is hooked on every device at once, and bind() then unhooks
         * it with synchronize_rcu(), which once waited > 9 minutes in our TCG
         * guest (bench/lane_spike.sh). */
        _cleanup_close_ int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        int sz = LANE_RCVBUF;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
                return negative_errno();
        struct sockaddr_ll sll = {
                .sll_family = AF_PACKET,
                .sll_protocol = htons(SMOLVM_LANE_ETHERTYPE),
                .sll_ifindex = (int)idx,
        };
        if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

/* PID 1 relays the lane's bytes to the guest's programs: it runs ahead of
 * them. At nice 0 a reader woken by each write preempts PID 1 at once and takes
 * one frame per wake-up, two context switches a frame; ahead of it, PID 1
 * drains what has arrived and the reader takes it in larger reads. Our
 * children (commands, handlers) start at nice 0 (SCHED_RESET_ON_FORK). */
static void relay_ahead(void)
{
        struct sched_param sp = { 0 };
        if (sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &sp) < 0 ||
            setpriority(PRIO_PROCESS, 0, LANE_NICE) < 0)
                init_log("lane: cannot raise PID 1's priority: %m");
}

int agent_lane_open(agent_lane **ret)
{
        *ret = NULL;
        char ifname[IF_NAMESIZE];
        int r = find_iface(ifname);
        if (r < 0)
                return r; /* no device: no lane, quietly */
        r = iface_up(ifname);
        if (r < 0) {
                init_log("lane: bringing %s up: %s (staying on the channel)", ifname, strerror(-r));
                return r;
        }
        int fd = lane_socket(ifname);
        if (fd < 0) {
                init_log("lane: packet socket on %s: %s (staying on the channel)", ifname, strerror(-fd));
                return fd;
        }
        agent_lane *l = calloc(1, sizeof(*l));
        if (!l) {
                safe_close(fd);
                return -ENOMEM;
        }
        relay_ahead();
        l->fd = fd;
        l->g.fd = fd;
        snprintf(l->ifname, sizeof(l->ifname), "%s", ifname);
        /* The first epoch is random; each channel after it takes the next, so a
         * restored guest never takes its snapshot's frames (still in the
         * device's ring) for its own. */
        if (getrandom(&l->epoch, sizeof(l->epoch), GRND_NONBLOCK) != (ssize_t)sizeof(l->epoch)) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                l->epoch = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        }
        *ret = l;
        return 0;
}

int agent_lane_request(agent_lane *l, smolvm_mux *mux)
{
        l->epoch++;
        smolvm_lane_rx_init(&l->g.rx, l->epoch, LANE_WINDOW);
        smolvm_mux_lane lane = { .recv = smolvm_lane_guest_recv, .fd = l->fd, .userdata = &l->g };
        int r = smolvm_mux_set_rx_window(mux, LANE_STREAM_WINDOW);
        if (r == 0)
                r = smolvm_mux_lane_request(mux, l->epoch, LANE_WINDOW, &lane);
        if (r < 0)
                init_log("lane: asking the host for it on %s: %s", l->ifname, strerror(-r));
        return r;
}
