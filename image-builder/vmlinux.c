/* SPDX-License-Identifier: Apache-2.0 */
/* Unpack the ELF vmlinux from Debian's bzImage once, at build time.
 *
 * Why: under TCG the guest decompresses its own xz payload with emulated
 * instructions, which measured 10-15 s of a 13-18 s boot; QEMU's microvm boots
 * an uncompressed ELF vmlinux directly through its PVH entry note (Debian sets
 * CONFIG_PVH=y), 3.2-4.1 s in the same setup. The cost is disk, not memory:
 * ~65 MB per kernel version in the cache, shared by hard links.
 *
 * The payload is found through the boot protocol's setup header (payload_offset
 * and payload_length at 0x248/0x24c), never by scanning for magic bytes, and
 * checked against the uncompressed size the kernel build appends to it. liblzma
 * (Debian's liblzma-dev) does the decompression (ib_unxz, decompress.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "image_i.h"
#include "util.h"

#define SETUP_SECTS_OFF 0x1f1
#define BOOT_MAGIC_OFF 0x202 /* "HdrS" */
#define PAYLOAD_OFF 0x248
#define VMLINUX_MAX_BYTES (512u * 1024u * 1024u)

int ib_vmlinux_from_bzimage(const void *bz, size_t bz_len, void **ret, size_t *ret_len, ib_err *err)
{
        const uint8_t *b = bz;
        if (bz_len < PAYLOAD_OFF + 8 || memcmp(b + BOOT_MAGIC_OFF, "HdrS", 4) != 0)
                return ib_errf(err, -EINVAL, "kernel: vmlinuz is not a bzImage (no HdrS header)");
        size_t setup_sects = b[SETUP_SECTS_OFF] ? b[SETUP_SECTS_OFF] : 4;
        size_t pm_start = (setup_sects + 1) * 512;
        uint32_t off = get_le32(b + PAYLOAD_OFF), len = get_le32(b + PAYLOAD_OFF + 4);
        if (len < 16 || pm_start > bz_len || off > bz_len - pm_start || len > bz_len - pm_start - off)
                return ib_errf(err, -EINVAL, "kernel: bzImage payload out of bounds (offset %u, length %u)", off, len);
        const uint8_t *payload = b + pm_start + off;
        /* Debian 6.1 packs xz, 6.12 (bookworm-backports) zstd. */
        bool xz = memcmp(payload, "\xfd" "7zXZ\0", 6) == 0, zst = memcmp(payload, "\x28\xb5\x2f\xfd", 4) == 0;
        if (!xz && !zst)
                return ib_errf(err, -ENOTSUP, "kernel: bzImage payload is neither xz nor zstd (only those are unpacked)");
        uint32_t want = get_le32(payload + len - 4);
        if (want < 64 || want > VMLINUX_MAX_BYTES)
                return ib_errf(err, -EINVAL, "kernel: implausible uncompressed kernel size %u", want);

        /* The kernel's compressed stream is followed by the 4-byte size. */
        _cleanup_free_ void *out = NULL;
        size_t got = 0;
        int r = xz ? ib_unxz(payload, len - 4, want, want, &out, &got) : ib_unzstd(payload, len - 4, want, &out, &got);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || got != want)
                return ib_errf(err, r < 0 ? r : -EBADMSG, "kernel: %s payload did not decode to %u bytes (%s)",
                               xz ? "xz" : "zstd", want,
                               r == -EFBIG ? "more" : r < 0 ? "corrupt compressed data" : "fewer");
        if (memcmp(out, "\x7f" "ELF", 4) != 0)
                return ib_errf(err, -EBADMSG, "kernel: unpacked payload is not an ELF vmlinux");
        *ret = TAKE_PTR(out);
        *ret_len = want;
        return 0;
}

int ib_vmlinux_ensure(const char *dir, ib_err *err)
{
        _cleanup_free_ char *src = path_join(dir, "vmlinuz"), *dst = path_join(dir, "vmlinux");
        if (!src || !dst)
                return -ENOMEM;
        if (access(dst, R_OK) == 0)
                return 0;
        _cleanup_free_ char *bz = NULL;
        size_t bz_len = 0;
        int r = read_file(src, 64u * 1024u * 1024u, &bz, &bz_len);
        if (r < 0)
                return ib_errf(err, r, "kernel: read %s: %s", src, strerror(-r));
        _cleanup_free_ void *elf = NULL;
        size_t elf_len = 0;
        if ((r = ib_vmlinux_from_bzimage(bz, bz_len, &elf, &elf_len, err)) < 0)
                return r;
        if ((r = write_file_atomic(dst, elf, elf_len, 0444)) < 0)
                return ib_errf(err, r, "kernel: write %s: %s", dst, strerror(-r));
        return 0;
}
