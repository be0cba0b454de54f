/* SPDX-License-Identifier: Apache-2.0 */
/* bench/lane_spike.sh's guest side in C: lane frames -> a loopback TCP socket -> a
 * second process (what the agent's egress relay would do with lane bytes).
 * Built static on the host, run in the guest. usage: lane_relay IFACE MIB WIN;
 * prints "seconds frames 0 bytes". */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv)
{
        if (argc < 4) return 2;
        uint64_t n = strtoull(argv[2], 0, 10) << 20, win = strtoull(argv[3], 0, 10);
        int ls = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof(a);
        if (bind(ls, (void *)&a, sizeof(a)) || listen(ls, 1) || getsockname(ls, (void *)&a, &al)) { perror("listen"); return 1; }
        pid_t child = fork();
        if (child == 0) {
                int c = socket(AF_INET, SOCK_STREAM, 0);
                if (connect(c, (void *)&a, sizeof(a))) _exit(3);
                static char b[256 << 10];
                uint64_t k = 0;
                ssize_t r;
                while ((r = read(c, b, sizeof(b))) > 0) k += (uint64_t)r;
                _exit(k == n ? 0 : 1);
        }
        int out = accept(ls, 0, 0);
        /* protocol 0, the lane's at bind: see client.py in lane_spike.sh */
        int s = socket(AF_PACKET, SOCK_RAW, 0);
        int rb = 8 << 20;
        setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof(rb));
        struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(0x88b5), .sll_ifindex = (int)if_nametoindex(argv[1]) };
        if (bind(s, (void *)&ll, sizeof(ll))) { perror("bind"); return 1; }
        unsigned char hdr[15] = { 2, 0, 0, 0, 0, 1, 0x52, 0x54, 0, 0, 0, 2, 0x88, 0xb5 };
        unsigned char go[31];
        memcpy(go, hdr, 14); go[14] = 'G'; memcpy(go + 15, &n, 8); memcpy(go + 23, &win, 8);
        double t0 = now();
        send(s, go, sizeof(go), 0);
        static unsigned char buf[70000];
        uint64_t got = 0, last = 0;
        struct timeval tv = { 1, 0 };
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        int frames = 0;
        while (got < n) {
                ssize_t r = recv(s, buf, sizeof(buf), 0);
                if (r < 0) { if (!frames) { send(s, go, sizeof(go), 0); continue; } perror("recv"); return 1; }
                if (r < 15 || buf[14] != 'D') continue;
                frames++;
                for (size_t off = 15; off < (size_t)r;) {
                        ssize_t w = write(out, buf + off, (size_t)r - off);
                        if (w <= 0) { perror("write"); return 1; }
                        off += (size_t)w;
                }
                got += (uint64_t)r - 15;
                if (got - last >= win / 4 || got >= n) {
                        unsigned char ack[23];
                        memcpy(ack, hdr, 14); ack[14] = 'A'; memcpy(ack + 15, &got, 8);
                        send(s, ack, sizeof(ack), 0);
                        last = got;
                }
        }
        close(out);
        int st;
        waitpid(child, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) { fprintf(stderr, "loopback reader failed\n"); return 1; }
        printf("%.3f %d 0 %llu\n", now() - t0, frames, (unsigned long long)got);
        return 0;
}
