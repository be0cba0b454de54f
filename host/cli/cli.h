/* SPDX-License-Identifier: Apache-2.0 */
/* What smolvm's subcommands share: libsmolvm-cli (output and the envelope, the
 * option tables, the exec relay) and the pieces only smolvm needs: the option
 * fragments of run, exec and create (vm_flags.c), commands on one VM (cli_vm.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cli_exec.h"
#include "cli_json_text.h"
#include "cli_opts.h"
#include "cli_out.h"
#include "mount_spec.h"
#include "smolvm/smolvm.h"

/* ---- vm_flags.c: option fragments ---- */

/* --env K=V, repeatable: v is NULL-terminated (NULL while n is 0). */
#define CLI_MAX_ENV_FLAGS 4096
typedef struct cli_env {
        const char **v; /* the strings point into argv */
        size_t n;
} cli_env;
/* A CLI_OPT_CALL parser: check arg by the guest's rules (cli_env_valid) and
 * append it to the cli_env at field. */
int cli_env_add(const char *arg, void *field);
void cli_env_done(cli_env *e);
/* Validate NAME=VALUE for --env by the guest's rules (agent_env_entry_check):
 * name [A-Za-z_][A-Za-z0-9_]*, value at most 64 KiB; prints the error. */
bool cli_env_valid(const char *v);

/* The VM's shape (run, create): --mem, --cpus, --image, --mount,
 * --mount-transport, --publish, --accel, --boot-timeout. */
/* --allow-host, --deny-host, --add-host (repeatable), --net open. */
typedef struct cli_net {
        const char **v[3]; /* allow, deny, hosts: NULL-terminated, pointing into argv */
        size_t n[3];
        bool open, any;
        smolvm_net net;
} cli_net;
/* --publish [HOST_PORT:]GUEST_PORT, repeatable (cmd_port.c). */
typedef struct cli_ports {
        smolvm_port v[SMOLVM_MAX_PORTS];
        size_t n;
} cli_ports;
/* A CLI_OPT_CALL parser: append one --publish to the cli_ports at field. */
int cli_publish_add(const char *arg, void *field);

typedef struct cli_vm_args {
        smolvm_config cfg;
        cli_mounts mounts;
        cli_net net;
        cli_ports ports;
} cli_vm_args;
extern const cli_opt cli_vm_opts[];
void cli_vm_args_init(cli_vm_args *a);
/* Point cfg at the parsed mounts (a must outlive cfg's use). */
void cli_vm_args_finish(cli_vm_args *a);
void cli_vm_args_done(cli_vm_args *a);

/* An exec's options (run, exec): -e/--env, -w/--workdir (also alone:
 * cli_exec_env_opts, for shell), -i/--interactive, -t/--tty, --timeout. */
typedef struct cli_exec_args {
        smolvm_exec_opts opts;
        cli_env env;
        bool interactive;
        bool tty;
} cli_exec_args;
extern const cli_opt cli_exec_opts[];
extern const cli_opt cli_exec_env_opts[];
void cli_exec_args_init(cli_exec_args *a);
/* Fill opts: the command argv (NULL-terminated), the env, tty, stdin
 * (cli_exec_stdin). Returns 0, or CLI_EXIT_ERROR after reporting a usage error
 * of p's command: -t without a terminal on stdin. */
int cli_exec_args_finish(cli_exec_args *a, const cli_parsed *p, char **argv);
void cli_exec_args_done(cli_exec_args *a);

/* ---- cli_vm.c: commands on existing VMs ---- */

/* One VM as JSON: {"id","name","state","created","supervisor_pid","vcpus",
 * "mem_mib","disk_mib","accel","image","ephemeral"}. */
json_t *cli_vm_info_json(const smolvm_vm_info *info);
/* Parse `COMMAND [OPTIONS] ID` by cmd (options into args, which may be NULL when
 * cmd has none) and open the VM. Returns true with *ret_vm (free with
 * smolvm_free()) and *p; false when the caller should just exit with *ret_exit
 * (--help printed, or the error reported). */
bool cli_open_vm_arg(const cli_cmd *cmd, int argc, char **argv, void *args, cli_parsed *p, smolvm_vm **ret_vm,
                     int *ret_exit);
/* start/stop/pause/resume: open the one VM, call op, print its id (or the
 * envelope with the VM's info as data). Returns the exit code. */
int cli_vm_op(const cli_cmd *cmd, int (*op)(smolvm_vm *vm), int argc, char **argv);

/* ---- cli_progress.c: a long transfer's bytes so far ---- */

/* On stderr when it is a terminal, redrawn at most every 200 ms; nothing when
 * it is not. Its callback may be called from another thread (hydrate): one
 * transfer at a time. */
typedef struct cli_progress {
        const char *label;
        bool on, shown, compressed;
        uint64_t start_ms, last_ms;
} cli_progress;
void cli_progress_init(cli_progress *p, const char *label, bool compressed);
/* smolvm_archive_opts.progress, with the cli_progress as userdata. */
void cli_progress_cb(void *userdata, uint64_t tar_bytes, uint64_t file_bytes);
/* Erase the line if one was drawn. */
void cli_progress_end(cli_progress *p);
/* One archive or tar transfer from the CLI (workspace, cp streams, snapshot
 * export/import): fn runs with o->cancel_fd a signalfd of SIGINT, SIGTERM and
 * SIGHUP and o->progress drawing on stderr (labelled command; compressed: also
 * the file's bytes). Returns 0 when fn did (the caller prints its result), else
 * the exit code after reporting the error: 128+N for a signal, 141 for -EPIPE
 * (our reader went away, as a pipeline writer's), the error's otherwise. */
typedef int (*cli_transfer_fn)(void *userdata, smolvm_archive_opts *o);
int cli_transfer(const char *command, bool json, bool compressed, smolvm_archive_opts *o, cli_transfer_fn fn,
                 void *userdata);
/* The same for a transfer to or from the VM vm_name (opened first, freed after). */
typedef int (*cli_vm_transfer_fn)(smolvm_vm *vm, void *userdata, smolvm_archive_opts *o);
int cli_transfer_vm(const char *command, bool json, bool compressed, const char *vm_name, smolvm_archive_opts *o,
                    cli_vm_transfer_fn fn, void *userdata);
