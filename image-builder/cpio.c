/* SPDX-License-Identifier: Apache-2.0 */
/* cpio "newc" writer (the format the kernel unpacks as initramfs, see the kernel's
 * Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte ASCII header
 * "070701" + 13 eight-digit hex fields, the NUL-terminated name, padding to 4 bytes,
 * the data, padding to 4 bytes; ends with an entry named "TRAILER!!!".
 * Uncompressed on purpose: unpacking is fastest that way under TCG emulation.
 * mtime, uid and gid are 0 so identical inputs give identical bytes.
 * Hand-written rather than libarchive: writing newc is this page, libarchive would be a
 * new dependency for one format we only ever write. */
#include "image_i.h"

#include <stdio.h>
#include <sys/stat.h>

void cpio_init(cpio_writer *w, int fd)
{
        *w = (cpio_writer){.fd = fd, .next_ino = 1};
}

static void out(cpio_writer *w, const void *p, size_t len)
{
        if (w->error || len == 0)
                return;
        int r = write_all(w->fd, p, len);
        if (r < 0)
                w->error = r;
        else
                w->offset += len;
}

static void pad4(cpio_writer *w)
{
        static const char zero[4];
        out(w, zero, (4 - (w->offset & 3)) & 3);
}

static int entry(cpio_writer *w, const char *name, uint32_t mode, uint32_t nlink,
                 uint32_t rmajor, uint32_t rminor, const void *data, size_t len)
{
        if (w->error)
                return w->error;
        if (len > UINT32_MAX)
                return (w->error = -EFBIG);
        /* The kernel strips a leading "/"; cpio(1) warns about it. Write relative names. */
        while (name[0] == '/')
                name++;
        size_t namesize = strlen(name) + 1;
        if (namesize == 1 || namesize > 4096)
                return (w->error = -EINVAL);
        char hdr[111];
        snprintf(hdr, sizeof(hdr), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
                 strcmp(name, "TRAILER!!!") == 0 ? 0u : w->next_ino++, mode, 0u, 0u, nlink, 0u,
                 (uint32_t)len, 0u, 0u, rmajor, rminor, (uint32_t)namesize, 0u);
        out(w, hdr, 110);
        out(w, name, namesize);
        pad4(w);
        out(w, data, len);
        pad4(w);
        return w->error;
}

int cpio_add_dir(cpio_writer *w, const char *name, uint32_t mode)
{
        return entry(w, name, S_IFDIR | (mode & 07777), 2, 0, 0, NULL, 0);
}

int cpio_add_file(cpio_writer *w, const char *name, uint32_t mode, const void *data, size_t len)
{
        return entry(w, name, S_IFREG | (mode & 07777), 1, 0, 0, data, len);
}

int cpio_add_chardev(cpio_writer *w, const char *name, uint32_t mode, uint32_t major, uint32_t minor)
{
        return entry(w, name, S_IFCHR | (mode & 07777), 1, major, minor, NULL, 0);
}

int cpio_finish(cpio_writer *w)
{
        entry(w, "TRAILER!!!", 0, 1, 0, 0, NULL, 0);
        /* Pad the archive to 512 bytes like cpio(1); harmless for the kernel. */
        static const char zero[512];
        out(w, zero, (512 - (w->offset & 511)) & 511);
        return w->error;
}
