/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm mcp: an MCP server on stdin/stdout whose tools run code in microVMs
 * (host/mcp/). This file is its command line and its life: the flags that set
 * what the model may not decide, the stdio set-up, the read loop, and the
 * clean-up when the client goes or a signal comes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
        bool keep;
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
        CLI_BOOL(mcp_args, keep, "keep-sandboxes", 0,
                 "leave the sandboxes running when the server exits\n"
                 "(default: delete them)"),
        CLI_END,
};

_Static_assert(MCP_DEFAULT_TIMEOUT_S == 300 && MCP_DEFAULT_MAX_SANDBOXES == 4 && MCP_DEFAULT_OUTPUT_KIB == 64,
               "update the help of smolvm mcp");

static const cli_cmd mcp_cmd = {
        .name = "mcp",
        .synopsis = "[OPTIONS]",
        .about = "Serve the Model Context Protocol on stdin and stdout (for Claude, Cursor and\n"
                 "other MCP clients; protocol revisions 2025-06-18 and 2025-11-25). Tools: run\n"
                 "(code in a fresh VM, deleted afterwards), sandbox_create, sandbox_exec,\n"
                 "sandbox_read_file, sandbox_write_file, sandbox_list, sandbox_delete.\n"
                 "The options set what the model cannot change: every VM's shape and host\n"
                 "mounts (read-only unless :rw), the longest command, the output cap, how\n"
                 "many VMs may live at once. The server's sandboxes are deleted when the\n"
                 "client disconnects (stdin closed) or on SIGTERM/SIGINT/SIGHUP, unless\n"
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

/* What the model is told at initialize: the tools and the server's limits. */
static void make_instructions(const mcp_args *a, const mcp_limits *lim, char *buf, size_t size)
{
        int n = snprintf(buf, size,
                         "Linux microVMs (Debian 12 with python3, git and bash). run: one piece of code in a fresh "
                         "VM that is deleted afterwards. sandbox_create, then sandbox_exec, sandbox_read_file, "
                         "sandbox_write_file: a VM that keeps its files between calls; sandbox_delete it when "
                         "done. Set by the server: a command runs at most %u s; stdout and stderr are cut at %zu "
                         "KiB each; at most %u VMs at once; %u MiB of memory and %u vCPUs each.",
                         lim->timeout_max_s, lim->output_max_bytes / 1024, a->max_sandboxes,
                         lim->vm.mem_mib ? lim->vm.mem_mib : SMOLVM_DEFAULT_MEM_MIB,
                         lim->vm.vcpus ? lim->vm.vcpus : SMOLVM_DEFAULT_VCPUS);
        for (size_t i = 0; i < lim->vm.n_mounts && n > 0 && (size_t)n < size; i++)
                n += snprintf(buf + n, size - (size_t)n, "%s%s (%s)", i ? ", " : " Host directories in every VM: ",
                              lim->vm.mounts[i].guest_path, lim->vm.mounts[i].writable ? "writable" : "read-only");
        if (lim->vm.n_mounts && n > 0 && (size_t)n < size)
                snprintf(buf + n, size - (size_t)n, ".");
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
                       .output_bytes = MCP_DEFAULT_OUTPUT_KIB * 1024 };
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
        mcp_ctx ctx = { .lim = { .vm = a.vm.cfg,
                                 .env = a.env.v,
                                 .timeout_max_s = a.timeout_s,
                                 .output_max_bytes = a.output_bytes } };
        mcp_sandboxes_init(&ctx.sandboxes, a.max_sandboxes);
        mcp_server *s = NULL;
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
        mcp_server_config scfg = {
                .tools = mcp_tools,
                .n_tools = mcp_n_tools,
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
        fprintf(stderr, "smolvm mcp %s: serving on stdin/stdout (%zu tools)\n", smolvm_version(), mcp_n_tools);

        int sig = serve(s, in_fd, sfd);
        /* The client is gone (or going): its calls are of no use any more. */
        mcp_server_cancel_all(s);
        mcp_server_wait_idle(s);
        rc = sig ? 128 + sig : 0;
out:
        mcp_sandboxes_done(&ctx.sandboxes, a.keep);
        mcp_server_free(s);
        safe_close(in_fd);
        safe_close(out_fd);
        cli_vm_args_done(&a.vm);
        cli_env_done(&a.env);
        return rc;
}
