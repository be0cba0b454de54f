/* SPDX-License-Identifier: Apache-2.0 */
/* The egress policy: parsing DIR/net.json and the verdicts (egress_policy.h). */
#include "egress_policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

bool egress_name_valid(const char *name)
{
        size_t n = strlen(name), label = 0;
        if (n == 0 || n > EGRESS_NAME_MAX || name[0] == '.' || name[n - 1] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (c == '.') {
                        if (label == 0)
                                return false;
                        label = 0;
                        continue;
                }
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
                        return false;
                if (++label > 63)
                        return false;
        }
        return true;
}

/* Split "HOST[:PORT]" (HOST may be "[v6]"). Returns false if malformed. */
static bool pattern_split(const char *pattern, char *host, size_t host_len, uint16_t *ret_port)
{
        const char *end = pattern + strlen(pattern), *colon = NULL;
        const char *h = pattern;
        size_t hl;
        if (*pattern == '[') {
                const char *rb = strchr(pattern, ']');
                if (!rb)
                        return false;
                h = pattern + 1;
                hl = (size_t)(rb - h);
                colon = rb[1] == ':' ? rb + 1 : NULL;
                if (!colon && rb[1] != '\0')
                        return false;
        } else {
                colon = strrchr(pattern, ':');
                if (colon && strchr(pattern, ':') != colon)
                        colon = NULL; /* a bare IPv6 address */
                hl = (size_t)((colon ? colon : end) - h);
        }
        if (hl == 0 || hl >= host_len)
                return false;
        memcpy(host, h, hl);
        host[hl] = '\0';
        *ret_port = 0;
        if (colon) {
                char *e;
                unsigned long v = strtoul(colon + 1, &e, 10);
                if (colon[1] == '\0' || *e || v == 0 || v > 65535)
                        return false;
                *ret_port = (uint16_t)v;
        }
        return true;
}

