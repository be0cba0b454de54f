/* SPDX-License-Identifier: Apache-2.0 */
/* A byte relay between two connected sockets, both ways, with half-close
 * passed through and a bounded buffer per direction: what a port forward does
 * on each side of the VM boundary (the supervisor's TCP listener <-> an agent
 * stream; the guest agent's stream <-> the guest's TCP server).
 *
 * No I/O of its own beyond read/write/shutdown on the two fds (non-blocking,
 * the caller's): smolvm_relay_step() moves what it can, smolvm_relay_events()
 * says what to wait for, so it fits poll() (the guest handler) and an evloop
 * (the supervisor) alike. Backpressure: a direction whose buffer is full stops
 * reading its source until the destination took the bytes, so a slow reader
 * slows the writer and memory stays at 2 * SMOLVM_RELAY_BUF per relay.
 *
 * EOF on one side becomes shutdown(SHUT_WR) on the other once the buffered
 * bytes are written; the relay is finished when both directions are. A write
 * that fails (the destination is gone: EPIPE, ECONNRESET) or a read error ends
 * the whole relay: the caller closes both fds. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes buffered per direction. */
#define SMOLVM_RELAY_BUF (64u * 1024u)

typedef struct smolvm_relay_dir {
        uint8_t *buf;   /* SMOLVM_RELAY_BUF bytes */
        size_t off;     /* first byte not yet written */
        size_t len;     /* bytes held, from off */
        bool eof;       /* the source said EOF */
        bool shut;      /* the destination was shut for writing */
        uint64_t n_bytes; /* relayed so far */
} smolvm_relay_dir;

typedef struct smolvm_relay {
        int fd[2];               /* not owned */
        smolvm_relay_dir dir[2]; /* dir[i]: bytes read from fd[i], written to fd[1 - i] */
} smolvm_relay;

/* Prepare a relay between fd_a and fd_b (non-blocking sockets, still the
 * caller's). Returns 0 or -ENOMEM. */
int smolvm_relay_init(smolvm_relay *r, int fd_a, int fd_b);
/* Move what can move without blocking. Returns 1 when both directions are
 * finished (EOF relayed each way), 0 to be called again after an event, or a
 * negative errno: a read or write failed (-EPIPE, -ECONNRESET, ...). */
int smolvm_relay_step(smolvm_relay *r);
/* What fd[i] must be watched for (POLLIN/POLLOUT, equal to EPOLLIN/EPOLLOUT),
 * 0 for nothing. */
uint32_t smolvm_relay_events(const smolvm_relay *r, int i);
/* Free the buffers (not the fds). NULL-safe, idempotent. */
void smolvm_relay_done(smolvm_relay *r);
