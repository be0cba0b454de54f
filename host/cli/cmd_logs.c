/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm logs ID: the guest's serial console (kernel and init messages), or
 * followed (-f) as it grows; --pid N: the exec log of guest pid N. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"
#include "util.h"
#include "vmdir.h"

/* console.log is size-capped by the supervisor; this bounds us anyway. */
#define LOGS_MAX_BYTES (16u * 1024 * 1024)
/* How often -f looks for new output and whether the VM still runs. */
#define FOLLOW_POLL_MS 250

typedef struct logs_args {
        bool follow;
        unsigned pid;
} logs_args;

static const cli_opt logs_opts[] = {
        CLI_BOOL(logs_args, follow, "follow", 'f',
                 "keep printing the console as it grows, until Ctrl-C (exit 0)\n"
                 "or the VM stops"),
        CLI_UINT(logs_args, pid, "pid", 0, "PID", 1, 4194304, 1,
                 "print the exec log of guest pid PID instead: the output of\n"
                 "'exec -d' (it printed the pid), or what the background\n"
                 "processes of an exec wrote after it ended ('exec --json'\n"
                 "gives its pid)"),
        CLI_END,
};

static const cli_cmd logs_cmd = {
        .name = "logs",
        .synopsis = "[OPTIONS] ID",
        .about = "Print the guest console of the VM (kernel and init messages; the console of\n"
                 "the current or last run). Command output is not in it: see 'smolvm exec', and\n"
                 "--pid for detached commands.\n",
        .opts = logs_opts,
        .json_help = "print the JSON envelope (docs/cli.md); data: {\"console\": \"...\"}, with\n"
                     "--pid: {\"pid\": N, \"log\": \"...\"} (not with -f)",
};

/* text[0..len) as a JSON string (bytes that are not UTF-8 escaped as the exec
 * envelope does), or NULL. */
static json_t *text_json(const char *text, size_t len)
{
        char *buf = NULL;
        size_t blen = 0;
        FILE *f = open_memstream(&buf, &blen);
        if (!f)
                return NULL;
        cli_json_string(f, text ? text : "", len);
        fclose(f);
        json_t *s = json_loadb(buf, blen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        free(buf);
        return s;
}

static int print_exec_log(smolvm_vm *vm, int pid, bool json)
{
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = smolvm_exec_log(vm, pid, (void **)&data, &len, 0);
        if (r < 0)
                return cli_fail("logs", json, r);
        if (json) {
                json_t *log = text_json(data, len);
                cli_json_ok("logs", 0, json_pack("{s:i,s:o}", "pid", pid, "log", log ? log : json_string("")));
                return 0;
        }
        return len && write_all(STDOUT_FILENO, data, len) < 0 ? CLI_EXIT_ERROR : 0;
}

static bool vm_alive(smolvm_vm *vm)
{
        smolvm_status_info st;
        return smolvm_status(vm, &st) == 0 &&
               (st.info.state == SMOLVM_STATE_RUNNING || st.info.state == SMOLVM_STATE_PAUSED);
}

typedef struct follower {
        const char *path;
        int fd;
        dev_t dev;
        ino_t ino;
        off_t off;
} follower;

/* Print what the console gained since the last call. A console.log that
 * shrank was restarted by the supervisor with its tail (size cap), one that
 * is another file by a new run of the VM: both are printed from their start.
 * Returns 0 or a negative errno (-EPIPE: our reader is gone). */
static int follow_once(follower *f)
{
        struct stat st;
        if (stat(f->path, &st) == 0 && (f->fd < 0 || st.st_dev != f->dev || st.st_ino != f->ino)) {
                int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd >= 0 && fstat(fd, &st) == 0) {
                        safe_close(f->fd);
                        *f = (follower){ .path = f->path, .fd = fd, .dev = st.st_dev, .ino = st.st_ino };
                } else {
                        safe_close(fd);
                }
        }
        if (f->fd < 0)
                return 0;
        if (fstat(f->fd, &st) == 0 && st.st_size < f->off)
                f->off = 0;
        char buf[65536];
        for (;;) {
                ssize_t n = pread(f->fd, buf, sizeof(buf), f->off);
                if (n <= 0)
                        return n < 0 && errno != EINTR ? -errno : 0;
                int r = write_all(STDOUT_FILENO, buf, (size_t)n);
                if (r < 0)
                        return r;
                f->off += n;
        }
}

static int follow(smolvm_vm *vm, const char *path)
{
        sigset_t old_mask;
        _cleanup_close_ int sfd = cli_setup_signals(&old_mask);
        if (sfd < 0)
                return cli_failf("logs", false, sfd, NULL, NULL, "signalfd: %s", strerror(-sfd));
        follower f = { .path = path, .fd = -1 };
        int code = 0;
        for (;;) {
                /* Checked before the read: what a VM wrote before it stopped is shown. */
                bool alive = vm_alive(vm);
                int r = follow_once(&f);
                if (r < 0) {
                        if (r != -EPIPE)
                                cli_error("read %s: %s", path, strerror(-r));
                        code = r == -EPIPE ? 128 + SIGPIPE : CLI_EXIT_ERROR;
                        break;
                }
                if (!alive)
                        break;
                struct pollfd p = { .fd = sfd, .events = POLLIN };
                if (poll(&p, 1, FOLLOW_POLL_MS) > 0)
                        break; /* Ctrl-C, SIGTERM, SIGHUP: the way to stop following */
        }
        safe_close(f.fd);
        return code;
}

int cmd_logs(int argc, char **argv)
{
        logs_args a = { .follow = false };
        cli_parsed p;
        smolvm_vm *vm = NULL;
        int r;
        if (!cli_open_vm_arg(&logs_cmd, argc, argv, &a, &p, &vm, &r))
                return r;
        if (a.follow && (p.json || a.pid)) {
                smolvm_free(vm);
                return cli_usage(&p, "-f cannot be combined with %s", p.json ? "--json" : "--pid");
        }
        if (a.pid) {
                r = print_exec_log(vm, (int)a.pid, p.json);
                smolvm_free(vm);
                return r;
        }
        char path[4096];
        snprintf(path, sizeof(path), "%s/" VMDIR_CONSOLE_LOG, smolvm_dir(vm));
        if (a.follow) {
                r = follow(vm, path);
                smolvm_free(vm);
                return r;
        }
        smolvm_free(vm);

        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno != ENOENT) {
                int e = errno;
                return cli_failf("logs", p.json, -e, NULL, NULL, "open %s: %s", path, strerror(e));
        }
        if (fd >= 0) {
                buf = malloc(LOGS_MAX_BYTES);
                if (!buf)
                        return cli_failf("logs", p.json, -ENOMEM, NULL, NULL, "out of memory");
                /* Keep the end if it is longer than we hold. */
                off_t end = lseek(fd, 0, SEEK_END);
                off_t start = end > (off_t)LOGS_MAX_BYTES ? end - (off_t)LOGS_MAX_BYTES : 0;
                ssize_t n = pread(fd, buf, LOGS_MAX_BYTES, start);
                len = n > 0 ? (size_t)n : 0;
        }
        if (p.json) {
                json_t *s = text_json(buf, len);
                cli_json_ok("logs", 0, json_pack("{s:o}", "console", s ? s : json_string("")));
                return 0;
        }
        if (len && write_all(STDOUT_FILENO, buf, len) < 0)
                return CLI_EXIT_ERROR;
        return 0;
}
