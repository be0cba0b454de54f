/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm-fs: a read-only FUSE view, on the host, of a directory inside a running
 * sandbox.
 *
 *     smolvm-fs mount [--json] [--background] SANDBOX:/path MOUNTPOINT
 *     smolvm-fs umount [--json] MOUNTPOINT
 *
 * The guest agent serves the path with our FUSE server over a vsock stream
 * (op "fuse_serve", docs/protocol.md "FUSE over vsock"); this tool mounts with
 * libfuse3 and relays the kernel's raw FUSE messages to that stream and back.
 * The guest is hostile: the mount is read-only, nosuid, nodev, for the mounting
 * user only, and a misbehaving guest can only end it. The command line, the
 * --json envelope, the error codes and exit codes are smolvm's (libsmolvm-cli,
 * host/cli/cli_opts.h and cli_out.h; docs/cli.md). */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_opts.h"
#include "fuse_client.h"
#include "fuse_stream.h"
#include "mountinfo.h"
#include "smolvm/smolvm.h"
#include "util.h"

/* --background: how long the mount may take to answer its first stat. */
#define READY_TIMEOUT_MS 60000u

static const char fs_about[] =
        "Mount a directory of a running sandbox (id, id prefix or name) read-only on the\n"
        "host. The guest serves it; nothing on the mount can be changed.\n";

static const char fs_footer[] =
        "Exit status: 0 success; 125 when smolvm-fs failed (the message, and error.code\n"
        "with --json, say why; 124 for a timeout); docs/cli.md.\n";

typedef struct mount_args {
        bool background;
} mount_args;

static const cli_opt mount_opts[] = {
        CLI_BOOL(mount_args, background, "background", 0,
                 "return once the mount answers (a script can use it at once);\n"
                 "the relay keeps running in the background"),
        CLI_END,
};

static const cli_cmd mount_cmd = {
        .name = "mount",
        .synopsis = "[--json] [--background] SANDBOX:/path MOUNTPOINT",
        .about = "Mount SANDBOX's directory /path read-only on MOUNTPOINT. Stays in the\n"
                 "foreground until the sandbox stops, the mount is unmounted, or\n"
                 "SIGINT/SIGTERM/SIGHUP; then releases the mount point.\n",
        .opts = mount_opts,
        .json_help = "print one JSON envelope on stdout; data: {id, path,\n"
                     "mountpoint, background, pid}",
        .footer = fs_footer,
};

static const cli_cmd umount_cmd = {
        .name = "umount",
        .synopsis = "[--json] MOUNTPOINT",
        .about = "Unmount a smolvm-fs mount (its smolvm-fs process then exits).\n",
        .json_help = "print one JSON envelope on stdout; data: {mountpoint}",
        .footer = fs_footer,
};

/* The envelope of a success, with --json. Steals data. */
static void print_ok(const char *command, bool json, json_t *data)
{
        if (json)
                cli_json_ok(command, 0, data);
        else
                json_decref(data);
}

/* Make path absolute and clean without resolving the last component (it may be
 * a dead FUSE mount, which stat cannot enter). Returns malloc'd or NULL. */
static char *absolute_path(const char *path)
{
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return NULL;
        size_t n = strlen(copy);
        while (n > 1 && copy[n - 1] == '/')
                copy[--n] = '\0';
        char *slash = strrchr(copy, '/');
        const char *base = slash ? slash + 1 : copy;
        const char *dir = slash ? (slash == copy ? "/" : copy) : ".";
        if (slash)
                *slash = '\0';
        if (!*base) /* "/" */
                return strdup("/");
        char real[PATH_MAX];
        if (!realpath(dir, real))
                return NULL;
        char *out;
        if (asprintf(&out, "%s/%s", strcmp(real, "/") == 0 ? "" : real, base) < 0)
                return NULL;
        return out;
}

/* The fstype of the topmost mount whose mount point is exactly path. Returns 1
 * and *ret_type (malloc'd), 0 if path is not a mount point, negative errno. */
static int find_mount(const char *path, char **ret_type)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return negative_errno();
        mountinfo_entry e;
        int r = mountinfo_find(f, path, &e);
        fclose(f);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        *ret_type = strdup(e.fstype);
        return *ret_type ? 1 : -ENOMEM;
}

