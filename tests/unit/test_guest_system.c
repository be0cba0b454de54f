/* SPDX-License-Identifier: Apache-2.0 */
/* The guest agent's system pieces run on the host: the root file system growth
 * check (guest-init/growfs.c) and fuse_abort (guest-init/fuseabort.c) against a
 * fake mount table and fusectl. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "guest_ops_fixture.h"
#include "request.h"
#include <sys/mount.h>

/* ---- rootfs growth: the superblock check ---- */

static bool have_mkfs(void)
{
        return access("/sbin/mkfs.ext4", X_OK) == 0 || access("/usr/sbin/mkfs.ext4", X_OK) == 0;
}

static uint64_t image_fs_bytes(const char *img)
{
        int fd = open(img, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        uint8_t sb[1024];
        ck_assert_int_eq(pread(fd, sb, sizeof(sb), 1024), 1024);
        close(fd);
        uint64_t bytes = 0;
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, sizeof(sb), &bytes), 0);
        return bytes;
}

START_TEST(ext4_superblock)
{
        uint8_t sb[1024] = { 0 };
        uint64_t bytes = 0;
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, sizeof(sb), &bytes), -EINVAL); /* no magic */
        put_le16(sb + 0x38, 0xEF53);
        put_le32(sb + 0x18, 2); /* 4 KiB blocks */
        put_le32(sb + 0x4, 1000);
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, sizeof(sb), &bytes), 0);
        ck_assert_uint_eq(bytes, 4096000);
        put_le32(sb + 0x150, 1); /* ignored without the 64bit feature */
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, sizeof(sb), &bytes), 0);
        ck_assert_uint_eq(bytes, 4096000);
        put_le32(sb + 0x60, 0x80);
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, sizeof(sb), &bytes), 0);
        ck_assert_uint_eq(bytes, ((1ull << 32) + 1000) * 4096);
        put_le32(sb + 0x18, 40); /* absurd block size */
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, sizeof(sb), &bytes), -EINVAL);
        ck_assert_int_eq(ext4_superblock_fs_bytes(sb, 100, &bytes), -EINVAL);

        if (!have_mkfs())
                return;
        /* A real filesystem, then grown offline the way the guest grows it online. */
        const char *img = tp("fs.img");
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "truncate -s 64M '%s' && PATH=$PATH:/sbin:/usr/sbin mkfs.ext4 -q -F '%s' 2>&1",
                 img, img);
        ck_assert_int_eq(system(cmd), 0);
        ck_assert_uint_eq(image_fs_bytes(img), 64ull << 20);
        snprintf(cmd, sizeof(cmd), "truncate -s 32M '%s' && PATH=$PATH:/sbin:/usr/sbin mkfs.ext4 -q -F '%s' && "
                 "truncate -s 96M '%s' && PATH=$PATH:/sbin:/usr/sbin resize2fs -f '%s' >/dev/null 2>&1",
                 img, img, img, img);
        ck_assert_int_eq(system(cmd), 0);
        ck_assert_uint_eq(image_fs_bytes(img), 96ull << 20);
}
END_TEST

/* fuse_abort against a fake mount table and a fake fusectl (a real one needs
 * root and a FUSE mount): the connection is found by the mount's device
 * number, without touching the mount point, and its abort file written. A
 * virtio-fs mount (no fusectl entry) is fenced: a real, aborted FUSE mount on
 * top, when we may mount. */
