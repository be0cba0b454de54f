/* SPDX-License-Identifier: Apache-2.0 */
/* smolvm logs ID: the guest's serial console (kernel and init messages). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "smolvm/smolvm.h"
#include "util.h"

/* console.log is size-capped by the supervisor; this bounds us anyway. */
#define LOGS_MAX_BYTES (16u * 1024 * 1024)

static const cli_cmd logs_cmd = {
        .name = "logs",
        .synopsis = "[--json] ID",
        .about = "Print the guest console of the VM (kernel and init messages; the console of\n"
                 "the current or last run). Command output is not in it: see 'smolvm exec'.\n",
        .json_help = "print the JSON envelope (docs/cli.md); data: {\"console\": \"...\"}",
};

int cmd_logs(int argc, char **argv)
{
        cli_parsed a;
        smolvm_vm *vm = NULL;
        int r;
        if (!cli_open_vm_arg(&logs_cmd, argc, argv, NULL, &a, &vm, &r))
                return r;
        char path[4096];
        snprintf(path, sizeof(path), "%s/console.log", smolvm_dir(vm));
        smolvm_free(vm);

        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno != ENOENT) {
                int e = errno;
                return cli_failf("logs", a.json, -e, NULL, NULL, "open %s: %s", path, strerror(e));
        }
        if (fd >= 0) {
                buf = malloc(LOGS_MAX_BYTES);
                if (!buf)
                        return cli_failf("logs", a.json, -ENOMEM, NULL, NULL, "out of memory");
                /* Keep the end if it is longer than we hold. */
                off_t end = lseek(fd, 0, SEEK_END);
                off_t start = end > (off_t)LOGS_MAX_BYTES ? end - (off_t)LOGS_MAX_BYTES : 0;
                ssize_t n = pread(fd, buf, LOGS_MAX_BYTES, start);
                len = n > 0 ? (size_t)n : 0;
        }
        if (a.json) {
                char *text = NULL;
                size_t tlen = 0;
                FILE *f = open_memstream(&text, &tlen);
                json_t *data = NULL;
                if (f) {
                        cli_json_string(f, buf ? buf : "", len);
                        fclose(f);
                        json_t *s = json_loadb(text, tlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
                        data = json_object();
                        if (data)
                                json_object_set_new(data, "console", s ? s : json_string(""));
                }
                free(text);
                cli_json_ok("logs", 0, data);
                return 0;
        }
        if (len && write_all(STDOUT_FILENO, buf, len) < 0)
                return CLI_EXIT_ERROR;
        return 0;
}