static int cmd_umount(int argc, char **argv)
{
        cli_parsed p;
        int r = cli_parse(&umount_cmd, argc, argv, NULL, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos != 1)
                return cli_usage(&p, p.n_pos ? "too many arguments" : "missing MOUNTPOINT");
        const char *mp = p.pos[0];
        bool json = p.json;
        _cleanup_free_ char *path = absolute_path(mp);
        if (!path)
                return cli_failf("umount", json, negative_errno(), NULL, NULL, "umount %s: %s", mp, strerror(errno));
        _cleanup_free_ char *type = NULL;
        r = find_mount(path, &type);
        if (r < 0)
                return cli_failf("umount", json, r, NULL, NULL, "read /proc/self/mountinfo: %s", strerror(-r));
        if (r == 0)
                return cli_failf("umount", json, -EINVAL, "not_mounted", NULL, "umount %s: not mounted", path);
        if (strcmp(type, "fuse.smolvm") != 0)
                return cli_failf("umount", json, SMOLVM_EINVAL, NULL, NULL,
                                 "umount %s: not a smolvm-fs mount (type %s)", path, type);

        if (geteuid() == 0) {
                /* Busy (a shell sits in it): detach it anyway; it is read-only and
                 * its users see it until they leave. */
                if (umount2(path, UMOUNT_NOFOLLOW) < 0 && (errno != EBUSY || umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0))
                        return cli_failf("umount", json, negative_errno(), NULL, NULL, "umount %s: %s", path,
                                         strerror(errno));
        } else {
                pid_t pid = fork();
                if (pid < 0)
                        return cli_failf("umount", json, negative_errno(), NULL, NULL, "fork: %s", strerror(errno));
                if (pid == 0) {
                        execlp("fusermount3", "fusermount3", "-u", "-z", "--", path, (char *)NULL);
                        _exit(127);
                }
                int st;
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                        ;
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                        return cli_failf("umount", json, -EIO, NULL, NULL, "umount %s: fusermount3 -u failed%s", path,
                                         WIFEXITED(st) && WEXITSTATUS(st) == 127 ? " (not installed?)" : "");
        }
        print_ok("umount", json, json_pack("{s:s}", "mountpoint", path));
        return 0;
}

/* fsname= takes a libfuse option value: escape ',' and '\'. */
static char *fsname_option(const char *id, const char *path)
{
        size_t n = strlen(path);
        char *esc = malloc(2 * n + 1), *w = esc;
        if (!esc)
                return NULL;
        for (const char *p = path; *p; p++) {
                if (*p == ',' || *p == '\\')
                        *w++ = '\\';
                *w++ = *p;
        }
        *w = '\0';
        char *out;
        int k = asprintf(&out, "ro,nosuid,nodev,subtype=smolvm,max_read=%u,fsname=smolvm:%s:%s",
                         SMOLVM_FUSE_STREAM_MAX_WRITE, id, esc);
        free(esc);
        return k < 0 ? NULL : out;
}

typedef struct ready_check {
        const char *path;
        int pipe_w;
        int err;
} ready_check;

static void *ready_thread(void *arg)
{
        ready_check *c = arg;
        struct stat st;
        int e = stat(c->path, &st) == 0 ? 0 : errno;
        (void)!write(c->pipe_w, &e, sizeof(e));
        return NULL;
}

/* Wait until the mount answers a stat (INIT and the root's GETATTR went to the
 * guest and back). The stat runs in a detached thread: if it hangs, we give up
 * after timeout_ms and exit without it. Returns 0 or negative errno. */
static int wait_mount_ready(const char *path, unsigned timeout_ms)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        ready_check *c = malloc(sizeof(*c)); /* leaked if the thread hangs: we exit soon */
        if (!c)
                return -ENOMEM;
        *c = (ready_check){ .path = path, .pipe_w = p[1] };
        int r = thread_start_detached(ready_thread, c);
        if (r < 0)
                return r;
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        int k;
        while ((k = poll(&pf, 1, (int)timeout_ms)) < 0 && errno == EINTR)
                ;
        if (k <= 0)
                return -ETIMEDOUT;
        int e = EIO;
        if (read(p[0], &e, sizeof(e)) != (ssize_t)sizeof(e))
                return -EIO;
        return -e;
}

