/* SPDX-License-Identifier: Apache-2.0 */
/* One entry point per subcommand, each in its own file (cmd_<name>.c).
 * Each receives argv starting at the subcommand name and returns the exit code. */
#pragma once

int cmd_run(int argc, char **argv);
int cmd_image(int argc, char **argv);
