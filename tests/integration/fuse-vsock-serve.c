/* SPDX-License-Identifier: Apache-2.0 */
/* Test helper for FUSE over vsock, host -> guest (t_fuse_vsock.sh): ask the
 * guest agent of the VM in VM_DIR to mount GUEST_PATH with the "fuse_mount" op,
 * then serve HOST_DIR to it, read-only, with smolvm_fs_serve_stream() — what the
 * supervisor does for --mount-transport vsock.
 *
 *     fuse-vsock-serve [--guest-rw] [--state-out FILE | --reattach FILE] VM_DIR GUEST_PATH HOST_DIR
 *
 * --guest-rw mounts without MS_RDONLY in the guest, so that only our server
 * stands between the guest and the host tree. Across a snapshot (by hand, what
 * the supervisor does with smolvm-virtiofsd): --state-out saves the server's
 * state (smolvm_fs_state_save) to FILE on each SIGUSR1 and prints "saved";
 * --reattach loads FILE and sends the "fuse_mount" with "reattach": true, so a
 * restored guest's existing mount at GUEST_PATH is served on (t_snapshot_mounts).
 * Prints "ready" once the guest has mounted, serves until the guest side ends
 * (exit 0) or SIGTERM/SIGINT (exit 0, closing the stream, which makes the guest
 * detach the mount). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileutil.h"
#include "fuse_client.h"
#include "fuse_stream.h"
#include "util.h"

static int stream = -1;
static smolvm_fs *fs;
static int serve_ret;

static void *serve(void *arg)
{
        (void)arg;
        serve_ret = smolvm_fs_serve_stream(fs, stream);
        return NULL;
}

int main(int argc, char **argv)
{
        bool guest_rw = argc > 1 && strcmp(argv[1], "--guest-rw") == 0;
        if (guest_rw) {
                argv++;
                argc--;
        }
        const char *state_out = NULL, *reattach = NULL;
        if (argc > 2 && (strcmp(argv[1], "--state-out") == 0 || strcmp(argv[1], "--reattach") == 0)) {
                *(argv[1][2] == 's' ? &state_out : &reattach) = argv[2];
                argv += 2;
                argc -= 2;
        }
        if (argc != 4) {
                fprintf(stderr, "usage: fuse-vsock-serve [--guest-rw] [--state-out FILE | --reattach FILE] VM_DIR "
                                "GUEST_PATH HOST_DIR\n");
                return 2;
        }
        smolvm_fs_config cfg = { .root = argv[3], .read_only = true };
        int r = smolvm_fs_new(&cfg, &fs);
        if (r < 0) {
                fprintf(stderr, "fuse-vsock-serve: %s: %s\n", argv[3], strerror(-r));
                return 1;
        }
        char err[1024] = "";
        if (reattach) {
                static uint8_t buf[1 << 20];
                _cleanup_close_ int sfd = open(reattach, O_RDONLY | O_CLOEXEC);
                ssize_t n = sfd < 0 ? -1 : read(sfd, buf, sizeof(buf));
                if (n < 0 || smolvm_fs_state_load(fs, buf, (size_t)n, err, sizeof(err)) < 0) {
                        fprintf(stderr, "fuse-vsock-serve: %s: %s\n", reattach, n < 0 ? strerror(errno) : err);
                        return 1;
                }
        }
        json_t *jreq = json_pack("{s:s,s:s,s:b,s:b}", "op", "fuse_mount", "path", argv[2], "read_only", !guest_rw,
                                 "reattach", reattach != NULL);
        char *req = jreq ? json_dumps(jreq, JSON_COMPACT) : NULL;
        json_decref(jreq);
        if (!req)
                return 2;
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        stream = smolvm_fuse_client_open(argv[1], req, err, sizeof(err));
        free(req);
        if (stream < 0) {
                fprintf(stderr, "fuse-vsock-serve: %s\n", err);
                return 1;
        }
        printf("ready\n");
        fflush(stdout);

        /* Serve in a thread; the main thread waits for a signal or the end. */
        pthread_t t;
        if (pthread_create(&t, NULL, serve, NULL) != 0)
                return 1;
        int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sfd < 0)
                return 1;
        /* The thread's end is noticed by a periodic tryjoin. */
        while (pthread_tryjoin_np(t, NULL) != 0) {
                struct pollfd p = { .fd = sfd, .events = POLLIN };
                struct signalfd_siginfo si;
                if (poll(&p, 1, 100) > 0 && read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR1) {
                        _cleanup_free_ uint8_t *state = NULL;
                        size_t len = 0;
                        r = state_out ? smolvm_fs_state_save(fs, 1 << 20, &state, &len) : -EINVAL;
                        if (r == 0)
                                r = write_file_atomic(state_out, state, len, 0600);
                        if (r == 0)
                                printf("saved\n");
                        else
                                printf("not saved: %s\n", strerror(-r));
                        fflush(stdout);
                } else if (p.revents) {
                        shutdown(stream, SHUT_RDWR);
                        pthread_join(t, NULL);
                        return 0;
                }
        }
        if (serve_ret < 0)
                fprintf(stderr, "fuse-vsock-serve: serve: %s\n", strerror(-serve_ret));
        smolvm_fs_free(fs);
        return serve_ret < 0 ? 1 : 0;
}
