/* SPDX-License-Identifier: Apache-2.0 */
/* What a user needs for an image build without root (docs/internals.md,
 * "Image builds without root"): fakeroot for --from-rootfs, and for a fresh
 * Debian rootfs mmdebstrap's unshare mode, which maps the subordinate ids of
 * /etc/subuid and /etc/subgid (subuid(5)) into a user namespace through
 * newuidmap/newgidmap. The image builder (its preflight) and doctor ask here,
 * so both name the same missing pieces and the same fix. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define SUBID_UID_FILE "/etc/subuid"
#define SUBID_GID_FILE "/etc/subgid"
/* Debian's packages use ids up to 65534 (nogroup/nobody), all mapped. */
#define SUBID_COUNT_MIN 65536u
/* Longest subuid file read (a line per user). */
#define SUBID_FILE_MAX_BYTES (1u << 20)

typedef struct subid_range {
        uint64_t first, count;
} subid_range;

/* The range of the first "NAME:FIRST:COUNT" line of text for user, by name as
 * mmdebstrap matches it (a line naming a numeric uid is not taken). Lines that
 * do not parse are passed over. Pure: unit-tested. Returns 0, or -ENOENT when
 * no line names user. */
int subid_find(const char *text, const char *user, subid_range *ret);
/* subid_find over the file at path (at most SUBID_FILE_MAX_BYTES). Returns 0,
 * -ENOENT (no file, or no line for user), -EFBIG, or open/read's negative errno. */
int subid_file_find(const char *path, const char *user, subid_range *ret);

/* What lacks for a non-root build, and the commands (as root) that supply it. */
typedef struct unpriv_lacks {
        unsigned n;        /* how many pieces lack; 0: a build without root can go ahead */
        char missing[512]; /* e.g. "mmdebstrap, newuidmap (package uidmap), a range in /etc/subuid for bob" */
        char fix[512];     /* e.g. "apt-get install mmdebstrap uidmap; usermod --add-subuids ..." */
} unpriv_lacks;
/* Checks what user (a login name) needs: fakeroot always, and with fresh
 * (a Debian rootfs made here, not --from-rootfs) mmdebstrap, newuidmap,
 * newgidmap, user namespaces open to unprivileged users, and a subuid and a
 * subgid range of at least SUBID_COUNT_MIN ids. Programs are looked up as
 * smolvm_find_program() does. Fills *ret; never fails. */
void unpriv_build_check(const char *user, bool fresh, unpriv_lacks *ret);