static bool is_address(const char *s)
{
        uint8_t buf[16];
        return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

bool egress_pattern_valid(const char *pattern)
{
        char host[EGRESS_NAME_MAX + 1];
        uint16_t port;
        if (!pattern_split(pattern, host, sizeof(host), &port))
                return false;
        if (is_address(host))
                return true;
        return egress_name_valid(strncmp(host, "*.", 2) == 0 ? host + 2 : host);
}

bool egress_pattern_match(const char *pattern, const char *name, uint16_t port)
{
        char host[EGRESS_NAME_MAX + 1];
        uint16_t pport;
        if (!pattern_split(pattern, host, sizeof(host), &pport))
                return false;
        if (port != 0 && pport != 0 && port != pport)
                return false;
        if (strncmp(host, "*.", 2) == 0) {
                size_t nl = strlen(name), sl = strlen(host + 1); /* ".suffix" */
                return nl > sl && strcasecmp(name + nl - sl, host + 1) == 0;
        }
        return strcasecmp(host, name) == 0;
}

bool egress_pattern_same_host(const char *a, const char *b)
{
        char ha[EGRESS_NAME_MAX + 1], hb[EGRESS_NAME_MAX + 1];
        uint16_t pa, pb;
        return pattern_split(a, ha, sizeof(ha), &pa) && pattern_split(b, hb, sizeof(hb), &pb) && !strcasecmp(ha, hb);
}

/* Whether a deny pattern refuses (name, port). For DNS (port 0) only a deny
 * without a port hides the name: it may still be reached on other ports. */
static bool denied(const egress_policy *p, const char *name, uint16_t port)
{
        for (size_t i = 0; i < p->n_deny; i++) {
                char host[EGRESS_NAME_MAX + 1];
                uint16_t dport;
                if (port == 0 && pattern_split(p->deny[i], host, sizeof(host), &dport) && dport != 0)
                        continue;
                if (egress_pattern_match(p->deny[i], name, port))
                        return true;
        }
        return false;
}

bool egress_explicit(const egress_policy *p, const char *name, uint16_t port)
{
        if (denied(p, name, port))
                return false;
        for (size_t i = 0; i < p->n_allow; i++)
                if (egress_pattern_match(p->allow[i], name, port))
                        return true;
        return false;
}

bool egress_allowed(const egress_policy *p, const char *name, uint16_t port)
{
        if (denied(p, name, port))
                return false;
        return egress_explicit(p, name, port) || p->open;
}

const egress_pin *egress_pin_find(const egress_policy *p, const char *name)
{
        for (size_t i = 0; i < p->n_pins; i++)
                if (strcasecmp(p->pins[i].name, name) == 0)
                        return &p->pins[i];
        return NULL;
}

static bool v4_public(uint32_t a)
{
        static const struct {
                uint32_t net, mask;
        } bad[] = {
                { 0x00000000, 0xff000000 }, /* 0/8 */
                { 0x0a000000, 0xff000000 }, /* 10/8 */
                { 0x64400000, 0xffc00000 }, /* 100.64/10 CGNAT */
                { 0x7f000000, 0xff000000 }, /* loopback */
                { 0xa9fe0000, 0xffff0000 }, /* link-local, cloud metadata */
                { 0xac100000, 0xfff00000 }, /* 172.16/12 */
                { 0xc0000000, 0xffffff00 }, /* 192.0.0/24 */
                { 0xc0a80000, 0xffff0000 }, /* 192.168/16 */
                { 0xc6120000, 0xfffe0000 }, /* 198.18/15: our synthetic range */
                { 0xe0000000, 0xe0000000 }, /* multicast, reserved, broadcast */
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                if ((a & bad[i].mask) == bad[i].net)
                        return false;
        return true;
}

static bool addr_is_host_own(const struct sockaddr *addr)
{
        struct ifaddrs *ifa = NULL;
        bool own = false;
        if (getifaddrs(&ifa) < 0)
                return true; /* cannot tell: refuse */
        for (struct ifaddrs *i = ifa; i && !own; i = i->ifa_next) {
                if (!i->ifa_addr || i->ifa_addr->sa_family != addr->sa_family)
                        continue;
                if (addr->sa_family == AF_INET)
                        own = ((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr ==
                              ((const struct sockaddr_in *)addr)->sin_addr.s_addr;
                else
                        own = !memcmp(&((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
                                      &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
        }
        freeifaddrs(ifa);
        return own;
}

bool egress_addr_public(const struct sockaddr *addr)
{
        if (addr->sa_family == AF_INET) {
                if (!v4_public(ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr)))
                        return false;
        } else if (addr->sa_family == AF_INET6) {
                const uint8_t *b = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
                static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
                if (!memcmp(b, v4mapped, 12)) {
                        uint32_t a = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
                        if (!v4_public(a))
                                return false;
                } else if ((b[0] & 0xe0) != 0x20) {
                        return false; /* only global unicast 2000::/3 */
                }
        } else {
                return false;
        }
        return !addr_is_host_own(addr);
}

void egress_policy_done(egress_policy *p)
{
        for (size_t i = 0; i < p->n_allow; i++)
                free(p->allow[i]);
        for (size_t i = 0; i < p->n_deny; i++)
                free(p->deny[i]);
        for (size_t i = 0; i < p->n_pins; i++)
                free(p->pins[i].name);
        memset(p, 0, sizeof(*p));
}

static int load_list(const char *path, json_t *root, const char *key, char **out, size_t *n, char *err,
                     size_t err_len)
{
        json_t *a = json_object_get(root, key);
        if (!a || json_is_null(a))
                return 0;
        if (!json_is_array(a) || json_array_size(a) > EGRESS_MAX_RULES)
                return errbuf_fail(-EINVAL, err, err_len, "%s: \"%s\" must be an array of at most %u patterns", path,
                                   key, EGRESS_MAX_RULES);
        for (size_t i = 0; i < json_array_size(a); i++) {
                json_t *e = json_array_get(a, i);
                if (!json_is_string(e) || !egress_pattern_valid(json_string_value(e)))
                        return errbuf_fail(-EINVAL, err, err_len, "%s: \"%s[%zu]\" is not a host pattern", path,
                                           key, i);
                out[*n] = strdup(json_string_value(e));
                if (!out[*n])
                        return -ENOMEM;
                (*n)++;
        }
        return 0;
}

int egress_policy_load(const char *path, egress_policy *ret, char *err, size_t err_len)
{
        json_error_t jerr;
        egress_policy p = { 0 };
        json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return errbuf_fail(-EINVAL, err, err_len, "%s: %s", path, jerr.text);
        int r = 0;
        json_t *mode = json_object_get(root, "mode"), *hosts = json_object_get(root, "hosts");
        if (!json_is_object(root) || (mode && !json_is_string(mode)) || (hosts && !json_is_object(hosts))) {
                snprintf(err, err_len, "%s: must be an object with string \"mode\" and object \"hosts\"", path);
                r = -EINVAL;
                goto out;
        }
        p.open = mode && !strcmp(json_string_value(mode), "open");
        if ((r = load_list(path, root, "allow", p.allow, &p.n_allow, err, err_len)) < 0 ||
            (r = load_list(path, root, "deny", p.deny, &p.n_deny, err, err_len)) < 0)
                goto out;
        const char *k;
        json_t *v;
        json_object_foreach(hosts, k, v) {
                egress_pin *pin = &p.pins[p.n_pins];
                struct sockaddr_in *in = (struct sockaddr_in *)&pin->addr;
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&pin->addr;
                if (p.n_pins >= EGRESS_MAX_RULES || !json_is_string(v) || !egress_name_valid(k)) {
                        snprintf(err, err_len, "%s: \"hosts\" must map at most %u names to addresses", path,
                                 EGRESS_MAX_RULES);
                        r = -EINVAL;
                        goto out;
                }
                memset(&pin->addr, 0, sizeof(pin->addr));
                if (inet_pton(AF_INET, json_string_value(v), &in->sin_addr) == 1) {
                        in->sin_family = AF_INET;
                } else if (inet_pton(AF_INET6, json_string_value(v), &in6->sin6_addr) == 1) {
                        in6->sin6_family = AF_INET6;
                } else {
                        snprintf(err, err_len, "%s: \"hosts\": %s: not an IP address", path, k);
                        r = -EINVAL;
                        goto out;
                }
                pin->name = strdup(k);
                if (!pin->name) {
                        r = -ENOMEM;
                        goto out;
                }
                p.n_pins++;
        }
out:
        json_decref(root);
        if (r < 0) {
                egress_policy_done(&p);
                return r;
        }
        *ret = p;
        return 0;
}
