/* SPDX-License-Identifier: Apache-2.0 */
/* libsmolvm internals shared by the library's files. */
#pragma once

#include <pthread.h>
#include <stdarg.h>
#include <sys/types.h>

#include "smolvm/smolvm.h"

#define SMOLVM_ID_LEN 12 /* hex characters */

/* Time the supervisor gets beyond the boot timeout to write its ready line. */
#define SUPERVISOR_READY_MARGIN_MS 15000u
/* Time the supervisor gets to clean up after SIGTERM before we SIGKILL its group. */
#define SUPERVISOR_STOP_TIMEOUT_MS 10000u
/* Host safety net beyond the guest's exec timeout. */
#define EXEC_HOST_MARGIN_MS 15000u
/* Hybrid vsock handshake deadline. */
#define CONNECT_TIMEOUT_MS 10000u

typedef enum vm_state {
        VM_CREATED,
        VM_RUNNING,
        VM_DEAD,
} vm_state;

struct smolvm_vm {
        char id[SMOLVM_ID_LEN + 1];
        char *home;               /* $SMOLVM_HOME, absolute */
        char *dir;                /* home/vms/<id> */
        char *image_dir;
        bool ephemeral;
        unsigned boot_timeout_ms;
        int cancel_fd;

        pthread_mutex_t lock;
        /* protected by lock: */
        vm_state state;
        pid_t supervisor_pid;     /* > 0 while we own a live (unreaped) child */
        bool have_boot_info;
        smolvm_boot_info boot;
};

/* ---- error.c ---- */
/* Record the thread's last error; returns code (negative errno). The hint may be
 * NULL. Printf-style message. */
int vm_error(int code, const char *hint, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same, also recording a console tail (sanitised, last part kept). */
int vm_error_console(int code, const char *hint, const char *console, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Mark the last error as reported by the guest agent. */
void vm_error_mark_guest(void);
/* Replace bytes a terminal could interpret (control characters other than \n and
 * \t, DEL) with '?', in place. For anything the guest wrote. */
void sanitize_text(char *s);

/* ---- paths.c ---- */
/* $SMOLVM_HOME or ~/.local/state/smolvm, malloc'd. Returns 0 or negative errno. */
int smolvm_home_dir(char **ret);
/* $SMOLVM_LIBEXECDIR or the compile-time default. Never NULL. */
const char *smolvm_libexec_dir(void);
/* mkdir -p with mode for each missing component. Returns 0 or negative errno. */
int mkdir_parents(const char *path, mode_t mode);
/* Remove path recursively without following symlinks. Missing path is fine.
 * Returns 0 or negative errno. */
int rm_rf(const char *path);
/* Write data to path atomically (temp file + fsync + rename). Records the error. */
int write_file_atomic(const char *path, const char *data, size_t len);
/* Random hex id of SMOLVM_ID_LEN characters. */
int random_id(char ret[SMOLVM_ID_LEN + 1]);
/* Image directory for a name (see smolvm_config.image), checked for the files the
 * supervisor needs. Records the error. */
int resolve_image(const char *home, const char *name, char **ret_dir);

/* ---- supervisor.c ---- */
int supervisor_spawn(smolvm_vm *vm, int *ret_ready_fd);
/* Read and validate the ready line. Records the error. */
int supervisor_wait_ready(smolvm_vm *vm, int ready_fd);
/* Terminate and reap the supervisor (called with vm->lock held). */
void supervisor_stop(smolvm_vm *vm);

/* ---- connect.c ---- */
/* Connect to the guest's port through DIR/vsock.sock. Returns a non-blocking
 * connected fd or a negative errno. Records the error. */
int vsock_connect(const char *vm_dir, uint32_t port, int cancel_fd);
