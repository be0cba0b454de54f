/* SPDX-License-Identifier: Apache-2.0 */
/* libsmolvm: run commands in disposable QEMU microVMs.
 *
 *     smolvm_config cfg;
 *     smolvm_config_init(&cfg);
 *     cfg.ephemeral = true;
 *     smolvm_vm *vm;
 *     if (smolvm_create(&cfg, &vm) < 0 || smolvm_start(vm) < 0)
 *             fprintf(stderr, "%s\n", smolvm_last_error()->message);
 *     const char *argv[] = { "uname", "-a", NULL };
 *     smolvm_exec_opts o;
 *     smolvm_exec_opts_init(&o);
 *     o.argv = argv;
 *     smolvm_result res;
 *     smolvm_run(vm, &o, &res);
 *     ...
 *     smolvm_result_free(&res);
 *     smolvm_free(vm);   // destroys the VM if it is still running
 *
 * Errors: every int-returning function returns 0 (or a count) on success and a
 * negative errno on failure; smolvm_last_error() then describes it (message, hint,
 * guest console tail). The detail is per thread, like errno.
 *
 * Threads: smolvm_exec()/smolvm_run() may be called concurrently from any number
 * of threads on one started VM: each uses its own connection to the guest agent.
 * smolvm_start(), smolvm_destroy() and smolvm_free() must not race with each other
 * or with running execs on the same VM.
 *
 * The guest is treated as hostile: everything it sends is validated and bounded;
 * a misbehaving guest yields an error (-EPROTO, -EBADMSG, -ETIMEDOUT, ...), never a
 * crash or unbounded memory use in the caller. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SMOLVM_BUILDING_LIB)
#define SMOLVM_EXPORT __attribute__((visibility("default")))
#else
#define SMOLVM_EXPORT
#endif

/* Default cap on each buffered stream of smolvm_run(). */
#define SMOLVM_DEFAULT_OUTPUT_CAP ((size_t)64 * 1024 * 1024)
#define SMOLVM_DEFAULT_BOOT_TIMEOUT_MS 60000u
#define SMOLVM_DEFAULT_MEM_MIB 512u
#define SMOLVM_DEFAULT_VCPUS 1u

typedef struct smolvm_vm smolvm_vm;

/* ---- errors ---------------------------------------------------------------- */

typedef struct smolvm_error {
        int code;                 /* the negative errno last returned */
        const char *message;      /* names the object and the step, e.g.
                                   * "write /x/vms/ab12/config.json: No space left on device" */
        const char *hint;         /* what the user can do, or "" */
        const char *console_tail; /* last lines of the guest console (boot failures), or "" */
        bool from_guest;          /* the guest agent reported it, e.g. -ENOENT for a command
                                   * that does not exist or a bad cwd (message says which) */
} smolvm_error;

/* The detail of the last failure on this thread. Never NULL; the strings stay
 * valid until the next failing libsmolvm call on this thread. */
SMOLVM_EXPORT const smolvm_error *smolvm_last_error(void);
/* A static description of a (negative or positive) errno-style code. */
SMOLVM_EXPORT const char *smolvm_strerror(int code);
/* The library version, e.g. "0.1.0". */
SMOLVM_EXPORT const char *smolvm_version(void);

/* ---- VM lifecycle ---------------------------------------------------------- */

typedef struct smolvm_config {
        const char *image;        /* NULL: "default"; a name under $SMOLVM_HOME/images/,
                                   * an image key, or a directory path (contains '/') */
        unsigned vcpus;           /* 0: SMOLVM_DEFAULT_VCPUS; max 64 */
        unsigned mem_mib;         /* 0: SMOLVM_DEFAULT_MEM_MIB; 64..262144 */
        const char *accel;        /* NULL or "auto", "kvm", "tcg" */
        unsigned boot_timeout_ms; /* 0: SMOLVM_DEFAULT_BOOT_TIMEOUT_MS */
        bool ephemeral;           /* the VM (and its directory) dies with its creator */
        const char *kernel_cmdline; /* appended to the guest kernel command line, or NULL:
                                   * then $SMOLVM_KERNEL_APPEND if set (debugging, tests) */
        int cancel_fd;            /* > 0: smolvm_start() gives up with -ECANCELED once this fd
                                   * is readable (e.g. a signalfd); 0 or -1: none */
} smolvm_config;

/* Fill *cfg with the defaults (equivalent to zeroing it, with cancel_fd = -1). */
SMOLVM_EXPORT void smolvm_config_init(smolvm_config *cfg);

/* Allocate a VM id, create $SMOLVM_HOME/vms/<id>/ and its config.json (written
 * atomically), resolve the image. Nothing runs yet.
 * Returns 0 and *ret_vm, -ENOENT (image not built), -EINVAL (bad config),
 * -ENOSPC, -EACCES, ... */
SMOLVM_EXPORT int smolvm_create(const smolvm_config *cfg, smolvm_vm **ret_vm);

/* Boot the VM: spawn smolvm-supervisor ($SMOLVM_LIBEXECDIR) as a child and wait
 * until the guest agent is ready (boot timeout + a margin). On failure the
 * supervisor is gone and the VM directory removed; smolvm_last_error() has the
 * supervisor's message, hint and the console tail.
 * Returns 0, -ETIMEDOUT, -ECANCELED (cancel_fd), -ENOENT (supervisor binary
 * missing), -EALREADY (already started), or the error the supervisor reported. */
SMOLVM_EXPORT int smolvm_start(smolvm_vm *vm);

/* Stop the VM (SIGTERM the supervisor, which kills QEMU; SIGKILL its process
 * group if it lingers) and remove its directory. Safe to call on a VM that never
 * started or already died. Returns 0 or a negative errno (the directory could
 * not be removed). */
SMOLVM_EXPORT int smolvm_destroy(smolvm_vm *vm);

/* Destroy (if still running or never started) and free. NULL is fine. */
SMOLVM_EXPORT void smolvm_free(smolvm_vm *vm);

SMOLVM_EXPORT const char *smolvm_id(const smolvm_vm *vm);
/* Absolute path of the VM directory. */
SMOLVM_EXPORT const char *smolvm_dir(const smolvm_vm *vm);

typedef struct smolvm_boot_info {
        uint64_t boot_ms;         /* supervisor start -> agent ready, as reported */
        uint64_t host_boot_ms;    /* smolvm_start() wall clock */
        uint64_t t_vmm_ms, t_kernel_ms, t_init_ms, t_agent_ms; /* split, 0 if unknown */
        char accel[16];           /* "kvm", "tcg" */
        char accel_reason[256];
} smolvm_boot_info;

/* Boot info of a started VM. Returns 0 or -ESRCH (not started). */
SMOLVM_EXPORT int smolvm_boot_info_get(const smolvm_vm *vm, smolvm_boot_info *ret);

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
} smolvm_exec_opts;

/* Fill *o with the defaults (zeroes, cancel_fd = -1, stdin_fd = -1). */
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

#ifdef __cplusplus
}
#endif
