/* SPDX-License-Identifier: Apache-2.0 */
/* What a build tells its caller: progress lines through the caller's callback
 * (library code prints nothing, image.h) and the one error message, whose
 * first writer wins because the innermost context is the most precise. */
#include "image_i.h"

#include <stdio.h>

#define PROGRESS_LINE_MAX 1024

void ib_progress(ib_ctx *c, const char *fmt, ...)
{
        if (!c->progress)
                return;
        char line[PROGRESS_LINE_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        c->progress(c->ud, line);
}

int ib_errf(ib_err *err, int r, const char *fmt, ...)
{
        if (err && !err->msg) {
                va_list ap;
                va_start(ap, fmt);
                /* %m in fmt names r, whatever errno became since. */
                errno = r < 0 ? -r : EIO;
                if (vasprintf(&err->msg, fmt, ap) < 0)
                        err->msg = NULL;
                va_end(ap);
        }
        return r;
}
