/* SPDX-License-Identifier: Apache-2.0 */
/* /proc/self/mountinfo (proc(5)): which mount sits at a path, its file system
 * type and device number, learnt without touching the mount itself: a stat of
 * a FUSE mount whose server is gone (or not answering yet) can block for ever.
 * Pure code over a FILE, no other dependency: unit-tested on the host
 * (tests/unit/test_mountinfo.c). */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#define MOUNTINFO_FSTYPE_MAX 64u

typedef struct mountinfo_entry {
        long id;                            /* mount id (field 1) */
        unsigned major, minor;              /* st_dev of the files in the mount (field 3) */
        char fstype[MOUNTINFO_FSTYPE_MAX];  /* after the " - " separator: "virtiofs", "fuse.smolvm", ... */
} mountinfo_entry;

/* Parse one line of mountinfo, modifying it in place. On success fills *ret and
 * points *ret_mountpoint into line, octal escapes (\040 for a space, ...)
 * undone. Returns 0, or -EINVAL for a line without the fields we need (the
 * line is then in an unspecified state; *ret is untouched). */
int mountinfo_parse_line(char *line, mountinfo_entry *ret, const char **ret_mountpoint);

/* Calls fn for each well-formed line of f, in file order (malformed lines are
 * skipped), with the entry and its unescaped mount point (valid during the call).
 * A negative return of fn stops the walk and is returned. Returns 0, the error
 * of fn, or -ENOMEM / a negative errno of reading f. */
typedef int (*mountinfo_fn)(const mountinfo_entry *e, const char *mountpoint, void *ud);
int mountinfo_foreach(FILE *f, mountinfo_fn fn, void *ud);

/* The topmost mount (the last in the file: later mounts are stacked on earlier
 * ones) whose mount point is exactly path. path must be canonical, as mountinfo
 * shows it (no trailing slash, no symlink). Malformed lines are skipped.
 * Returns 0 with *ret set, -ENOENT when nothing is mounted there, or -ENOMEM. */
int mountinfo_find(FILE *f, const char *path, mountinfo_entry *ret);

/* True for the file system types the kernel's FUSE module serves, each of which
 * is a connection in fusectl: "fuse", "fuseblk", "fuse.<subtype>",
 * "fuseblk.<subtype>" and "virtiofs". */
bool mountinfo_is_fuse(const char *fstype);

/* Name of the mount's directory in fusectl (/sys/fs/fuse/connections/<N>):
 * the kernel's internal dev_t of the super block, (major << 20) | minor, which
 * is the minor for the anonymous devices (major 0) of fuse and virtiofs. */
unsigned mountinfo_fuse_conn_id(const mountinfo_entry *e);
