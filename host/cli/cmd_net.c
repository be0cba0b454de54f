/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm net log|suggest|allow|deny: a VM's egress (docs/cli.md, "Network"). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"
#include "util.h"

/* Each part of the log is size-capped by the supervisor; this bounds us anyway. */
#define NET_LOG_MAX_BYTES (8u * 1024 * 1024)
#define FOLLOW_POLL_MS 200

static const char net_about[] =
        "Egress by name: a VM created with --allow-host, --net open, --deny-host or\n"
        "--add-host reaches only what its policy allows, decided on the host at connect\n"
        "time. Every attempt (DNS questions and connections) is logged.\n";

typedef struct net_log_args {
        bool follow;
} net_log_args;

static const cli_opt net_log_opts[] = {
        CLI_BOOL(net_log_args, follow, "follow", 'f', "keep printing new attempts until the VM stops"),
        CLI_END,
};

static const cli_cmd net_log_cmd = {
        .name = "net log",
        .synopsis = "[--json] [-f] ID",
        .about = "Print every egress attempt of the VM: time, kind (dns or connect), name,\n"
                 "port, allowed or denied (with the reason), bytes each way.\n",
        .opts = net_log_opts,
        .json_help = "print the JSON envelope; data: {\"entries\": [{\"time\", \"kind\", \"name\",\n"
                     "\"port\", \"verdict\", \"reason\", \"address\", \"bytes_out\", \"bytes_in\"}]};\n"
                     "with -f: one entry per line instead, as they come",
};

static const cli_cmd net_suggest_cmd = {
        .name = "net suggest",
        .synopsis = "[--json] ID",
        .about = "Print the --allow-host options that would have let the VM's denied attempts\n"
                 "through, one per line, each name once, in the order first seen.\n",
        .json_help = "print the JSON envelope; data: {\"allow\": [names]}",
};

static const cli_cmd net_allow_cmd = {
        .name = "net allow",
        .synopsis = "[--json] ID PATTERN",
        .about = "Allow PATTERN (NAME, *.SUFFIX or an IP address, each optionally :PORT) from\n"
                 "now on: kept in the VM's record, effective at once for new connections.\n",
};

static const cli_cmd net_deny_cmd = {
        .name = "net deny",
        .synopsis = "[--json] ID PATTERN",
        .about = "Deny PATTERN from now on (new connections and DNS questions; connections\n"
                 "already open stay open). Kept in the VM's record.\n",
};

/* Append the complete lines of fd from *off on to entries; *off advances past them. */
static void read_lines(int fd, off_t *off, json_t *entries)
{
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_size <= *off)
                return;
        size_t len = (size_t)MIN((off_t)NET_LOG_MAX_BYTES, st.st_size - *off);
        _cleanup_free_ char *buf = malloc(len + 1);
        ssize_t n = buf ? pread(fd, buf, len, *off) : -1;
        if (n <= 0)
                return;
        buf[n] = '\0';
        char *p = buf, *nl;
        while ((nl = memchr(p, '\n', (size_t)(buf + n - p)))) {
                json_t *e = json_loadb(p, (size_t)(nl - p), 0, NULL);
                if (json_is_object(e))
                        json_array_append(entries, e);
                json_decref(e);
                p = nl + 1;
        }
        *off += p - buf;
}

