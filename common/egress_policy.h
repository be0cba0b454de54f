/* SPDX-License-Identifier: Apache-2.0 */
/* The egress policy (DIR/net.json, docs/internals.md "Egress"): which names and
 * ports a VM may reach, and what is pinned. Host-only: libsmolvm checks patterns
 * with it, the supervisor decides with it. Pure functions, no I/O but the load. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define EGRESS_MAX_RULES 256u
#define EGRESS_NAME_MAX 253u

typedef struct egress_pin {
        char *name;
        struct sockaddr_storage addr; /* port 0 */
} egress_pin;

typedef struct egress_policy {
        bool open; /* "mode": "open": every public name, minus "deny" */
        char *allow[EGRESS_MAX_RULES];
        size_t n_allow;
        char *deny[EGRESS_MAX_RULES];
        size_t n_deny;
        egress_pin pins[EGRESS_MAX_RULES];
        size_t n_pins;
} egress_policy;

/* Load path ({"mode": "allow"|"open", "allow": [PATTERN], "deny": [PATTERN],
 * "hosts": {"NAME": "IP"}}). Returns 0 or a negative errno with err set. */
int egress_policy_load(const char *path, egress_policy *ret, char *err, size_t err_len);
void egress_policy_done(egress_policy *p);

/* Whether pattern (NAME, *.SUFFIX, ADDRESS, each optionally :PORT) is well formed. */
bool egress_pattern_valid(const char *pattern);
/* Whether pattern matches name (lowercase) and port (0: any port, for DNS). */
bool egress_pattern_match(const char *pattern, const char *name, uint16_t port);
/* Whether patterns a and b name the same host (any ports). */
bool egress_pattern_same_host(const char *a, const char *b);
/* The verdict for name (a DNS name or an address literal) and port (0: DNS). */
bool egress_allowed(const egress_policy *p, const char *name, uint16_t port);
/* Whether name was allowed by an explicit pattern naming it (not by open mode). */
bool egress_explicit(const egress_policy *p, const char *name, uint16_t port);
/* The pin for name, or NULL. */
const egress_pin *egress_pin_find(const egress_policy *p, const char *name);
/* Whether addr may be reached when no pin or explicit address allowed it: not
 * loopback, private, link-local, CGNAT, multicast, unspecified, the synthetic
 * range, or one of the host's own addresses. */
bool egress_addr_public(const struct sockaddr *addr);
/* A lowercase DNS name of letters, digits, '-', '_' and dots, <= 253 bytes. */
bool egress_name_valid(const char *name);
