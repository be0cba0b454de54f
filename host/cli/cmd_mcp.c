/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm mcp: an MCP server on stdin/stdout whose tools run code in microVMs
 * (host/mcp/). This file is its command line and its life: the flags that set
 * what the model may not decide, the stdio set-up, the read loop, and the
 * clean-up when the client goes or a signal comes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "mcp_server.h"
#include "mcp_tools.h"
#include "smolvm/smolvm.h"
#include "util.h"

typedef struct mcp_args {
        cli_vm_args vm;
        cli_env env;
        unsigned timeout_s;
        unsigned max_sandboxes;
        unsigned output_bytes;
        const char *workspace_dir;
        unsigned workspace_max_mib;
        bool keep, all_snapshots, allow_expose;
} mcp_args;

static const cli_opt mcp_opts[] = {
        CLI_INCLUDE(mcp_args, vm, cli_vm_opts),
        CLI_CALL(mcp_args, env, "env", 'e', "K=V", cli_env_add,
                 "set an environment variable for every command the\n"
                 "tools run (repeatable)"),
        CLI_UINT(mcp_args, timeout_s, "timeout", 0, "SEC", 1, 86400, 1,
                 "the longest a command may run (default 300); a tool's\n"
                 "timeout argument may only ask for less"),
        CLI_UINT(mcp_args, max_sandboxes, "max-sandboxes", 0, "N", 1, 256, 1,
                 "VMs alive at once: sandboxes and running `run` calls\n"
                 "(default 4)"),
        CLI_UINT(mcp_args, output_bytes, "max-output", 0, "KIB", 1, 65536, 1024,
                 "cut stdout and stderr at KIB KiB of text each, and refuse\n"
                 "to read larger files (default 64)"),
        CLI_STRING(mcp_args, workspace_dir, "workspace-dir", 0, "DIR",
                 "offer sandbox_persist_workspace and\n"
                 "sandbox_hydrate_workspace, with archives kept in DIR as\n"
                 "NAME.tar.zst (the model gives a plain NAME, never a path)"),
        CLI_UINT(mcp_args, workspace_max_mib, "workspace-max", 0, "MIB", 1, 1048576, 1,
                 "the largest archive sandbox_persist_workspace writes\n"
                 "(default 1024)"),
        CLI_BOOL(mcp_args, all_snapshots, "all-snapshots", 0,
                 "let the model list, use and delete every snapshot of the\n"
                 "store (default: only those this server made)"),
        CLI_BOOL(mcp_args, allow_expose, "allow-expose", 0,
                 "offer sandbox_expose_port: forward a sandbox's TCP port to\n"
                 "a free port on the host's 127.0.0.1"),
        CLI_BOOL(mcp_args, keep, "keep-sandboxes", 0,
                 "leave the sandboxes running and the snapshots in place\n"
                 "when the server exits (default: delete them)"),
        CLI_END,
};

_Static_assert(MCP_DEFAULT_TIMEOUT_S == 300 && MCP_DEFAULT_MAX_SANDBOXES == 4 && MCP_DEFAULT_OUTPUT_KIB == 64 &&
                       MCP_DEFAULT_WORKSPACE_MAX_MIB == 1024,
               "update the help of smolvm mcp");

static const cli_cmd mcp_cmd = {
        .name = "mcp",
        .synopsis = "[OPTIONS]",
        .about = "Serve the Model Context Protocol on stdin and stdout (for Claude, Cursor and\n"
                 "other MCP clients; protocol revisions 2025-06-18 and 2025-11-25). Tools: run\n"
                 "(code in a fresh VM, deleted afterwards), sandbox_create, sandbox_exec,\n"
                 "sandbox_read_file, sandbox_write_file, sandbox_list, sandbox_delete,\n"
                 "sandbox_snapshot, sandbox_from_snapshot, sandbox_fork, snapshot_list,\n"
                 "snapshot_delete; with --workspace-dir sandbox_persist_workspace and\n"
                 "sandbox_hydrate_workspace; with --allow-expose sandbox_expose_port.\n"
                 "The options set what the model cannot change: every VM's shape, host\n"
                 "mounts (read-only unless :rw) and network (none unless --allow-host or\n"
                 "--net open; no tool widens it), the longest command, the output cap, how\n"
                 "many VMs may live at once (forks and sandboxes from snapshots included).\n"
                 "The server's sandboxes and snapshots are deleted when the client\n"
                 "disconnects (stdin closed) or on SIGTERM/SIGINT/SIGHUP, unless\n"
                 "--keep-sandboxes. Logs go to stderr; stdout carries only MCP messages.\n",
        .opts = mcp_opts,
        .json_help = "report a start-up error as a JSON envelope (docs/cli.md)",
        .footer = "Client configuration (Claude Desktop, Claude Code: mcpServers):\n"
                  "  {\"mcpServers\": {\"smolvm\": {\"command\": \"smolvm\",\n"
                  "     \"args\": [\"mcp\", \"--mount\", \"/path/to/repo:/workspace\"]}}}\n"
                  "Exit status: 0 when the client closed stdin, 128+N after signal N, 125 if the\n"
                  "server could not start.\n",
        .no_args = true,
};

