/* SPDX-License-Identifier: Apache-2.0 */
/* FUSE over a byte stream (docs/protocol.md, "FUSE over vsock"): raw linux/fuse.h
 * messages back to back, each delimited by its own header's len
 * (fuse_in_header.len for requests, fuse_out_header.len for replies). A message
 * whose len is below its header size or above SMOLVM_FUSE_STREAM_MAX breaks the
 * stream: framing is lost, the only safe move is to close.
 *
 * Two ends:
 *   - smolvm_fs_serve_stream(): the file server answering requests from a stream
 *     (smolvm-virtiofsd --stream-fd, sandboxed, for FUSE-over-vsock mounts; the
 *     guest agent for `smolvm-fs mount SANDBOX:/path`);
 *   - smolvm_fuse_relay(): a kernel FUSE connection (/dev/fuse) <-> a stream (the
 *     guest agent for fuse_mount; `smolvm-fs` on the host).
 *
 * Why not libfuse's session loop (it could be linked, statically too: Debian
 * ships libfuse3.a, and 3.14 has fuse_session_custom_io for a stream): it
 * decodes each request and calls a fuse_lowlevel_ops callback that must answer
 * it. The serving end already has its decoder, fs_server.c, which takes raw
 * messages because virtio-fs hands them over straight from guest memory; a
 * session in front would be a second decoder and op table for the same
 * protocol. The relay decodes nothing: it moves whole messages both ways at
 * once (replies drained while a request is still being sent), which a
 * request->callback->reply loop cannot do. What libfuse does well, mounting
 * (fusermount3 for a non-root user), smolvm-fs uses; the guest agent is root
 * and mounts /dev/fuse with mount(2). */
#pragma once

#include "fs_server.h"

/* Largest message in either direction: max_write (1 MiB) plus room for the
 * headers of a WRITE. Also the buffer /dev/fuse reads need: the kernel refuses a
 * read into a buffer smaller than in_header + write_in + max_write. */
#define SMOLVM_FUSE_STREAM_MAX_WRITE (1024u * 1024u)
#define SMOLVM_FUSE_STREAM_MAX (SMOLVM_FUSE_STREAM_MAX_WRITE + 4096u)

/* Serve FUSE requests arriving on fd (a blocking stream) with fs until the peer
 * closes it: read one request, answer it with smolvm_fs_handle(), write the
 * reply; requests without a reply (FORGET, BATCH_FORGET, INTERRUPT) are consumed.
 * Memory: two buffers of SMOLVM_FUSE_STREAM_MAX, whatever the peer sends.
 * Returns 0 on EOF between messages, -EPROTO for a bad length (or a request the
 * server refuses to answer at all), -EPIPE for EOF inside a message, or the
 * negative errno of a failed read/write. SIGPIPE is never raised. */
int smolvm_fs_serve_stream(smolvm_fs *fs, int fd);

/* Relay between a kernel FUSE connection and a stream until either ends:
 * requests read from dev_fuse_fd (whole, one read each) are written to stream_fd;
 * replies from stream_fd are reassembled by their header len and written to
 * dev_fuse_fd with one write each. Both fds are switched to O_NONBLOCK; replies
 * are always drained from the stream even while a request is still being sent,
 * so a peer that answers while we send can never deadlock us. The INIT reply's
 * max_write/max_pages are clamped so that no later message can exceed
 * SMOLVM_FUSE_STREAM_MAX.
 * Returns 0 when the stream ends cleanly (EOF between messages) or the file
 * system was unmounted (ENODEV from /dev/fuse), -ECANCELED once cancel_fd
 * (if >= 0) is readable, -EPROTO for a bad length, -EPIPE for EOF inside a
 * message, or another negative errno. The kernel's pending requests are not
 * answered: the caller unmounts / closes dev_fuse_fd, which fails them. */
int smolvm_fuse_relay_cancellable(int dev_fuse_fd, int stream_fd, int cancel_fd);

/* The requests a relay sent and has not seen answered, across relay runs: a
 * stream lost under a live FUSE connection (the guest after a snapshot
 * restore, docs/internals.md "Mounts across snapshots") leaves them waiting in
 * the kernel; smolvm_fuse_pending_fail() answers each with an error so no
 * process hangs, before the relay goes on over a new stream. Requests without
 * a reply (FORGET, BATCH_FORGET, INTERRUPT, NOTIFY_REPLY) are not kept. At most
 * SMOLVM_FUSE_PENDING_MAX are tracked (the kernel's own limits keep far fewer
 * in flight); past it n_untracked counts the ones that could not be. */
#define SMOLVM_FUSE_PENDING_MAX 4096u
typedef struct smolvm_fuse_pending {
        uint64_t unique[SMOLVM_FUSE_PENDING_MAX];
        uint32_t n;
        uint32_t n_untracked;
} smolvm_fuse_pending;
/* smolvm_fuse_relay_cancellable() keeping pending (may be NULL) up to date. */
int smolvm_fuse_relay_tracked(int dev_fuse_fd, int stream_fd, int cancel_fd, smolvm_fuse_pending *pending);
/* Answer every pending request with err (negative errno) on dev_fuse_fd and
 * forget them. Returns how many were answered. */
unsigned smolvm_fuse_pending_fail(smolvm_fuse_pending *pending, int dev_fuse_fd, int err);
int smolvm_fuse_relay(int dev_fuse_fd, int stream_fd);

/* The same relay for an event loop (the guest's PID 1 serves its FUSE-over-vsock
 * mounts this way, with no process of their own): the caller waits for the
 * events smolvm_fuse_relay_ev_events() asks for and hands what came to
 * smolvm_fuse_relay_ev_step(). Requests go out as soon as the kernel queues them
 * (up to 32 a step) and replies are taken in any order, so the kernel may have
 * as many requests in flight as it likes. Never blocks.
 * new: switches both fds to O_NONBLOCK and allocates the two message buffers
 * (2 x SMOLVM_FUSE_STREAM_MAX); the fds stay the caller's. pending as for
 * smolvm_fuse_relay_tracked() (may be NULL). Returns 0 or negative errno. */
typedef struct smolvm_fuse_relay_ev smolvm_fuse_relay_ev;
int smolvm_fuse_relay_ev_new(int dev_fuse_fd, int stream_fd, smolvm_fuse_pending *pending, smolvm_fuse_relay_ev **ret);
/* Accepts NULL. Closes nothing. */
void smolvm_fuse_relay_ev_free(smolvm_fuse_relay_ev *rl);
/* The poll(2)/epoll events (POLLIN, POLLOUT) to wait for now on each fd; 0 for
 * /dev/fuse while a request is still being sent. */
void smolvm_fuse_relay_ev_events(const smolvm_fuse_relay_ev *rl, uint32_t *ret_dev, uint32_t *ret_stream);
/* Move what the events allow. Returns 1 to go on, and when the relay is over
 * what smolvm_fuse_relay_tracked() returns (0: a clean end of either side). */
int smolvm_fuse_relay_ev_step(smolvm_fuse_relay_ev *rl, uint32_t dev_revents, uint32_t stream_revents);
/* After a 0 from step: true if it was the file system that ended (unmounted,
 * aborted), false if it was the stream. */
bool smolvm_fuse_relay_ev_dev_gone(const smolvm_fuse_relay_ev *rl);
/* Go on over a new stream (the old one ended): what was half sent or half
 * received is dropped; the caller fails the pending requests first. Returns 0
 * or negative errno. */
int smolvm_fuse_relay_ev_set_stream(smolvm_fuse_relay_ev *rl, int stream_fd);
