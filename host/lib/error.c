/* SPDX-License-Identifier: Apache-2.0 */
/* Per-thread error detail, like errno: concurrent execs on one VM from several
 * threads each see their own failure. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "smolvm_i.h"

#define CONSOLE_TAIL_MAX 4096

static __thread struct {
        smolvm_error pub;
        char message[1024];
        char hint[512];
        char console[CONSOLE_TAIL_MAX];
} last_error;

__attribute__((format(printf, 4, 0)))
static int record(int code, const char *hint, const char *console, const char *fmt, va_list ap)
{
        if (code >= 0)
                code = -EIO;
        vsnprintf(last_error.message, sizeof(last_error.message), fmt, ap);
        snprintf(last_error.hint, sizeof(last_error.hint), "%s", hint ? hint : "");
        /* Messages name guest paths (a download's list_tree entries) and reach a
         * terminal: no escape sequence from a hostile guest gets through. */
        sanitize_text(last_error.message);
        sanitize_text(last_error.hint);
        last_error.console[0] = '\0';
        if (console && *console) {
                /* Keep the end: a panic's last lines say why. Start at a line boundary. */
                size_t len = strlen(console);
                const char *start = console;
                if (len >= sizeof(last_error.console)) {
                        start = console + len - (sizeof(last_error.console) - 1);
                        const char *nl = strchr(start, '\n');
                        if (nl && nl[1])
                                start = nl + 1;
                }
                snprintf(last_error.console, sizeof(last_error.console), "%s", start);
                sanitize_text(last_error.console);
        }
        last_error.pub.code = code;
        last_error.pub.from_guest = false;
        last_error.pub.message = last_error.message;
        last_error.pub.hint = last_error.hint;
        last_error.pub.console_tail = last_error.console;
        return code;
}

int vm_error(int code, const char *hint, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = record(code, hint, NULL, fmt, ap);
        va_end(ap);
        return r;
}

int vm_error_console(int code, const char *hint, const char *console, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = record(code, hint, console, fmt, ap);
        va_end(ap);
        return r;
}

int vm_error_set_code(int code)
{
        last_error.pub.code = code;
        return code;
}

void vm_error_save(vm_error_saved *ret)
{
        ret->code = last_error.pub.code;
        ret->from_guest = last_error.pub.from_guest;
        snprintf(ret->message, sizeof(ret->message), "%s", last_error.message);
        snprintf(ret->hint, sizeof(ret->hint), "%s", last_error.hint);
        snprintf(ret->console, sizeof(ret->console), "%s", last_error.console);
}

void vm_error_restore(const vm_error_saved *e)
{
        (void)vm_error_console(e->code, e->hint[0] ? e->hint : NULL, e->console, "%s", e->message);
        last_error.pub.from_guest = e->from_guest;
}

void vm_error_mark_guest(void)
{
        last_error.pub.from_guest = true;
}

SMOLVM_EXPORT const smolvm_error *smolvm_last_error(void)
{
        if (!last_error.pub.message) {
                last_error.pub.message = last_error.message;
                last_error.pub.hint = last_error.hint;
                last_error.pub.console_tail = last_error.console;
        }
        return &last_error.pub;
}

/* smolvm's wording of its codes (smolvm.h, "Error codes"). Several alias plain
 * errnos that also come back from the guest (a command's ENOENT), so the words
 * cover both meanings. */
static const struct {
        int code;
        const char *text;
} smolvm_codes[] = {
        { SMOLVM_ENOTFOUND, "Not found: no such VM, command, file or directory" },
        { SMOLVM_EEXIST, "Already exists" },
        { SMOLVM_EINVAL, "Invalid argument or configuration" },
        { SMOLVM_ETIMEDOUT, "Timed out" },
        { SMOLVM_ENOTRUNNING, "VM is not running" },
        { SMOLVM_EPAUSED, "VM is paused" },
        { SMOLVM_EALREADY, "VM is already in that state" },
        { SMOLVM_EUNREACHABLE, "Guest agent unreachable" },
        { SMOLVM_EIMAGE, "Image missing or unusable" },
        { SMOLVM_EBACKEND, "VM backend (supervisor or QEMU) failed" },
        { SMOLVM_EBUSY, "Busy: the VM is running, or another process holds its lock" },
        { SMOLVM_ECORRUPT, "State file corrupt" },
};

SMOLVM_EXPORT const char *smolvm_strerror(int code)
{
        if (code > 0)
                code = -code;
        for (size_t i = 0; i < ARRAY_SIZE(smolvm_codes); i++)
                if (smolvm_codes[i].code == code)
                        return smolvm_codes[i].text;
        const char *s = strerrordesc_np(-code);
        return s ? s : "Unknown error";
}

SMOLVM_EXPORT const char *smolvm_version(void)
{
        return SMOLVM_VERSION;
}
