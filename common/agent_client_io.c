/* SPDX-License-Identifier: Apache-2.0 */
/* Blocking I/O around the agent client state machine (agent_client_io.h). */
#include "agent_client_io.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

int smolvm_agent_client_read(smolvm_agent_client *c, int fd)
{
        size_t len;
        uint8_t *buf = smolvm_agent_client_rx_buf(c, &len);
        if (len == 0)
                return smolvm_agent_client_error(c);
        ssize_t n = read(fd, buf, len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return 0;
        if (n < 0 && errno != ECONNRESET)
                return smolvm_agent_client_fail(c, negative_errno(), "read from the guest agent: %s", strerror(errno));
        if (n <= 0)
                smolvm_agent_client_rx_eof(c);
        else
                smolvm_agent_client_rx_commit(c, (size_t)n);
        return 0;
}

int smolvm_agent_client_write(smolvm_agent_client *c, int fd)
{
        size_t len;
        const uint8_t *buf = smolvm_agent_client_tx_buf(c, &len);
        if (len == 0)
                return smolvm_agent_client_error(c);
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return 0;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
                smolvm_agent_client_tx_close(c); /* its answer says why */
                return 0;
        }
        if (n < 0)
                return smolvm_agent_client_fail(c, negative_errno(), "send to the guest agent: %s", strerror(errno));
        smolvm_agent_client_tx_commit(c, (size_t)n);
        return 0;
}

int smolvm_agent_client_io(smolvm_agent_client *c, int fd, const smolvm_agent_io_opts *o,
                           smolvm_agent_event *ret_ev)
{
        for (;;) {
                int r;
                if (ret_ev && (smolvm_agent_client_ready(c) || smolvm_agent_client_finished(c))) {
                        r = smolvm_agent_client_next(c, ret_ev);
                        if (r != 0 || smolvm_agent_client_finished(c))
                                return r;
                        continue;
                }
                size_t tx_len, rx_len;
                (void)smolvm_agent_client_tx_buf(c, &tx_len);
                if (!ret_ev) {
                        if (smolvm_agent_client_error(c))
                                return smolvm_agent_client_error(c);
                        if (smolvm_agent_client_ready(c) || smolvm_agent_client_finished(c) ||
                            smolvm_agent_client_tx_closed(c))
                                return 1;
                        if (tx_len == 0)
                                return 0;
                }
                (void)smolvm_agent_client_rx_buf(c, &rx_len);
                if (smolvm_agent_client_error(c))
                        continue; /* reported above */
                short events = (short)((tx_len ? POLLOUT : 0) | (rx_len ? POLLIN : 0));
                uint64_t deadline = o->deadline_ms;
                if (o->idle_ms && (!deadline || now_ms() + o->idle_ms < deadline))
                        deadline = now_ms() + o->idle_ms;
                int rev = fd_wait(fd, events, deadline, o->cancel_fd);
                if (rev == -ETIMEDOUT) {
                        bool idle = !o->deadline_ms || deadline < o->deadline_ms;
                        const char *what = rx_len ? "no answer from the guest agent" : "the guest agent took no data";
                        if (idle && o->idle_ms % 1000u == 0)
                                return smolvm_agent_client_fail(c, -ETIMEDOUT, "%s for %u s", what, o->idle_ms / 1000u);
                        if (idle)
                                return smolvm_agent_client_fail(c, -ETIMEDOUT, "%s for %u ms", what, o->idle_ms);
                        return smolvm_agent_client_fail(c, -ETIMEDOUT, "%s in time", what);
                }
                if (rev == -ECANCELED)
                        return smolvm_agent_client_fail(c, -ECANCELED, "interrupted");
                if (rev < 0)
                        return smolvm_agent_client_fail(c, rev, "poll: %s", strerror(-rev));
                if (tx_len && (rev & (POLLOUT | POLLERR | POLLHUP)) && (r = smolvm_agent_client_write(c, fd)) < 0)
                        return r;
                if (rx_len && (rev & (POLLIN | POLLERR | POLLHUP)) && (r = smolvm_agent_client_read(c, fd)) < 0)
                        return r;
        }
}
