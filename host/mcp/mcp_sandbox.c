/* SPDX-License-Identifier: Apache-2.0 */
/* The sandboxes smolvm mcp created (mcp_tools.h): a reference-counted table,
 * the cap on live VMs, and the clean-up at exit. A sandbox is a persistent VM
 * (its supervisor detached), so --keep-sandboxes can leave it running; without
 * it the server deletes every sandbox of its own when the client goes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp_tools.h"

void mcp_sandboxes_init(mcp_sandboxes *t, unsigned max_vms)
{
        *t = (mcp_sandboxes){ .max_vms = max_vms };
        pthread_mutex_init(&t->lock, NULL);
}

int mcp_vm_slots_take(mcp_sandboxes *t, unsigned n)
{
        pthread_mutex_lock(&t->lock);
        int r = n <= t->max_vms - t->n_vms ? 0 : -EUSERS;
        if (r == 0)
                t->n_vms += n;
        pthread_mutex_unlock(&t->lock);
        return r;
}

void mcp_vm_slots_give(mcp_sandboxes *t, unsigned n)
{
        pthread_mutex_lock(&t->lock);
        t->n_vms -= n;
        pthread_mutex_unlock(&t->lock);
}

int mcp_vm_slot_take(mcp_sandboxes *t)
{
        return mcp_vm_slots_take(t, 1);
}

void mcp_vm_slot_give(mcp_sandboxes *t)
{
        mcp_vm_slots_give(t, 1);
}

int mcp_sandbox_add(mcp_sandboxes *t, smolvm_vm *vm)
{
        mcp_sandbox *sb = calloc(1, sizeof(*sb));
        if (!sb)
                return -ENOMEM;
        sb->vm = vm;
        snprintf(sb->id, sizeof(sb->id), "%s", smolvm_id(vm));
        sb->refs = 1;
        sb->listed = true;
        pthread_mutex_lock(&t->lock);
        /* Appended: sandbox_list shows the oldest first. */
        mcp_sandbox **p = &t->list;
        while (*p)
                p = &(*p)->next;
        *p = sb;
        pthread_mutex_unlock(&t->lock);
        return 0;
}

mcp_sandbox *mcp_sandbox_get(mcp_sandboxes *t, const char *id)
{
        pthread_mutex_lock(&t->lock);
        mcp_sandbox *sb = t->list;
        while (sb && strcmp(sb->id, id) != 0)
                sb = sb->next;
        if (sb)
                sb->refs++;
        pthread_mutex_unlock(&t->lock);
        return sb;
}

mcp_sandbox *mcp_sandbox_unlist(mcp_sandboxes *t, const char *id)
{
        pthread_mutex_lock(&t->lock);
        mcp_sandbox **p = &t->list;
        while (*p && strcmp((*p)->id, id) != 0)
                p = &(*p)->next;
        mcp_sandbox *sb = *p;
        if (sb) {
                *p = sb->next;
                sb->next = NULL;
                sb->listed = false;
        }
        pthread_mutex_unlock(&t->lock);
        return sb;
}

void mcp_sandbox_put(mcp_sandboxes *t, mcp_sandbox *sb)
{
        if (!sb)
                return;
        pthread_mutex_lock(&t->lock);
        bool last = --sb->refs == 0;
        if (last)
                t->n_vms--;
        pthread_mutex_unlock(&t->lock);
        if (last) {
                /* Only an unlisted sandbox reaches 0: its VM was deleted, or is kept. */
                smolvm_free(sb->vm);
                free(sb);
        }
}

void mcp_ids_free(char **ids)
{
        for (size_t i = 0; ids && ids[i]; i++)
                free(ids[i]);
        free(ids);
}

