/* SPDX-License-Identifier: Apache-2.0 */
/* Console logging, clocks, the kernel command line: shared by PID 1 and handlers. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "util.h"

void init_log(const char *fmt, ...)
{
        int saved = errno;
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        /* One write per line: handlers and PID 1 share the console. */
        char line[1100];
        int m = snprintf(line, sizeof(line), "smolvm-init: %s\n", buf);
        if (m > 0)
                (void)!write(STDERR_FILENO, line, MIN((size_t)m, sizeof(line) - 1));
        errno = saved;
}

uint64_t boottime_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

_Noreturn void fatal(const char *fmt, ...)
{
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        init_log("FATAL: %s", buf);
        init_log("powering off");
        sync();
        (void)reboot(RB_POWER_OFF);
        /* Not PID 1 or no CAP_SYS_BOOT: nothing sensible is left. */
        _exit(1);
}

void cmdline_foreach(const char *key, void (*fn)(char *value, void *ud), void *ud)
{
        char buf[4096];
        if (read_line_file("/proc/cmdline", buf, sizeof(buf)) < 0)
                return;
        size_t klen = strlen(key);
        char *save = NULL;
        for (char *tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
                if (strncmp(tok, key, klen) == 0 && tok[klen] == '=')
                        fn(tok + klen + 1, ud);
}

/* The last occurrence wins, as for the kernel's own parameters: extra
 * arguments appended by the host override the defaults before them. */
static void keep_last(char *value, void *ud)
{
        char **last = ud;
        free(*last);
        *last = strdup(value);
}

char *cmdline_get(const char *key)
{
        char *value = NULL;
        cmdline_foreach(key, keep_last, &value);
        return value;
}