static void appendf(char *buf, size_t size, size_t *n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t size, size_t *n, const char *fmt, ...)
{
        if (*n >= size)
                return;
        va_list ap;
        va_start(ap, fmt);
        int r = vsnprintf(buf + *n, size - *n, fmt, ap);
        va_end(ap);
        *n = r < 0 ? size : MIN(size, *n + (size_t)r);
}

static void append_list(char *buf, size_t size, size_t *n, const char *const *v)
{
        for (size_t i = 0; v && v[i]; i++)
                appendf(buf, size, n, "%s%s", i ? ", " : "", v[i]);
}

/* What the model is told at initialize: the tools and the server's limits. */
static void make_instructions(const mcp_args *a, const mcp_limits *lim, char *buf, size_t size)
{
        size_t n = 0;
        appendf(buf, size, &n,
                "Linux microVMs (Debian 12 with python3, git and bash). run: one piece of code in a fresh "
                "VM that is deleted afterwards. sandbox_create, then sandbox_exec, sandbox_read_file, "
                "sandbox_write_file: a VM that keeps its files between calls; sandbox_delete it when "
                "done. sandbox_snapshot, sandbox_from_snapshot and sandbox_fork branch a sandbox's state. "
                "Set by the server: a command runs at most %u s; stdout and stderr are cut at %zu "
                "KiB each; at most %u VMs at once; %u MiB of memory and %u vCPUs each.",
                lim->timeout_max_s, lim->output_max_bytes / 1024, a->max_sandboxes,
                lim->vm.mem_mib ? lim->vm.mem_mib : SMOLVM_DEFAULT_MEM_MIB,
                lim->vm.vcpus ? lim->vm.vcpus : SMOLVM_DEFAULT_VCPUS);
        for (size_t i = 0; i < lim->vm.n_mounts; i++)
                appendf(buf, size, &n, "%s%s (%s)", i ? ", " : " Host directories in every VM: ",
                        lim->vm.mounts[i].guest_path, lim->vm.mounts[i].writable ? "writable" : "read-only");
        if (lim->vm.n_mounts)
                appendf(buf, size, &n, ".");
        const smolvm_net *net = lim->vm.net;
        /* Pinned names alone (--add-host) reach nothing: they must be allowed too. */
        if (!net || (!net->open && !(net->allow && net->allow[0]))) {
                appendf(buf, size, &n, " No network.");
        } else {
                appendf(buf, size, &n, net->open ? " Network: every public host" : " Network: only ");
                if (!net->open)
                        append_list(buf, size, &n, net->allow);
                if (net->deny && net->deny[0]) {
                        appendf(buf, size, &n, ", except ");
                        append_list(buf, size, &n, net->deny);
                }
                appendf(buf, size, &n, ".");
        }
        if (lim->workspace_dir)
                appendf(buf, size, &n, " sandbox_persist_workspace and sandbox_hydrate_workspace keep a sandbox "
                                       "directory as a named archive, across sandboxes and sessions.");
}

/* Protocol fds of our own; fd 1 becomes stderr and fd 0 /dev/null, so nothing
 * else (a library message, a child that inherits them) can ever write into the
 * protocol stream or read from it. */
static int take_stdio(int *ret_in, int *ret_out)
{
        _cleanup_close_ int in = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        _cleanup_close_ int out = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        _cleanup_close_ int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (in < 0 || out < 0 || null < 0)
                return negative_errno();
        if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0 || dup2(null, STDIN_FILENO) < 0)
                return negative_errno();
        *ret_in = TAKE_FD(in);
        *ret_out = TAKE_FD(out);
        return 0;
}

/* Read and handle messages until the client closes stdin (returns 0), stops
 * reading our stdout (0), or a signal comes (its number). */
