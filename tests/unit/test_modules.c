/* SPDX-License-Identifier: Apache-2.0 */
/* guest-init/modules.c: the initramfs order file's lines and their conditions,
 * the virtio device scan that decides them, and the on-demand loader's no-op
 * cases (nothing kept; everything kept already loaded). Loading a real module
 * needs a guest: t_fuse_vsock covers fuse_mount's demand load. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "init.h"

static int parse(const char *text, module_line *m, char *buf, size_t len)
{
        snprintf(buf, len, "%s", text);
        return module_line_parse(buf, m);
}

START_TEST(parse_lines)
{
        module_line m;
        char buf[256];

        ck_assert_int_eq(parse("ext4.ko\n", &m, buf, sizeof(buf)), 1);
        ck_assert_str_eq(m.name, "ext4.ko");
        ck_assert(m.always);
        ck_assert(!m.demand);
        ck_assert(module_wanted_at_boot(&m, 0));

        ck_assert_int_eq(parse("vsock.ko virtio:19", &m, buf, sizeof(buf)), 1);
        ck_assert_str_eq(m.name, "vsock.ko");
        ck_assert(!m.always);
        ck_assert(!m.demand);
        ck_assert_uint_eq(m.virtio_mask, 1ull << 19);
        ck_assert(!module_wanted_at_boot(&m, (1ull << 2) | (1ull << 3)));
        ck_assert(module_wanted_at_boot(&m, (1ull << 3) | (1ull << 19)));

        /* Several conditions: any one is enough; demand alone never loads at boot. */
        ck_assert_int_eq(parse("fuse.ko demand virtio:26\r\n", &m, buf, sizeof(buf)), 1);
        ck_assert_str_eq(m.name, "fuse.ko");
        ck_assert(m.demand);
        ck_assert(!module_wanted_at_boot(&m, 1ull << 19));
        ck_assert(module_wanted_at_boot(&m, 1ull << 26));
        ck_assert_int_eq(parse("x.ko virtio:1 virtio:63", &m, buf, sizeof(buf)), 1);
        ck_assert_uint_eq(m.virtio_mask, (1ull << 1) | (1ull << 63));

        ck_assert_int_eq(parse("", &m, buf, sizeof(buf)), 0);
        ck_assert_int_eq(parse("   \n", &m, buf, sizeof(buf)), 0);
        ck_assert_int_eq(parse("# comment", &m, buf, sizeof(buf)), 0);
}
END_TEST

START_TEST(parse_malformed)
{
        static const char *const bad[] = {
                "../evil.ko", "/abs.ko", "dir/x.ko", "..", "x.ko virtio:", "x.ko virtio:64", "x.ko virtio:1x",
                "x.ko virtio:-1", "x.ko sometimes", "x.ko virtio:99999999999999999999",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                module_line m = { .name = "untouched" };
                char buf[256];
                ck_assert_msg(parse(bad[i], &m, buf, sizeof(buf)) == -EINVAL, "'%s' accepted", bad[i]);
                ck_assert_str_eq(m.name, "untouched");
        }
}
END_TEST

static char tmpl[] = "/tmp/test-modules.XXXXXX";

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

/* Each test runs in its own process (CK_FORK): remove its temp dir, if made. */
static void teardown(void)
{
        if (strstr(tmpl, "XXXXXX") == NULL)
                (void)nftw(tmpl, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void put(const char *rel, const char *text)
{
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", tmpl, rel);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
}

static void mk(const char *rel)
{
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", tmpl, rel);
        ck_assert_int_eq(mkdir(p, 0755), 0);
}

START_TEST(virtio_scan)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpl));
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/devices", tmpl);
        ck_assert_uint_eq(virtio_devices_present(dir), 0); /* no such dir: none */
        mk("devices");
        mk("devices/virtio0");
        put("devices/virtio0/device", "0x0002\n");
        mk("devices/virtio1");
        put("devices/virtio1/device", "0x0003\n");
        mk("devices/virtio2");
        put("devices/virtio2/device", "0x001a\n");
        mk("devices/virtio3"); /* no device file */
        mk("devices/virtio4");
        put("devices/virtio4/device", "0x0400\n"); /* out of range: ignored */
        mk("devices/virtio5");
        put("devices/virtio5/device", "garbage\n");
        ck_assert_uint_eq(virtio_devices_present(dir), (1ull << 2) | (1ull << 3) | (1ull << 26));
}
END_TEST

START_TEST(demand_noop)
{
        ck_assert_ptr_nonnull(mkdtemp(tmpl));
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/kept", tmpl);
        agent_modules_dir = dir;
        ck_assert_int_eq(modules_load_demand(), 0); /* nothing kept */
        mk("kept");
        ck_assert_int_eq(modules_load_demand(), 0); /* no order file */
        /* Every listed module already loaded (/sys/module/<name> exists): nothing
         * is opened, so the missing files do not matter. */
        if (access("/sys/module/kernel", F_OK) != 0)
                return; /* no sysfs here */
        put("kept/order", "kernel.ko\n/abs.ko\n");
        ck_assert_int_eq(modules_load_demand(), 0);
        /* A module that is not loaded and whose file is missing: an error. */
        put("kept/order", "smolvm_no_such_module.ko\n");
        ck_assert_int_eq(modules_load_demand(), -ENOENT);
}
END_TEST

static Suite *modules_suite(void)
{
        Suite *s = suite_create("modules");
        TCase *tc = tcase_create("order");
        tcase_add_checked_fixture(tc, NULL, teardown);
        tcase_add_test(tc, parse_lines);
        tcase_add_test(tc, parse_malformed);
        tcase_add_test(tc, virtio_scan);
        tcase_add_test(tc, demand_noop);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(modules_suite());
}