START_TEST(fuse_abort_op)
{
        static char mountinfo[4608], fusectl[4608], vfs[4608];
        snprintf(fusectl, sizeof(fusectl), "%s", tp("fusectl"));
        snprintf(mountinfo, sizeof(mountinfo), "%s", tp("mountinfo"));
        snprintf(vfs, sizeof(vfs), "%s", tp("vfs"));
        char *table;
        ck_assert_int_ge(asprintf(&table,
                                  "1 0 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
                                  "22 1 0:21 / /sys rw,nosuid,nodev,noexec - sysfs sysfs rw\n"
                                  "40 22 0:41 / %s rw,relatime - fusectl fusectl rw\n"
                                  "50 1 0:45 / /fuse-a rw,nosuid,nodev,relatime - fuse.sshfs host:/x rw\n"
                                  "51 1 0:46 / /with\\040space rw,relatime shared:7 - fuse.smolvm smolvm rw\n"
                                  "52 1 0:47 / /scratch rw - tmpfs tmpfs rw\n"
                                  "53 1 8:1 / /blk rw - fuseblk /dev/sda1 rw\n"
                                  "54 1 0:48 / %s ro,nosuid,nodev,relatime - virtiofs smolvm-fs-0 rw\n",
                                  fusectl, vfs),
                         0);
        put_file(mountinfo, table, 0644);
        free(table);
        agent_mountinfo_path = mountinfo;
        agent_fusectl_dir = fusectl;
        ck_assert_int_eq(mkdir(fusectl, 0755), 0);
        ck_assert_int_eq(mkdir(vfs, 0755), 0);
        ck_assert_int_eq(mkdir(tp("fusectl/45"), 0755), 0);
        put_file(tp("fusectl/45/abort"), "", 0600);
        put_file(tp("fusectl/45/waiting"), "3\n", 0600);
        ck_assert_int_eq(mkdir(tp("fusectl/8388609"), 0755), 0);
        put_file(tp("fusectl/8388609/abort"), "", 0600);

        reply *rp = run("{\"op\":\"fuse_abort\",\"path\":\"/fuse-a\"}");
        ASSERT_OK(rp);
        ck_assert_str_eq(jstr(rp->result, "method"), "abort");
        ck_assert_int_eq(jint(rp->result, "connection"), 45);
        ck_assert_str_eq(jstr(rp->result, "fstype"), "fuse.sshfs");
        ck_assert_int_eq(jint(rp->result, "waiting"), 3);
        reply_free(rp);
        char *written = slurp(tp("fusectl/45/abort"), NULL);
        ck_assert_ptr_nonnull(written);
        ck_assert_str_eq(written, "1");
        free(written);

        /* A fuseblk's connection is named by the full dev_t (major 8). */
        rp = run("{\"op\":\"fuse_abort\",\"path\":\"/blk\"}");
        ASSERT_OK(rp);
        ck_assert_int_eq(jint(rp->result, "connection"), (8 << 20) | 1);
        ck_assert_int_eq(jint(rp->result, "waiting"), -1);
        reply_free(rp);

        /* Escaped mount point found; its connection is missing from fusectl. */
        ASSERT_RUN_FAILS(ENOENT, "/46/abort", "{\"op\":\"fuse_abort\",\"path\":\"/with space\"}");
        ASSERT_RUN_FAILS(EINVAL, "not a FUSE mount (tmpfs)", "{\"op\":\"fuse_abort\",\"path\":\"/scratch\"}");
        ASSERT_RUN_FAILS(ENOENT, "fuse_abort /nonexistent-smolvm/x: nothing is mounted there", "{\"op\":\"fuse_abort\",\"path\":\"/nonexistent-smolvm/x\"}");
        /* A directory that exists but is no mount point. */
        ASSERT_RUN_FAILS(EINVAL, "not a FUSE mount (fusectl)", "{\"op\":\"fuse_abort\",\"path\":\"%s\"}", fusectl);
        ASSERT_RUN_FAILS(ENOENT, "nothing is mounted there", "{\"op\":\"fuse_abort\",\"path\":\"%s\"}", tmpdir);

        /* virtio-fs: fenced, not aborted through fusectl. */
        agent_fuse_dev = "/nonexistent-smolvm/fuse";
        ASSERT_RUN_FAILS(ENOENT, "open /nonexistent-smolvm/fuse", "{\"op\":\"fuse_abort\",\"path\":\"%s\"}", vfs);
        agent_fuse_dev = "/dev/fuse";
        rp = runf("{\"op\":\"fuse_abort\",\"path\":\"%s\"}", vfs);
        if (rp->result) {
                ASSERT_OK(rp);
                ck_assert_str_eq(jstr(rp->result, "method"), "fence");
                ck_assert_str_eq(jstr(rp->result, "fstype"), "virtiofs");
                struct stat st;
                errno = 0;
                ck_assert_int_lt(stat(vfs, &st), 0);
                ck_assert_int_eq(errno, ENOTCONN);
                errno = 0;
                ck_assert_int_lt(open(tp("vfs/file"), O_RDONLY | O_CLOEXEC), 0);
                ck_assert_int_eq(errno, ENOTCONN);
                ck_assert_int_eq(umount2(vfs, MNT_DETACH), 0);
        } else {
                /* Not allowed to mount here (not root, no /dev/fuse): the step is named. */
                ck_assert_msg(strstr(jstr(rp->error, "message"), "mount fuse.smolvm-gone on ") ||
                                      strstr(jstr(rp->error, "message"), "open /dev/fuse"),
                              "message: %s", jstr(rp->error, "message"));
        }
        reply_free(rp);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("guest-system");
        TCase *tc_system = tcase_create("system");
        tcase_set_timeout(tc_system, 60);
        tcase_add_test(tc_system, ext4_superblock);
        tcase_add_test(tc_system, fuse_abort_op);
        suite_add_tcase(s, tc_system);
        return guest_ops_main(s);
}
