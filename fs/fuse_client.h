/* SPDX-License-Identifier: Apache-2.0 */
/* Open a FUSE stream to a VM's guest agent: hybrid vsock to the agent port
 * (docs/protocol.md), the op's REQUEST frame, and its answer. After a RESULT
 * {"ok":true} the socket carries raw FUSE messages (fuse_stream.h).
 * Host side only; blocking, bounded in time. The handshake and the answer's
 * validation are common/hvsock_client.h's and common/agent_client.h's. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Give up on the handshake / the agent's answer after this long. */
#define SMOLVM_FUSE_CLIENT_TIMEOUT_MS 30000u

/* Connect to <vm_dir>/vsock.sock, CONNECT to the agent, send request_json as the
 * REQUEST frame and wait for the answer. Returns the connected socket (blocking,
 * O_CLOEXEC) once the agent answered RESULT with "ok": true, or a negative
 * errno with a message in errbuf naming the step: the agent's own errno for an
 * ERROR frame (its message is copied, sanitised), -ECONNREFUSED (no VM
 * listening / agent refused), -ETIMEDOUT, -EPROTO / -EBADMSG (a malformed
 * answer), -ECONNRESET (the stream closed without an answer). */
int smolvm_fuse_client_open(const char *vm_dir, const char *request_json, char *errbuf, size_t errbuf_len);

/* The same REQUEST/answer exchange on fd, already a stream to the agent port
 * (the supervisor opens it through its own mux). deadline_ms: now_ms() clock.
 * Returns 0 once the agent answered RESULT {"ok": true}, else a negative errno
 * with errbuf set as above. Reads exactly the answer, nothing after it; uses
 * only poll, read and send (smolvm-virtiofsd calls it under seccomp). */
int smolvm_fuse_client_request(int fd, const char *request_json, uint64_t deadline_ms, char *errbuf,
                               size_t errbuf_len);
