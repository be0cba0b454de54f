/* SPDX-License-Identifier: Apache-2.0 */
/* The duty registry and what the duties add to the VM (duty.h). */
#include "duty.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sup.h"
#include "util.h"

int sup_vm_extra_arg(sup_vm_extra *x, const char *fmt, ...)
{
        _cleanup_free_ char *arg = NULL;
        char *joined;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&arg, fmt, ap);
        va_end(ap);
        if (n < 0) {
                arg = NULL;
                return -ENOMEM;
        }
        if (asprintf(&joined, "%s%s%s", x->cmdline ? x->cmdline : "", x->cmdline ? " " : "", arg) < 0)
                return -ENOMEM;
        free(x->cmdline);
        x->cmdline = joined;
        return 0;
}

int sup_vm_extra_fs(sup_vm_extra *x, const char *socket_path, const char *tag)
{
        if (x->n_fs >= ARRAY_SIZE(x->fs))
                return -E2BIG;
        x->fs[x->n_fs++] = (sup_vm_fs){ .socket_path = socket_path, .tag = tag };
        return 0;
}

int sup_duty_add(sup *s, const sup_duty_ops *ops)
{
        void *self = NULL;
        int r;

        if (s->n_duties >= ARRAY_SIZE(s->duties)) {
                sup_fail(s, false, NULL, "too many supervisor duties (raise SUP_MAX_DUTIES)");
                return -E2BIG;
        }
        r = ops->create(s, &self);
        if (r < 0 || !self)
                return r;
        s->duties[s->n_duties++] = (struct sup_duty_slot){ .ops = ops, .self = self };
        return 0;
}

int sup_duties_prepare(sup *s, sup_vm_extra *x)
{
        for (size_t i = 0; i < s->n_duties; i++) {
                const sup_duty_ops *o = s->duties[i].ops;
                int r = o->prepare ? o->prepare(s->duties[i].self, x) : 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

int sup_duties_guest_up(sup *s, uint64_t now)
{
        int all = 1;

        for (size_t i = 0; i < s->n_duties; i++) {
                struct sup_duty_slot *d = &s->duties[i];
                if (d->up)
                        continue;
                int r = d->ops->guest_up ? d->ops->guest_up(d->self, now) : 1;
                if (r < 0)
                        return r;
                if (r > 0)
                        d->up = true;
                else
                        all = 0;
        }
        return all;
}

void sup_duties_reap(sup *s, uint64_t now)
{
        for (size_t i = 0; i < s->n_duties; i++)
                if (s->duties[i].ops->reap)
                        s->duties[i].ops->reap(s->duties[i].self, now);
}

int sup_duties_step(sup *s, uint64_t now)
{
        for (size_t i = 0; i < s->n_duties; i++) {
                const sup_duty_ops *o = s->duties[i].ops;
                int r = o->step ? o->step(s->duties[i].self, now) : 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

uint64_t sup_duties_deadline(const sup *s)
{
        uint64_t until = UINT64_MAX;

        for (size_t i = 0; i < s->n_duties; i++)
                if (s->duties[i].ops->deadline)
                        until = MIN(until, s->duties[i].ops->deadline(s->duties[i].self));
        return until;
}

bool sup_duties_own_pid(const sup *s, pid_t pid)
{
        for (size_t i = 0; i < s->n_duties; i++)
                if (s->duties[i].ops->owns_pid && s->duties[i].ops->owns_pid(s->duties[i].self, pid))
                        return true;
        return false;
}

int sup_duties_accept(sup *s, uint32_t local_port, uint32_t peer_port)
{
        for (size_t i = 0; i < s->n_duties; i++) {
                if (!s->duties[i].ops->accept)
                        continue;
                int fd = s->duties[i].ops->accept(s->duties[i].self, local_port, peer_port);
                if (fd != -ECONNREFUSED)
                        return fd;
        }
        return -ECONNREFUSED;
}

void sup_duties_detach(sup *s)
{
        for (size_t i = 0; i < s->n_duties; i++)
                if (s->duties[i].ops->detach)
                        s->duties[i].ops->detach(s->duties[i].self);
}

void sup_duties_destroy(sup *s)
{
        for (size_t i = 0; i < s->n_duties; i++)
                s->duties[i].ops->destroy(s->duties[i].self);
        s->n_duties = 0;
}