static json_t *load_log(const char *path)
{
        json_t *entries = json_array();
        _cleanup_free_ char *old = NULL;
        if (!entries || asprintf(&old, "%s.1", path) < 0) {
                json_decref(entries);
                return NULL;
        }
        const char *parts[] = { old, path };
        for (size_t i = 0; i < 2; i++) {
                _cleanup_close_ int fd = open(parts[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                off_t off = 0;
                if (fd >= 0)
                        read_lines(fd, &off, entries);
        }
        return entries;
}

/* One entry as text; names come from the guest: control characters become '?'. */
static void print_entry(json_t *e)
{
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *reason = json_string_value(json_object_get(e, "reason"));
        const char *addr = json_string_value(json_object_get(e, "address"));
        json_int_t port = json_integer_value(json_object_get(e, "port"));
        char target[300];
        if (port)
                snprintf(target, sizeof(target), "%s:%lld", name ? name : "?", (long long)port);
        else
                snprintf(target, sizeof(target), "%s", name ? name : "?");
        for (char *c = target; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                        *c = '?';
        printf("%s  %-7s %-7s %s", json_string_value(json_object_get(e, "time")) ?: "?",
               json_string_value(json_object_get(e, "kind")) ?: "?",
               json_string_value(json_object_get(e, "verdict")) ?: "?", target);
        if (addr)
                printf(" -> %s", addr);
        if (json_object_get(e, "bytes_out"))
                printf(" out %lld in %lld", (long long)json_integer_value(json_object_get(e, "bytes_out")),
                       (long long)json_integer_value(json_object_get(e, "bytes_in")));
        if (reason)
                printf(" (%s)", reason);
        putchar('\n');
}

static void emit(json_t *e, bool json)
{
        if (json) {
                _cleanup_free_ char *s = json_dumps(e, JSON_COMPACT);
                if (s)
                        puts(s);
        } else {
                print_entry(e);
        }
}

/* -f: print the log, then what it gains until the VM is no longer running. */
static int follow(smolvm_vm *vm, const char *path, bool json)
{
        _cleanup_close_ int fd = -1;
        off_t off = 0;
        ino_t ino = 0;
        {
                _cleanup_free_ char *old = NULL;
                _cleanup_close_ int ofd = asprintf(&old, "%s.1", path) < 0 ? -1
                                                                            : open(old, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                json_t *prev = json_array();
                off_t ooff = 0;
                if (ofd >= 0 && prev)
                        read_lines(ofd, &ooff, prev);
                size_t i;
                json_t *e;
                json_array_foreach(prev, i, e)
                        emit(e, json);
                json_decref(prev);
        }
        for (;;) {
                struct stat st;
                if (stat(path, &st) == 0 && (fd < 0 || st.st_ino != ino)) {
                        /* New or rotated: the rest of the old part, then the new one. */
                        if (fd >= 0) {
                                json_t *rest = json_array();
                                read_lines(fd, &off, rest);
                                size_t i;
                                json_t *e;
                                json_array_foreach(rest, i, e)
                                        emit(e, json);
                                json_decref(rest);
                                safe_close(fd);
                        }
                        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                        off = 0;
                        ino = st.st_ino;
                }
                if (fd >= 0) {
                        json_t *more = json_array();
                        read_lines(fd, &off, more);
                        size_t i;
                        json_t *e;
                        json_array_foreach(more, i, e)
                                emit(e, json);
                        json_decref(more);
                        fflush(stdout);
                }
                smolvm_status_info si;
                if (smolvm_status(vm, &si) < 0 ||
                    (si.info.state != SMOLVM_STATE_RUNNING && si.info.state != SMOLVM_STATE_PAUSED))
                        return 0;
                (void)poll(NULL, 0, FOLLOW_POLL_MS);
        }
}

static int net_log(int argc, char **argv)
{
        cli_parsed p;
        net_log_args a = { 0 };
        smolvm_vm *vm = NULL;
        int r;
        if (!cli_open_vm_arg(&net_log_cmd, argc, argv, &a, &p, &vm, &r))
                return r;
        _cleanup_free_ char *path = smolvm_net_log_path(vm);
        if (!path) {
                smolvm_free(vm);
                return cli_failf("net log", p.json, -ENOMEM, NULL, NULL, "out of memory");
        }
        if (a.follow) {
                r = follow(vm, path, p.json);
                smolvm_free(vm);
                return r;
        }
        smolvm_free(vm);
        json_t *entries = load_log(path);
        if (!entries)
                return cli_failf("net log", p.json, -ENOMEM, NULL, NULL, "out of memory");
        if (p.json) {
                cli_json_ok("net log", 0, json_pack("{s:o}", "entries", entries));
                return 0;
        }
        size_t i;
        json_t *e;
        json_array_foreach(entries, i, e)
                print_entry(e);
        json_decref(entries);
        return 0;
}

/* The names (or addresses) of the denied attempts, each once, first seen first. */
static json_t *suggestions(json_t *entries)
{
        json_t *out = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(entries, i, e) {
                const char *v = json_string_value(json_object_get(e, "verdict"));
                const char *name = json_string_value(json_object_get(e, "name"));
                if (!out || !v || strcmp(v, "denied") || !name)
                        continue;
                bool seen = false;
                size_t k;
                json_t *s;
                json_array_foreach(out, k, s)
                        seen = seen || !strcmp(json_string_value(s), name);
                if (!seen)
                        json_array_append_new(out, json_string(name));
        }
        return out;
}

static int net_suggest(int argc, char **argv)
{
        cli_parsed p;
        smolvm_vm *vm = NULL;
        int r;
        if (!cli_open_vm_arg(&net_suggest_cmd, argc, argv, NULL, &p, &vm, &r))
                return r;
        _cleanup_free_ char *path = smolvm_net_log_path(vm);
        smolvm_free(vm);
        json_t *entries = path ? load_log(path) : NULL;
        json_t *names = entries ? suggestions(entries) : NULL;
        json_decref(entries);
        if (!names)
                return cli_failf("net suggest", p.json, -ENOMEM, NULL, NULL, "out of memory");
        if (p.json) {
                cli_json_ok("net suggest", 0, json_pack("{s:o}", "allow", names));
                return 0;
        }
        size_t i;
        json_t *s;
        json_array_foreach(names, i, s) {
                char buf[300];
                snprintf(buf, sizeof(buf), "%s", json_string_value(s));
                for (char *c = buf; *c; c++)
                        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
                                *c = '?';
                printf("--allow-host %s\n", buf);
        }
        json_decref(names);
        return 0;
}

static int net_change(const cli_cmd *cmd, bool allow, int argc, char **argv)
{
        cli_parsed p;
        int r = cli_parse(cmd, argc, argv, NULL, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos != 2)
                return cli_usage(&p, "%s needs ID and PATTERN", cmd->name);
        smolvm_vm *vm = NULL;
        r = smolvm_open(p.pos[0], &vm);
        if (r == 0)
                r = smolvm_net_change(vm, allow, p.pos[1]);
        smolvm_free(vm);
        if (r < 0)
                return cli_fail(cmd->name, p.json, r);
        if (p.json)
                cli_json_ok(cmd->name, 0, json_pack("{s:s}", allow ? "allowed" : "denied", p.pos[1]));
        return 0;
}

static int net_allow(int argc, char **argv)
{
        return net_change(&net_allow_cmd, true, argc, argv);
}

static int net_deny(int argc, char **argv)
{
        return net_change(&net_deny_cmd, false, argc, argv);
}

static const cli_verb net_verbs[] = {
        { "log", net_log, "print every egress attempt (-f: follow)" },
        { "suggest", net_suggest, "print the --allow-host options the denied attempts needed" },
        { "allow", net_allow, "allow a pattern while the VM runs (kept)" },
        { "deny", net_deny, "deny a pattern while the VM runs (kept)" },
        { NULL, NULL, NULL },
};

static const cli_family net_family = {
        .name = "net",
        .about = net_about,
        .verbs = net_verbs,
};

int cmd_net(int argc, char **argv)
{
        return cli_run_family(&net_family, argc, argv);
}
