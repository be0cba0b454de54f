/* SPDX-License-Identifier: Apache-2.0 */
/* Test helper for FUSE over vsock, host -> guest (t_fuse_vsock.sh): ask the
 * guest agent of the VM in VM_DIR to mount GUEST_PATH with the "fuse_mount" op,
 * then serve HOST_DIR to it, read-only, with smolvm_fs_serve_stream() — what the
 * supervisor does for --mount-transport vsock.
 *
 *     fuse-vsock-serve [--guest-rw] VM_DIR GUEST_PATH HOST_DIR
 *
 * --guest-rw mounts without MS_RDONLY in the guest, so that only our server
 * stands between the guest and the host tree. Prints "ready" once the guest has
 * mounted, serves until the guest side ends (exit 0) or SIGTERM/SIGINT (exit 0,
 * closing the stream, which makes the guest detach the mount). */
#include <errno.h>
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
#include <unistd.h>

#include "fuse_client.h"
#include "fuse_stream.h"

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
        if (argc != 4) {
                fprintf(stderr, "usage: fuse-vsock-serve [--guest-rw] VM_DIR GUEST_PATH HOST_DIR\n");
                return 2;
        }
        smolvm_fs_config cfg = { .root = argv[3], .read_only = true };
        int r = smolvm_fs_new(&cfg, &fs);
        if (r < 0) {
                fprintf(stderr, "fuse-vsock-serve: %s: %s\n", argv[3], strerror(-r));
                return 1;
        }
        char err[1024] = "";
        json_t *jreq = json_pack("{s:s,s:s,s:b}", "op", "fuse_mount", "path", argv[2], "read_only", !guest_rw);
        char *req = jreq ? json_dumps(jreq, JSON_COMPACT) : NULL;
        json_decref(jreq);
        if (!req)
                return 2;
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
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
                if (poll(&p, 1, 100) > 0) {
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