static void redirect_stdio_to_null(void)
{
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return;
        for (int i = 0; i <= 2; i++)
                (void)dup2(fd, i);
        if (fd > 2)
                close(fd);
}

static int cmd_mount(int argc, char **argv)
{
        mount_args a = { 0 };
        cli_parsed p;
        int r = cli_parse(&mount_cmd, argc, argv, &a, &p);
        if (r != 0)
                return cli_parse_exit(r);
        if (p.n_pos != 2)
                return cli_usage(&p, p.n_pos > 2 ? "too many arguments" : "expected SANDBOX:/path MOUNTPOINT");
        const char *spec = p.pos[0], *mp = p.pos[1];
        bool background = a.background, json = p.json;
        const char *colon = strchr(spec, ':');
        if (!colon || colon == spec || colon[1] != '/')
                return cli_usage(&p, "'%s' is not of the form SANDBOX:/absolute/path", spec);
        _cleanup_free_ char *sandbox = strndup(spec, (size_t)(colon - spec));
        const char *guest_path = colon + 1;
        if (!sandbox)
                return cli_failf("mount", json, -ENOMEM, NULL, NULL, "out of memory");

        smolvm_vm *vm = NULL;
        r = smolvm_open(sandbox, &vm);
        if (r < 0)
                return cli_fail("mount", json, r);
        smolvm_status_info st;
        r = smolvm_status(vm, &st);
        if (r < 0) {
                smolvm_free(vm);
                return cli_fail("mount", json, r);
        }
        if (st.info.state != SMOLVM_STATE_RUNNING) {
                smolvm_free(vm);
                bool paused = st.info.state == SMOLVM_STATE_PAUSED;
                char hint[128];
                snprintf(hint, sizeof(hint), "%s it with `smolvm %s %s`", paused ? "resume" : "start",
                         paused ? "resume" : "start", sandbox);
                return cli_failf("mount", json, paused ? SMOLVM_EPAUSED : SMOLVM_ENOTRUNNING, NULL, hint,
                                 "sandbox %s is %s", sandbox, smolvm_state_name(st.info.state));
        }
        _cleanup_free_ char *id = strdup(smolvm_id(vm));
        _cleanup_free_ char *vm_dir = strdup(smolvm_dir(vm));
        smolvm_free(vm); /* persistent: this never stops it */
        if (!id || !vm_dir)
                return cli_failf("mount", json, -ENOMEM, NULL, NULL, "out of memory");

        struct stat mst;
        if (stat(mp, &mst) < 0)
                return cli_failf("mount", json, negative_errno(), NULL, NULL, "mount point %s: %s", mp,
                                 strerror(errno));
        if (!S_ISDIR(mst.st_mode))
                return cli_failf("mount", json, SMOLVM_EINVAL, NULL, NULL, "mount point %s: %s", mp,
                                 strerror(ENOTDIR));
        _cleanup_free_ char *mp_abs = realpath(mp, NULL);
        if (!mp_abs)
                return cli_failf("mount", json, negative_errno(), NULL, NULL, "mount point %s: %s", mp,
                                 strerror(errno));

        /* Signals become events of the relay loop; the stream never raises SIGPIPE. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        _cleanup_close_ int sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sig_fd < 0)
                return cli_failf("mount", json, negative_errno(), NULL, NULL, "signalfd: %s", strerror(errno));

        json_t *req = json_pack("{s:s,s:s}", "op", "fuse_serve", "path", guest_path);
        _cleanup_free_ char *req_s = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!req_s)
                return cli_failf("mount", json, SMOLVM_EINVAL, NULL, NULL, "mount: the path is not valid UTF-8");
        char err[1024] = "";
        _cleanup_close_ int stream = smolvm_fuse_client_open(vm_dir, req_s, err, sizeof(err));
        if (stream < 0)
                return cli_failf("mount", json, stream, NULL, NULL, "%s:%s: %s", sandbox, guest_path, err);

        /* libfuse does the mount (fusermount3 when not root) and gives us the
         * /dev/fuse fd. We do not use its request decoding: the guest already
         * speaks the kernel's wire protocol, so decoding each request only to
         * re-encode it would add copies and a second parser of hostile replies.
         * Raw messages go through smolvm_fuse_relay() untouched (but for clamping
         * INIT's sizes). */
        _cleanup_free_ char *opts = fsname_option(id, guest_path);
        if (!opts)
                return cli_failf("mount", json, -ENOMEM, NULL, NULL, "out of memory");
        char *fargv[] = { (char *)"smolvm-fs", (char *)"-o", opts, NULL };
        struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
        struct fuse_lowlevel_ops ops;
        memset(&ops, 0, sizeof(ops));
        struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
        if (!se)
                return cli_failf("mount", json, -EIO, NULL, NULL, "fuse_session_new failed (see above)");
        if (fuse_session_mount(se, mp_abs) != 0) {
                fuse_session_destroy(se);
                return cli_failf("mount", json, -EIO, NULL, "check that /dev/fuse exists and fusermount3 is installed",
                                 "mount %s: FUSE mount failed (see above)", mp_abs);
        }
        int fuse_fd = fuse_session_fd(se);

        json_t *data = json_pack("{s:s,s:s,s:s,s:b}", "id", id, "path", guest_path, "mountpoint", mp_abs,
                                 "background", background);
        if (background) {
                fflush(stdout);
                fflush(stderr);
                pid_t pid = fork();
                if (pid < 0) {
                        fuse_session_unmount(se);
                        fuse_session_destroy(se);
                        json_decref(data);
                        return cli_failf("mount", json, negative_errno(), NULL, NULL, "fork: %s", strerror(errno));
                }
                if (pid > 0) {
                        /* Parent: leave the mount to the child. Without our copies of
                         * the fds, a dying child aborts the connection instead of
                         * leaving our stat hanging. */
                        close(fuse_fd);
                        stream = safe_close(stream);
                        r = wait_mount_ready(mp_abs, READY_TIMEOUT_MS);
                        if (r < 0) {
                                kill(pid, SIGTERM);
                                json_decref(data);
                                int code = cli_failf("mount", json, r, NULL, NULL,
                                                     "mount %s: the mount does not answer: %s", mp_abs, strerror(-r));
                                _exit(code); /* not through libfuse: the child owns the mount */
                        }
                        json_object_set_new(data, "pid", json_integer(pid));
                        print_ok("mount", json, data);
                        _exit(0);
                }
                json_decref(data);
                data = NULL;
                (void)setsid();
                (void)!chdir("/"); /* keep no directory of the caller busy */
                redirect_stdio_to_null();
        } else {
                json_object_set_new(data, "pid", json_integer(getpid()));
                print_ok("mount", json, data);
                if (!json)
                        fprintf(stderr, "smolvm-fs: %s:%s mounted on %s (Ctrl-C to unmount)\n", sandbox, guest_path,
                                mp_abs);
        }

        r = smolvm_fuse_relay_cancellable(fuse_fd, stream, sig_fd);
        /* The connection's pending requests fail once fuse_session_unmount closes
         * the /dev/fuse fd (ours is the only one), then the mount is detached:
         * nothing waits for the guest any more. */
        fuse_session_unmount(se);
        fuse_session_destroy(se);
        if (r == 0) {
                fprintf(stderr, "smolvm-fs: %s: the sandbox stopped or the file system was unmounted\n", mp_abs);
                return 0;
        }
        if (r == -ECANCELED) {
                fprintf(stderr, "smolvm-fs: %s: unmounted\n", mp_abs);
                return 0;
        }
        cli_error("%s: relay failed: %s; unmounted", mp_abs, strerror(-r));
        return CLI_EXIT_ERROR;
}

static const cli_verb fs_verbs[] = {
        { "mount", cmd_mount, "mount a sandbox's directory read-only on the host" },
        { "umount", cmd_umount, "unmount it (its smolvm-fs process then exits)" },
        { "unmount", cmd_umount, NULL },
        { NULL, NULL, NULL },
};

static const cli_family fs_family = {
        .about = fs_about,
        .footer = fs_footer,
        .verbs = fs_verbs,
};

int main(int argc, char **argv)
{
        cli_set_program("smolvm-fs");
        if (argc >= 2 && !strcmp(argv[1], "--version")) {
                printf("smolvm-fs %s\n", SMOLVM_VERSION);
                return 0;
        }
        return cli_run_family(&fs_family, argc, argv);
}
