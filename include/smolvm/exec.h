/* SPDX-License-Identifier: Apache-2.0 */
/* libsmolvm: running commands in a VM (smolvm_exec, smolvm_run, results). Part of <smolvm/smolvm.h>, which includes it (the
 * types and conventions it uses are there): include that, not this file. */
#pragma once

#ifndef SMOLVM_INSIDE_SMOLVM_H
#error "include <smolvm/smolvm.h>, not this file"
#endif

/* ---- running commands ------------------------------------------------------ */

typedef enum smolvm_stdin_mode {
        SMOLVM_STDIN_NONE = 0, /* the command reads /dev/null */
        SMOLVM_STDIN_FD,       /* forward stdin_fd until EOF (the fd is not closed) */
        SMOLVM_STDIN_BYTES,    /* send stdin_data[0..stdin_len), then EOF */
} smolvm_stdin_mode;

typedef struct smolvm_exec_opts {
        const char *const *argv;  /* NULL-terminated, at least one element */
        const char *const *env;   /* NULL-terminated "K=V" added to the guest's base env, or NULL */
        const char *cwd;          /* absolute guest path, or NULL (/root) */
        uint32_t timeout_ms;      /* 0: none. On expiry the guest kills the command's
                                   * process group and reports timed_out. The host gives
                                   * up on its own a margin later (-ETIMEDOUT). */
        smolvm_stdin_mode stdin_mode;
        int stdin_fd;
        const void *stdin_data;
        size_t stdin_len;
        int cancel_fd;            /* > 0: give up with -ECANCELED once readable (the command
                                   * is killed); 0 or -1: none */
        size_t max_output_bytes;  /* smolvm_run() only: cap per stream; 0: the default */
        /* What the command leaves running in the background (`cmd &`, `nohup
         * cmd &`) keeps running after it exited, as over SSH, and does not hold
         * the exec open; what it writes after the exec ended goes to the exec
         * log (smolvm_exec_log()). true: SIGKILL the command's process group
         * when it exits instead. While the command runs, timeout_ms, cancel_fd
         * and the end of the client kill the whole group either way. */
        bool kill_background;
        /* Start the command and return at once (docker's -d): smolvm_exec()
         * returns 0 with ret_status->pid once it runs (on_started is called;
         * nothing else). It reads /dev/null, its stdout and stderr go to the
         * exec log, and it is not killed when the call returns. Not with tty,
         * stdin or timeout_ms (-EINVAL). */
        bool detach;
        /* Run the command on a pseudo-terminal in the guest (docker's -t): it
         * is the command's stdin, stdout, stderr and controlling terminal, so
         * its output is one stream (on_stdout), and control characters in the
         * stdin sent (Ctrl-C, Ctrl-Z, Ctrl-D) become signals and EOF there. */
        bool tty;
        const char *term;         /* tty: TERM for the command; NULL: the guest's (xterm). A
                                   * TERM in env wins */
        unsigned short rows, cols; /* tty: the window size at start when tty_size_fd < 0
                                    * (0: left to the guest kernel) */
        int tty_size_fd;          /* tty, >= 0: a terminal whose size (TIOCGWINSZ) the guest's
                                   * gets at start and after each resize_fd wake-up; -1: rows, cols */
        int resize_fd;            /* tty, > 0: readable when the window size changed (a signalfd
                                   * for SIGWINCH, a pipe): the library reads it once per wake-up
                                   * (at most 4 KiB) and sends the new size; 0 or -1: none */
} smolvm_exec_opts;

/* Fill *o with the defaults (zeroes, cancel_fd, stdin_fd, tty_size_fd and
 * resize_fd -1). */
SMOLVM_EXPORT void smolvm_exec_opts_init(smolvm_exec_opts *o);

/* Callbacks of smolvm_exec(). Any may be NULL. Returning a negative errno aborts
 * the exec: the command is killed and smolvm_exec() returns that value. Data is
 * valid only during the call. */
typedef struct smolvm_exec_callbacks {
        int (*on_started)(void *userdata, int guest_pid);
        int (*on_stdout)(void *userdata, const void *data, size_t len);
        int (*on_stderr)(void *userdata, const void *data, size_t len);
        void *userdata;
} smolvm_exec_callbacks;

typedef struct smolvm_exec_status {
        int exit_code;            /* 0..255; meaningful when signal == 0 and !timed_out */
        int signal;               /* 1..64 if the command died by a signal, else 0 */
        bool timed_out;           /* the guest killed it at timeout_ms */
        uint64_t duration_ms;     /* host wall clock, request sent -> exit received */
        uint64_t guest_duration_ms; /* as reported by the guest (0 if absent) */
        int pid;                  /* the command's pid in the guest (0 if not known): names
                                   * its exec log */
} smolvm_exec_status;

/* Run a command, streaming its output through the callbacks in constant memory.
 * Returns 0 with *ret_status filled once the command exited (whatever its exit
 * code), or a negative errno: -ECONNREFUSED/-ENOENT (VM not running), -EPROTO /
 * -EBADMSG (the agent broke the protocol), -ECONNRESET (stream ended without an
 * exit status), -ETIMEDOUT (host safety net), -ECANCELED, a callback's error, or
 * the errno the agent reported (e.g. -ENOENT: no such command). */
SMOLVM_EXPORT int smolvm_exec(smolvm_vm *vm, const smolvm_exec_opts *opts, const smolvm_exec_callbacks *cbs,
                              smolvm_exec_status *ret_status);

typedef struct smolvm_result {
        smolvm_exec_status status;
        char *stdout_data;        /* NUL-terminated for convenience; may contain NULs */
        size_t stdout_len;
        bool stdout_truncated;    /* more than the cap was produced; the rest was dropped */
        char *stderr_data;
        size_t stderr_len;
        bool stderr_truncated;
} smolvm_result;

/* Run a command and collect its output (each stream capped at
 * opts->max_output_bytes). Returns as smolvm_exec(); on success free *ret with
 * smolvm_result_free(). */
SMOLVM_EXPORT int smolvm_run(smolvm_vm *vm, const smolvm_exec_opts *opts, smolvm_result *ret);
SMOLVM_EXPORT void smolvm_result_free(smolvm_result *r);

/* The exec log of the command with guest pid pid: the output of a detached
 * command, or what the background processes of an exec wrote to its stdout and
 * stderr after it ended. The guest keeps it in /run/smolvm/exec/<pid>.log
 * (tmpfs, until the VM stops), starting a new file at 4 MiB with the previous
 * one as <pid>.log.1: both are read, oldest first. *ret_data as for
 * smolvm_read_file() (max_bytes per file). Returns 0, -ENOENT (no log for that
 * pid), or as smolvm_read_file(). */
SMOLVM_EXPORT int smolvm_exec_log(smolvm_vm *vm, int pid, void **ret_data, size_t *ret_len, size_t max_bytes);