char **mcp_sandbox_ids(mcp_sandboxes *t)
{
        pthread_mutex_lock(&t->lock);
        size_t n = 0;
        for (mcp_sandbox *sb = t->list; sb; sb = sb->next)
                n++;
        char **ids = calloc(n + 1, sizeof(*ids));
        size_t i = 0;
        for (mcp_sandbox *sb = t->list; ids && sb; sb = sb->next) {
                ids[i] = strdup(sb->id);
                if (!ids[i]) {
                        mcp_ids_free(ids);
                        ids = NULL;
                        break;
                }
                i++;
        }
        pthread_mutex_unlock(&t->lock);
        return ids;
}

void mcp_sandboxes_done(mcp_sandboxes *t, bool keep)
{
        for (;;) {
                pthread_mutex_lock(&t->lock);
                mcp_sandbox *sb = t->list;
                pthread_mutex_unlock(&t->lock);
                if (!sb)
                        break;
                sb = mcp_sandbox_unlist(t, sb->id);
                if (keep) {
                        fprintf(stderr, "smolvm mcp: keeping sandbox %s (remove it with: smolvm rm -f %s)\n", sb->id,
                                sb->id);
                } else if (smolvm_delete(sb->vm, SMOLVM_DELETE_FORCE) < 0) {
                        const smolvm_error *e = smolvm_last_error();
                        fprintf(stderr, "smolvm mcp: deleting sandbox %s: %s\n", sb->id, e->message);
                }
                mcp_sandbox_put(t, sb);
        }
        pthread_mutex_destroy(&t->lock);
}

/* ---- the snapshots this server made ---- */

void mcp_snapshots_init(mcp_snapshots *t)
{
        *t = (mcp_snapshots){ 0 };
        pthread_mutex_init(&t->lock, NULL);
}

int mcp_snapshot_own(mcp_snapshots *t, const char *id)
{
        int r = 0;
        pthread_mutex_lock(&t->lock);
        if (t->n >= MCP_MAX_SNAPSHOTS) {
                r = -ENOSPC;
        } else {
                char(*ids)[16] = realloc(t->ids, (t->n + 1) * sizeof(*ids));
                if (!ids) {
                        r = -ENOMEM;
                } else {
                        t->ids = ids;
                        snprintf(ids[t->n++], sizeof(ids[0]), "%s", id);
                }
        }
        pthread_mutex_unlock(&t->lock);
        return r;
}

/* The index of id in t, or t->n. Under t's lock. */
static size_t snapshot_index(const mcp_snapshots *t, const char *id)
{
        size_t i = 0;
        while (i < t->n && strcmp(t->ids[i], id) != 0)
                i++;
        return i;
}

bool mcp_snapshot_is_own(mcp_snapshots *t, const char *id)
{
        pthread_mutex_lock(&t->lock);
        bool own = snapshot_index(t, id) < t->n;
        pthread_mutex_unlock(&t->lock);
        return own;
}

void mcp_snapshot_disown(mcp_snapshots *t, const char *id)
{
        pthread_mutex_lock(&t->lock);
        size_t i = snapshot_index(t, id);
        if (i < t->n) {
                memmove(t->ids[i], t->ids[i + 1], (t->n - i - 1) * sizeof(t->ids[0]));
                t->n--;
        }
        pthread_mutex_unlock(&t->lock);
}

void mcp_snapshots_done(mcp_snapshots *t, bool keep)
{
        for (size_t i = 0; i < t->n; i++) {
                if (keep) {
                        fprintf(stderr, "smolvm mcp: keeping snapshot %s (remove it with: smolvm snapshot rm %s)\n",
                                t->ids[i], t->ids[i]);
                } else if (smolvm_snapshot_rm(t->ids[i]) < 0 && smolvm_last_error()->code != SMOLVM_ENOTFOUND) {
                        /* Gone already (smolvm snapshot rm by hand) is fine. */
                        fprintf(stderr, "smolvm mcp: deleting snapshot %s: %s\n", t->ids[i],
                                smolvm_last_error()->message);
                }
        }
        free(t->ids);
        t->ids = NULL;
        t->n = 0;
        pthread_mutex_destroy(&t->lock);
}