static int serve(mcp_server *s, int in_fd, int sfd)
{
        static char buf[65536];
        for (;;) {
                struct pollfd p[] = { { .fd = in_fd, .events = POLLIN },
                                      { .fd = sfd, .events = POLLIN },
                                      { .fd = mcp_server_closed_fd(s), .events = POLLIN } };
                if (poll(p, ARRAY_SIZE(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        cli_error("mcp: poll: %s", strerror(errno));
                        return 0;
                }
                if (p[1].revents) {
                        int sig = cli_pending_signal(sfd);
                        if (sig) {
                                fprintf(stderr, "smolvm mcp: %s: shutting down\n", strsignal(sig));
                                return sig;
                        }
                }
                if (p[2].revents) {
                        fprintf(stderr, "smolvm mcp: the client stopped reading: shutting down\n");
                        return 0;
                }
                if (p[0].revents) {
                        ssize_t n = read(in_fd, buf, sizeof(buf));
                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (n <= 0) {
                                fprintf(stderr, "smolvm mcp: the client closed stdin: shutting down\n");
                                return 0;
                        }
                        mcp_server_feed(s, buf, (size_t)n);
                }
        }
}

/* Refuse to serve with a configuration no VM could boot with (a missing image,
 * a mount whose host directory is gone): the operator sees it now, not the
 * model on every call. Nothing is started. */
static int check_config(const smolvm_config *cfg, bool json)
{
        smolvm_config c = *cfg;
        c.ephemeral = true;
        smolvm_vm *vm = NULL;
        int r = smolvm_create(&c, &vm);
        if (r < 0)
                return cli_fail("mcp", json, r);
        smolvm_free(vm);
        return 0;
}

int cmd_mcp(int argc, char **argv)
{
        mcp_args a = { .timeout_s = MCP_DEFAULT_TIMEOUT_S,
                       .max_sandboxes = MCP_DEFAULT_MAX_SANDBOXES,
                       .output_bytes = MCP_DEFAULT_OUTPUT_KIB * 1024,
                       .workspace_max_mib = MCP_DEFAULT_WORKSPACE_MAX_MIB };
        cli_vm_args_init(&a.vm);
        cli_parsed p;
        int r = cli_parse(&mcp_cmd, argc, argv, &a, &p);
        if (r != 0) {
                cli_vm_args_done(&a.vm);
                cli_env_done(&a.env);
                return cli_parse_exit(r);
        }
        cli_vm_args_finish(&a.vm);
        int rc = CLI_EXIT_ERROR;
        _cleanup_free_ char *ws_dir = NULL;
        _cleanup_close_ int ws_fd = -1;
        mcp_ctx ctx = { .lim = { .vm = a.vm.cfg,
                                 .env = a.env.v,
                                 .timeout_max_s = a.timeout_s,
                                 .output_max_bytes = a.output_bytes,
                                 .workspace_dir_fd = -1,
                                 .workspace_max_bytes = (uint64_t)a.workspace_max_mib << 20,
                                 .all_snapshots = a.all_snapshots,
                                 .expose_ports = a.allow_expose } };
        mcp_sandboxes_init(&ctx.sandboxes, a.max_sandboxes);
        mcp_snapshots_init(&ctx.snapshots);
        mcp_server *s = NULL;
        mcp_tool *tools = NULL;
        int in_fd = -1, out_fd = -1;
        sigset_t old_mask;
        /* Before any thread: every thread inherits the blocked signals. */
        _cleanup_close_ int sfd = cli_setup_signals(&old_mask);
        if (sfd < 0) {
                cli_failf("mcp", p.json, sfd, NULL, NULL, "signalfd: %s", strerror(-sfd));
                goto out;
        }
        if (check_config(&ctx.lim.vm, p.json) < 0)
                goto out;
        if (a.workspace_dir) {
                /* Resolved once: archives are named under this directory only. */
                ws_dir = realpath(a.workspace_dir, NULL);
                ws_fd = ws_dir ? open(ws_dir, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
                if (ws_fd < 0) {
                        cli_failf("mcp", p.json, negative_errno(), NULL, "create the directory, or name another",
                                  "--workspace-dir %s: %s", a.workspace_dir, strerror(errno));
                        goto out;
                }
                ctx.lim.workspace_dir = ws_dir;
                ctx.lim.workspace_dir_fd = ws_fd;
        }

        static char frag_buf[1024], instructions[2048];
        mcp_fragment frags[MCP_N_FRAGMENTS];
        mcp_fragments_make(&ctx.lim, frags, frag_buf, sizeof(frag_buf));
        make_instructions(&a, &ctx.lim, instructions, sizeof(instructions));
        r = take_stdio(&in_fd, &out_fd);
        if (r < 0) {
                cli_failf("mcp", false, r, NULL, "run it with stdin and stdout open (an MCP client does)",
                          "cannot take stdin and stdout: %s", strerror(-r));
                goto out;
        }
        tools = calloc(mcp_n_tools, sizeof(*tools));
        if (!tools) {
                cli_error("mcp: out of memory");
                goto out;
        }
        size_t n_tools = mcp_tools_select(&ctx.lim, tools);
        mcp_server_config scfg = {
                .tools = tools,
                .n_tools = n_tools,
                .fragments = frags,
                .n_fragments = MCP_N_FRAGMENTS,
                .name = "smolvm",
                .version = smolvm_version(),
                .instructions = instructions,
                .userdata = &ctx,
                .out_fd = out_fd,
        };
        char err[512];
        r = mcp_server_new(&scfg, &s, err, sizeof(err));
        if (r < 0) {
                cli_error("mcp: %s", err[0] ? err : strerror(-r));
                goto out;
        }
        fprintf(stderr, "smolvm mcp %s: serving on stdin/stdout (%zu tools)\n", smolvm_version(), n_tools);

        int sig = serve(s, in_fd, sfd);
        /* The client is gone (or going): its calls are of no use any more. */
        mcp_server_cancel_all(s);
        mcp_server_wait_idle(s);
        rc = sig ? 128 + sig : 0;
out:
        /* Sandboxes first: a snapshot's removal waits for none of them anyway. */
        mcp_sandboxes_done(&ctx.sandboxes, a.keep);
        mcp_snapshots_done(&ctx.snapshots, a.keep);
        mcp_server_free(s);
        free(tools);
        safe_close(in_fd);
        safe_close(out_fd);
        cli_vm_args_done(&a.vm);
        cli_env_done(&a.env);
        return rc;
}
