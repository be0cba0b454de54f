/* SPDX-License-Identifier: Apache-2.0 */
/* Hybrid vsock + one agent REQUEST, then hand the socket over to FUSE
 * (fuse_client.h). The handshake is common/hvsock_client.c's and the answer
 * common/agent_client.c's (SMOLVM_AGENT_REPLY_ANSWER): neither reads a byte
 * past what it owns, and the guest may start sending FUSE messages right
 * after its answer. */
#include "fuse_client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "agent_client_io.h"
#include "hvsock_client.h"
#include "util.h"
#include "vmdir.h"

/* An answer to fuse_mount/fuse_serve is a short JSON object. */
#define ANSWER_MAX (64u * 1024u)

int smolvm_fuse_client_request(int fd, const char *request_json, uint64_t deadline, char *errbuf,
                               size_t errbuf_len)
{
        smolvm_agent_client c;
        int r = smolvm_agent_client_init(&c, SMOLVM_AGENT_REPLY_ANSWER, ANSWER_MAX);
        if (r == 0)
                r = smolvm_agent_client_request(&c, request_json, strlen(request_json));
        if (r < 0) {
                smolvm_agent_client_done(&c);
                return errbuf_fail(r, errbuf, errbuf_len, "%s", r == -E2BIG ? "request too large" : "out of memory");
        }
        smolvm_agent_io_opts o = { .deadline_ms = deadline, .cancel_fd = -1 };
        smolvm_agent_event ev;
        r = smolvm_agent_client_io(&c, fd, &o, &ev);
        if (r < 0)
                errbuf_fail(r, errbuf, errbuf_len, "%s%s", smolvm_agent_client_why(&c),
                            r == -ECONNRESET ? " (an agent too old for FUSE, or the VM stopped)" : "");
        else if (r == 1 && ev.kind == SMOLVM_AGENT_EV_ERROR)
                r = errbuf_fail(ev.error, errbuf, errbuf_len, "%s", ev.message);
        else if (r == 1 && ev.kind == SMOLVM_AGENT_EV_RESULT)
                r = 0;
        else /* a finished REPLY_ANSWER client ends at a RESULT or an ERROR */
                r = errbuf_fail(-EPROTO, errbuf, errbuf_len, "the guest agent sent no answer");
        smolvm_agent_client_done(&c);
        return r;
}

int smolvm_fuse_client_open(const char *vm_dir, const char *request_json, char *errbuf, size_t errbuf_len)
{
        uint64_t deadline = now_ms() + SMOLVM_FUSE_CLIENT_TIMEOUT_MS;
        if (strlen(request_json) > SMOLVM_FRAME_MAX_PAYLOAD)
                return errbuf_fail(-E2BIG, errbuf, errbuf_len, "request too large");

        smolvm_hvsock_conn hc;
        _cleanup_close_ int fd = smolvm_hvsock_connect(&hc, vm_dir, SMOLVM_AGENT_PORT, deadline, -1);
        if (fd < 0 && strcmp(hc.why, "connect") == 0) /* no socket, no supervisor listening */
                return errbuf_fail(fd == -ENOENT ? -ECONNREFUSED : fd, errbuf, errbuf_len,
                                   "connect %s/" VMDIR_VSOCK ": %s", vm_dir, strerror(-fd));
        if (fd == -ECONNREFUSED && hc.step == SMOLVM_HVSOCK_STEP_REPLY)
                return errbuf_fail(fd, errbuf, errbuf_len,
                                   "the guest refused the connection to port %u (is the VM running?)",
                                   SMOLVM_AGENT_PORT);
        if (fd < 0)
                return errbuf_fail(fd, errbuf, errbuf_len, "hybrid vsock handshake: %s%s%s", hc.why,
                                   fd == -EPROTO ? "" : ": ", fd == -EPROTO ? "" : strerror(-fd));
        /* The relay that takes over expects a blocking socket (fuse_client.h). */
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
                return errbuf_fail(negative_errno(), errbuf, errbuf_len, "fcntl: %s", strerror(errno));
        int r = smolvm_fuse_client_request(fd, request_json, deadline, errbuf, errbuf_len);
        if (r < 0)
                return r;
        return TAKE_FD(fd);
}
