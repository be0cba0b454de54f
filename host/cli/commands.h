/* SPDX-License-Identifier: Apache-2.0 */
/* One entry point per subcommand, each in its own file (cmd_<name>.c; the
 * lifecycle verbs start, stop, pause, resume in cmd_lifecycle.c). Each receives
 * argv starting at the subcommand name and returns the exit code. */
#pragma once

int cmd_run(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_list(int argc, char **argv); /* smolvm ls */
int cmd_info(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_shell(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_env(int argc, char **argv);
int cmd_net(int argc, char **argv);
int cmd_port(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_setup(int argc, char **argv);
int cmd_mcp(int argc, char **argv);
int cmd_workspace(int argc, char **argv);

/* --max-size SIZE (cp, workspace persist): a cli_opt CLI_CALL parser into a
 * uint64_t (cmd_cp.c). */
int cli_opt_max_size(const char *arg, void *field);
int cmd_snapshot(int argc, char **argv);
int cmd_fork(int argc, char **argv); /* in cmd_snapshot.c */
/* smolvm snapshot export | import (cmd_snapshot_xport.c). */
int cmd_snapshot_export(int argc, char **argv);
int cmd_snapshot_import(int argc, char **argv);
/* A snapshot as `snapshot info --json` shows it (cmd_snapshot.c). */
#include <jansson.h>
struct smolvm_snapshot_info;
json_t *snapshot_info_json(const struct smolvm_snapshot_info *s);
