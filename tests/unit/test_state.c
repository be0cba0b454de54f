/* SPDX-License-Identifier: Apache-2.0 */
/* The VM record (vm.json) parser, names, and the derived state (host/lib/state.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_proto.h"
#include "check_main.h"
#include "smolvm_i.h"

static const char *const good =
        "{\"version\":1,\"id\":\"0123456789ab\",\"created\":1700000000,\"image\":\"default\","
        "\"image_dir\":\"/img\",\"vcpus\":2,\"mem_mib\":256,\"disk_mib\":1024,\"accel\":\"tcg\","
        "\"boot_timeout_ms\":60000,\"ephemeral\":false,\"env\":[\"A=1\",\"B=x y\"],\"name\":\"web-1\"}";

static int parse(const char *text, vm_record *rec)
{
        return vm_record_parse("/x/vm.json", text, strlen(text), rec);
}

/* The error names the file, so a user knows what to look at. */
static void assert_corrupt(const char *text)
{
        vm_record rec;
        int r = parse(text, &rec);
        ck_assert_msg(r == SMOLVM_ECORRUPT, "expected corrupt for <%s>, got %d", text, r);
        ck_assert_ptr_nonnull(strstr(smolvm_last_error()->message, "/x/vm.json"));
}

START_TEST(test_parse_good)
{
        vm_record rec;
        ck_assert_int_eq(parse(good, &rec), 0);
        ck_assert_str_eq(rec.id, "0123456789ab");
        ck_assert_str_eq(rec.name, "web-1");
        ck_assert_str_eq(rec.image_dir, "/img");
        ck_assert_uint_eq(rec.vcpus, 2);
        ck_assert_uint_eq(rec.mem_mib, 256);
        ck_assert_uint_eq(rec.disk_mib, 1024);
        ck_assert_int_eq(rec.created_unix, 1700000000);
        ck_assert_str_eq(rec.env[0], "A=1");
        ck_assert_str_eq(rec.env[1], "B=x y");
        ck_assert_ptr_null(rec.env[2]);
        ck_assert(!rec.ephemeral);
        vm_record_done(&rec);
}
END_TEST

START_TEST(test_round_trip)
{
        vm_record rec, back;
        ck_assert_int_eq(parse(good, &rec), 0);
        char *text = vm_record_format(&rec);
        ck_assert_ptr_nonnull(text);
        ck_assert_int_eq(parse(text, &back), 0);
        ck_assert_str_eq(back.id, rec.id);
        ck_assert_str_eq(back.name, rec.name);
        ck_assert_str_eq(back.accel, rec.accel);
        ck_assert_uint_eq(back.mem_mib, rec.mem_mib);
        ck_assert_str_eq(back.env[1], rec.env[1]);
        free(text);
        vm_record_done(&rec);
        vm_record_done(&back);
}
END_TEST

/* Every prefix of a valid record (a write cut short) is reported, never crashed on. */
START_TEST(test_half_written)
{
        size_t n = strlen(good);
        for (size_t len = 0; len < n; len++) {
                vm_record rec;
                int r = vm_record_parse("/x/vm.json", good, len, &rec);
                ck_assert_msg(r == SMOLVM_ECORRUPT, "prefix %zu: %d", len, r);
                ck_assert_ptr_nonnull(strstr(smolvm_last_error()->message, "/x/vm.json"));
        }
        vm_record rec;
        ck_assert_int_eq(vm_record_parse("/x/vm.json", "", 0, &rec), SMOLVM_ECORRUPT);
        ck_assert_ptr_nonnull(strstr(smolvm_last_error()->message, "empty"));
}
END_TEST

START_TEST(test_bad_fields)
{
        assert_corrupt("[]");
        assert_corrupt("42");
        assert_corrupt("{}");
        assert_corrupt("{\"version\":2,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"/i\",\"vcpus\":1,"
                       "\"mem_mib\":64}");
        /* id: not hex, wrong length */
        assert_corrupt("{\"version\":1,\"id\":\"../../etc/xx\",\"created\":1,\"image_dir\":\"/i\",\"vcpus\":1,"
                       "\"mem_mib\":64}");
        assert_corrupt("{\"version\":1,\"id\":\"0123\",\"created\":1,\"image_dir\":\"/i\",\"vcpus\":1,"
                       "\"mem_mib\":64}");
        /* types and ranges */
        assert_corrupt("{\"version\":1,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"/i\",\"vcpus\":\"1\","
                       "\"mem_mib\":64}");
        assert_corrupt("{\"version\":1,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"/i\",\"vcpus\":1,"
                       "\"mem_mib\":63}");
        assert_corrupt("{\"version\":1,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"/i\",\"vcpus\":65,"
                       "\"mem_mib\":64}");
        assert_corrupt("{\"version\":1,\"id\":\"0123456789ab\",\"created\":-1,\"image_dir\":\"/i\",\"vcpus\":1,"
                       "\"mem_mib\":64}");
        assert_corrupt("{\"version\":1,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"rel\",\"vcpus\":1,"
                       "\"mem_mib\":64}");
        assert_corrupt("{\"version\":1,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"/i\",\"vcpus\":1,"
                       "\"mem_mib\":64,\"env\":[\"NOEQUALS\"]}");
        assert_corrupt("{\"version\":1,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"/i\",\"vcpus\":1,"
                       "\"mem_mib\":64,\"env\":[1]}");
        assert_corrupt("{\"version\":1,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"/i\",\"vcpus\":1,"
                       "\"mem_mib\":64,\"name\":\"bad name\"}");
        assert_corrupt("{\"version\":1,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"/i\",\"vcpus\":1,"
                       "\"mem_mib\":64,\"accel\":\"xen\"}");
        assert_corrupt("{\"version\":1,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"/i\",\"vcpus\":1,"
                       "\"mem_mib\":64,\"ephemeral\":\"no\"}");
        /* duplicate keys could hide a second value */
        assert_corrupt("{\"version\":1,\"version\":1,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"/i\","
                       "\"vcpus\":1,\"mem_mib\":64}");
        /* minimal valid record */
        vm_record rec;
        ck_assert_int_eq(parse("{\"version\":1,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"/i\","
                               "\"vcpus\":1,\"mem_mib\":64}",
                               &rec),
                         0);
        ck_assert_ptr_null(rec.name);
        ck_assert_ptr_null(rec.env);
        vm_record_done(&rec);
}
END_TEST

/* Host directory mounts: kept in the record, validated like at create. */
#define MOUNT_RECORD(mounts) \
        "{\"version\":1,\"id\":\"0123456789ab\",\"created\":1,\"image_dir\":\"/img\",\"vcpus\":1," \
        "\"mem_mib\":256" mounts "}"
START_TEST(test_mounts)
{
        vm_record rec;
        ck_assert_int_eq(parse(MOUNT_RECORD(""), &rec), 0);
        ck_assert_uint_eq(rec.n_mounts, 0);
        ck_assert_int_eq(rec.mount_transport, SMOLVM_MOUNT_VIRTIOFS);
        vm_record_done(&rec);

        ck_assert_int_eq(parse(MOUNT_RECORD(",\"mounts\":[{\"host\":\"/src\",\"guest\":\"/workspace\",\"writable\":false},"
                                            "{\"host\":\"/out\",\"guest\":\"/a/b\",\"writable\":true}],"
                                            "\"mount_transport\":\"virtiofs\""),
                               &rec),
                         0);
        ck_assert_uint_eq(rec.n_mounts, 2);
        ck_assert_str_eq(rec.mounts[0].host_path, "/src");
        ck_assert_str_eq(rec.mounts[0].guest_path, "/workspace");
        ck_assert(!rec.mounts[0].writable);
        ck_assert(rec.mounts[1].writable);
        char *text = vm_record_format(&rec);
        ck_assert_ptr_nonnull(text);
        vm_record again;
        ck_assert_int_eq(parse(text, &again), 0);
        ck_assert_uint_eq(again.n_mounts, 2);
        ck_assert_str_eq(again.mounts[1].guest_path, "/a/b");
        free(text);
        vm_record_done(&again);
        vm_record_done(&rec);

        /* Every guest path the kernel command line or the guest could misread. */
        static const char *const bad[] = {
                ",\"mounts\":{}",
                ",\"mounts\":[{\"host\":\"/src\"}]",
                ",\"mounts\":[{\"host\":\"src\",\"guest\":\"/w\"}]",
                ",\"mounts\":[{\"host\":\"/src\",\"guest\":\"w\"}]",
                ",\"mounts\":[{\"host\":\"/src\",\"guest\":\"/\"}]",
                ",\"mounts\":[{\"host\":\"/src\",\"guest\":\"/a/../b\"}]",
                ",\"mounts\":[{\"host\":\"/src\",\"guest\":\"/a//b\"}]",
                ",\"mounts\":[{\"host\":\"/src\",\"guest\":\"/a b\"}]",
                ",\"mounts\":[{\"host\":\"/src\",\"guest\":\"/a:b\"}]",
                ",\"mounts\":[{\"host\":\"/src\",\"guest\":\"/a\\\"b\"}]",
                ",\"mounts\":[{\"host\":\"/src\",\"guest\":\"/w\"},{\"host\":\"/x\",\"guest\":\"/w\"}]",
                ",\"mounts\":[{\"host\":\"/src\",\"guest\":\"/w\",\"writable\":1}]",
                ",\"mount_transport\":\"9p\"",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char buf[512];
                snprintf(buf, sizeof(buf), MOUNT_RECORD("%s"), bad[i]);
                assert_corrupt(buf);
        }
}
END_TEST

START_TEST(test_names)
{
        ck_assert(vm_name_valid("a"));
        ck_assert(vm_name_valid("web-1.test_x"));
        ck_assert(vm_name_valid("0abc"));
        ck_assert(!vm_name_valid(""));
        ck_assert(!vm_name_valid("-x"));
        ck_assert(!vm_name_valid(".x"));
        ck_assert(!vm_name_valid("a/b"));
        ck_assert(!vm_name_valid("a b"));
        ck_assert(!vm_name_valid("0123456789ab")); /* looks like an id */
        char longname[80];
        memset(longname, 'a', 64);
        longname[64] = '\0';
        ck_assert(!vm_name_valid(longname));
        longname[63] = '\0';
        ck_assert(vm_name_valid(longname));
        ck_assert(vm_id_valid("0123456789ab"));
        ck_assert(!vm_id_valid("0123456789AB"));
        ck_assert(!vm_id_valid("0123456789a"));
}
END_TEST

/* --mount guest paths: normalised, and none the guest's init owns. */
START_TEST(test_mount_guest_paths)
{
        static const char *const good_paths[] = { "/workspace", "/a/b", "/run/data", "/tmp/x", "/devices",
                                                  "/etc2", "/etc/x", "/proc2/x", "/root/src" };
        static const char *const not_normal[] = { "/", "x", "/a/../b", "/a//b", "/a/", "/a/./b", "/..", "//a" };
        static const char *const reserved[] = { "/dev", "/dev/shm", "/proc", "/proc/1", "/sys", "/sys/kernel",
                                                "/run", "/run/smolvm", "/run/smolvm/modules", "/etc",
                                                "/etc/smolvm", "/etc/smolvm/x", "/tmp" };
        char why[512];
        for (size_t i = 0; i < sizeof(good_paths) / sizeof(good_paths[0]); i++) {
                ck_assert_msg(vm_mount_guest_path_valid(good_paths[i]), "%s", good_paths[i]);
                ck_assert_msg(!vm_mount_guest_path_reserved(good_paths[i], why, sizeof(why)), "%s: %s",
                              good_paths[i], why);
        }
        for (size_t i = 0; i < sizeof(not_normal) / sizeof(not_normal[0]); i++)
                ck_assert_msg(!vm_mount_guest_path_valid(not_normal[i]), "%s", not_normal[i]);
        for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
                ck_assert_msg(vm_mount_guest_path_valid(reserved[i]), "%s", reserved[i]);
                ck_assert_msg(vm_mount_guest_path_reserved(reserved[i], why, sizeof(why)), "%s", reserved[i]);
                /* The message names the path asked for. */
                char quoted[64];
                snprintf(quoted, sizeof(quoted), "'%s'", reserved[i]);
                ck_assert_msg(strstr(why, quoted), "%s", why);
        }
        /* A record naming one is corrupt, like any other invalid mount. */
        assert_corrupt(MOUNT_RECORD(",\"mounts\":[{\"host\":\"/src\",\"guest\":\"/dev\"}]"));
        assert_corrupt(MOUNT_RECORD(",\"mounts\":[{\"host\":\"/src\",\"guest\":\"/etc\"}]"));
}
END_TEST

/* --image: a name stays inside the image store. */
START_TEST(test_image_names)
{
        ck_assert(image_name_valid("default"));
        ck_assert(image_name_valid("my-img_2.1"));
        ck_assert(image_name_valid("2718454e19621f187d115751fe48526b2ced12c40a2965430bd644606b4dad12"));
        ck_assert(image_name_valid("a..b")); /* one file name: no '/', so not a parent */
        ck_assert(!image_name_valid(NULL));
        ck_assert(!image_name_valid(""));
        ck_assert(!image_name_valid("."));
        ck_assert(!image_name_valid(".."));
        ck_assert(!image_name_valid(".hidden"));
        ck_assert(!image_name_valid("../../../etc"));
        ck_assert(!image_name_valid("a/b"));
        ck_assert(!image_name_valid("/abs"));
        ck_assert(!image_name_valid("a b"));
        ck_assert(!image_name_valid("a\nb"));
        char name[SMOLVM_IMAGE_NAME_MAX + 2];
        memset(name, 'a', sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        ck_assert(!image_name_valid(name));
        name[SMOLVM_IMAGE_NAME_MAX] = '\0';
        ck_assert(image_name_valid(name));

        /* resolve_image: invalid names fail before any file is looked at, naming
         * the name and the store. */
        char *dir = NULL;
        ck_assert_int_eq(resolve_image("/nonexistent-home", "../../../etc", &dir, NULL), -EINVAL);
        ck_assert_ptr_null(dir);
        ck_assert_ptr_nonnull(strstr(smolvm_last_error()->message, "'../../../etc'"));
        ck_assert_ptr_nonnull(strstr(smolvm_last_error()->message, "/nonexistent-home/images"));
        ck_assert_int_eq(resolve_image("/nonexistent-home", ".x", &dir, NULL), -EINVAL);
        /* A valid name that is not there: not found, not invalid. */
        ck_assert_int_eq(resolve_image("/nonexistent-home", "nothere", &dir, NULL), -ENOENT);
}
END_TEST

/* An image dir with the three files a VM boots from, under root/images/key. */
static void make_image(const char *root, const char *key)
{
        char p[PATH_MAX];
        static const char *const files[] = { "vmlinux", "initramfs.img", "rootfs.ext4" };
        snprintf(p, sizeof(p), "%s/images/%s", root, key);
        ck_assert_int_eq(mkdir_p(p, 0755), 0);
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                snprintf(p, sizeof(p), "%s/images/%s/%s", root, key, files[i]);
                int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
                ck_assert_int_ge(fd, 0);
                close(fd);
        }
}

static void link_image(const char *root, const char *name, const char *key)
{
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/images/%s", root, name);
        ck_assert_int_eq(symlink(key, p), 0);
}

/* Image lookup: the user's store first, then the system store
 * ($SMOLVM_SYSTEM_STORE here); a name in neither is named with both. */
START_TEST(test_image_stores)
{
        char tmpl[] = "/tmp/test_state_stores.XXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(tmpl));
        char home[256], sys[256], want[PATH_MAX];
        snprintf(home, sizeof(home), "%s/home", tmpl);
        snprintf(sys, sizeof(sys), "%s/sys", tmpl);
        make_image(home, "k-user");
        link_image(home, "both", "k-user");
        link_image(home, "dangling", "k-gone");
        make_image(sys, "k-sys");
        link_image(sys, "both", "k-sys");
        link_image(sys, "default", "k-sys");
        link_image(sys, "dangling", "k-sys");
        ck_assert_int_eq(setenv("SMOLVM_SYSTEM_STORE", sys, 1), 0);
        ck_assert_str_eq(smolvm_system_store(), sys);

        char *dir = NULL;
        image_store store = IMAGE_STORE_SYSTEM;
        /* In both: the user's wins. */
        ck_assert_int_eq(resolve_image(home, "both", &dir, &store), 0);
        snprintf(want, sizeof(want), "%s/images/k-user", home);
        ck_assert_str_eq(dir, want);
        ck_assert_int_eq(store, IMAGE_STORE_USER);
        free(dir);
        /* Only in the system store, and a user's link to nothing: the system's. */
        static const char *const sys_names[] = { "default", "dangling", "k-sys" };
        for (size_t i = 0; i < sizeof(sys_names) / sizeof(sys_names[0]); i++) {
                store = IMAGE_STORE_USER;
                ck_assert_int_eq(resolve_image(home, sys_names[i], &dir, &store), 0);
                snprintf(want, sizeof(want), "%s/images/k-sys", sys);
                ck_assert_str_eq(dir, want);
                ck_assert_int_eq(store, IMAGE_STORE_SYSTEM);
                free(dir);
        }
        /* The store passed as home is the system store itself: found once, as the user's. */
        ck_assert_int_eq(resolve_image(sys, "default", &dir, &store), 0);
        ck_assert_int_eq(store, IMAGE_STORE_USER);
        free(dir);
        /* In neither: both stores named, and how to build it for everyone. */
        dir = NULL;
        ck_assert_int_eq(resolve_image(home, "nothere", &dir, NULL), -ENOENT);
        ck_assert_ptr_null(dir);
        ck_assert_ptr_nonnull(strstr(smolvm_last_error()->message, home));
        ck_assert_ptr_nonnull(strstr(smolvm_last_error()->message, sys));
        /* No system store at all: the user's own still resolve. */
        snprintf(want, sizeof(want), "%s/none", tmpl);
        ck_assert_int_eq(setenv("SMOLVM_SYSTEM_STORE", want, 1), 0);
        ck_assert_int_eq(resolve_image(home, "default", &dir, NULL), -ENOENT);
        ck_assert_ptr_nonnull(strstr(smolvm_last_error()->hint, "--system"));
        ck_assert_int_eq(resolve_image(home, "both", &dir, NULL), 0);
        free(dir);
        /* Empty: the compile-time default. */
        ck_assert_int_eq(setenv("SMOLVM_SYSTEM_STORE", "", 1), 0);
        ck_assert_str_eq(smolvm_system_store(), SMOLVM_SYSTEM_STORE);
        unsetenv("SMOLVM_SYSTEM_STORE");
        ck_assert_int_eq(rm_rf(tmpl), 0);
}
END_TEST

/* smolvm.h promises smolvm's own wording for every SMOLVM_E* code, whatever
 * its sign; other codes keep libc's. */
START_TEST(test_strerror)
{
        static const int codes[] = { SMOLVM_ENOTFOUND, SMOLVM_EEXIST, SMOLVM_EINVAL, SMOLVM_ETIMEDOUT,
                                     SMOLVM_ENOTRUNNING, SMOLVM_EPAUSED, SMOLVM_EALREADY, SMOLVM_EUNREACHABLE,
                                     SMOLVM_EIMAGE, SMOLVM_EBACKEND, SMOLVM_EBUSY, SMOLVM_ECORRUPT };
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
                const char *s = smolvm_strerror(codes[i]);
                ck_assert_ptr_nonnull(s);
                ck_assert_msg(strcmp(s, strerrordesc_np(-codes[i])) != 0, "code %d has libc's wording: %s",
                              codes[i], s);
                ck_assert_str_eq(smolvm_strerror(-codes[i]), s);
                for (size_t j = 0; j < i; j++)
                        ck_assert_str_ne(smolvm_strerror(codes[j]), s);
        }
        ck_assert_str_eq(smolvm_strerror(SMOLVM_ENOTRUNNING), "VM is not running");
        ck_assert_str_eq(smolvm_strerror(-ENOMEM), strerrordesc_np(ENOMEM));
        ck_assert_str_eq(smolvm_strerror(-EPROTO), strerrordesc_np(EPROTO));
        ck_assert_str_eq(smolvm_strerror(-100000), "Unknown error");
}
END_TEST

/* The guest's env rules, shared with the host (common/agent_proto.c). */
START_TEST(test_env_entries)
{
        size_t klen = 99;
        ck_assert_int_eq(agent_env_entry_check("A=1", &klen), 0);
        ck_assert_uint_eq(klen, 1);
        ck_assert_int_eq(agent_env_entry_check("_x9=", NULL), 0);
        ck_assert_int_eq(agent_env_entry_check("A=b=c", NULL), 0);
        ck_assert_int_eq(agent_env_entry_check("A-B=1", &klen), -EINVAL);
        ck_assert_uint_eq(klen, 3);
        ck_assert_int_eq(agent_env_entry_check("9A=1", NULL), -EINVAL);
        ck_assert_int_eq(agent_env_entry_check("=1", NULL), -EINVAL);
        ck_assert_int_eq(agent_env_entry_check("NOEQ", &klen), -EINVAL);
        ck_assert_uint_eq(klen, 4);
        ck_assert_int_eq(agent_env_entry_check("A B=1", NULL), -EINVAL);
        char *kv = malloc(AGENT_ENV_MAX_VALUE + 8);
        ck_assert_ptr_nonnull(kv);
        memcpy(kv, "V=", 2);
        memset(kv + 2, 'x', AGENT_ENV_MAX_VALUE);
        kv[2 + AGENT_ENV_MAX_VALUE] = '\0';
        ck_assert_int_eq(agent_env_entry_check(kv, NULL), 0);
        kv[2 + AGENT_ENV_MAX_VALUE] = 'x';
        kv[3 + AGENT_ENV_MAX_VALUE] = '\0';
        ck_assert_int_eq(agent_env_entry_check(kv, NULL), -E2BIG);
        free(kv);
        char key[AGENT_ENV_MAX_KEY + 2];
        memset(key, 'K', sizeof(key));
        ck_assert(agent_env_key_valid_n(key, AGENT_ENV_MAX_KEY));
        ck_assert(!agent_env_key_valid_n(key, AGENT_ENV_MAX_KEY + 1));
        ck_assert(!agent_env_key_valid(NULL));
        ck_assert(!agent_env_key_valid(""));
}
END_TEST

static char tmpdir[64];

static void make_vm_dir(char *dir, size_t size, const char *id, const char *record)
{
        snprintf(dir, size, "%s/vms/%s", tmpdir, id);
        char p[512];
        snprintf(p, sizeof(p), "%s/vms", tmpdir);
        mkdir(p, 0700);
        ck_assert_int_eq(mkdir(dir, 0700), 0);
        if (record) {
                snprintf(p, sizeof(p), "%s/vm.json", dir);
                FILE *f = fopen(p, "w");
                ck_assert_ptr_nonnull(f);
                fputs(record, f);
                fclose(f);
        }
}

static void touch(const char *dir, const char *name, const char *content)
{
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs(content, f);
        fclose(f);
}

static void setup_tmp(void)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_state.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown_tmp(void)
{
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
        ck_assert_int_eq(system(cmd), 0);
}

/* What makes an image (common/store.h): the files a VM boots from, the same
 * rule as the image builder's resolver (tests/unit/test_image.c). */
START_TEST(test_image_dir)
{
        char dir[256], p[512];
        snprintf(dir, sizeof(dir), "%s/img", tmpdir);
        ck_assert_int_eq(mkdir_p(dir, 0755), 0);
        static const char *const boot[] = { "vmlinux", "initramfs.img", "rootfs.ext4" };
        for (size_t i = 0; i < 3; i++)
                touch(dir, boot[i], "x");
        char *got = NULL;
        ck_assert_int_eq(resolve_image(tmpdir, dir, &got, NULL), 0); /* no vmlinuz: fine */
        ck_assert_str_eq(got, dir);
        free(got);
        got = NULL;
        snprintf(p, sizeof(p), "%s/initramfs.img", dir);
        ck_assert_int_eq(unlink(p), 0);
        ck_assert_int_eq(resolve_image(tmpdir, dir, &got, NULL), -ENOENT);
        ck_assert_ptr_null(got);
        ck_assert_ptr_nonnull(strstr(smolvm_last_error()->message, "incomplete"));
        ck_assert_ptr_nonnull(strstr(smolvm_last_error()->message, p));
}
END_TEST

START_TEST(test_load_and_derive)
{
        char dir[256];
        make_vm_dir(dir, sizeof(dir), "0123456789ab", good);
        vm_record rec;
        ck_assert_int_eq(vm_record_load(dir, &rec), 0);
        vm_record_done(&rec);
        ck_assert_int_eq(vm_derive_state(dir, NULL), SMOLVM_STATE_CREATED);
        touch(dir, "overlay.qcow2", "");
        ck_assert_int_eq(vm_derive_state(dir, NULL), SMOLVM_STATE_STOPPED);
        /* A pid file naming a live process that is not our supervisor: stale. */
        char pid[32];
        snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
        touch(dir, "supervisor.pid", pid);
        pid_t live = 1;
        ck_assert_int_eq(vm_derive_state(dir, &live), SMOLVM_STATE_ERROR);
        ck_assert_int_eq(live, 0);
        touch(dir, "supervisor.pid", "garbage");
        ck_assert_int_eq(vm_derive_state(dir, NULL), SMOLVM_STATE_ERROR);
        char p[512];
        snprintf(p, sizeof(p), "%s/supervisor.pid", dir);
        unlink(p);
        touch(dir, "failed", "");
        ck_assert_int_eq(vm_derive_state(dir, NULL), SMOLVM_STATE_ERROR);

        /* The record's id must match its directory. */
        char other[256];
        make_vm_dir(other, sizeof(other), "ba9876543210", good);
        ck_assert_int_eq(vm_record_load(other, &rec), SMOLVM_ECORRUPT);
        /* No record: not found, naming the file. */
        char empty[256];
        make_vm_dir(empty, sizeof(empty), "aaaaaaaaaaaa", NULL);
        ck_assert_int_eq(vm_record_load(empty, &rec), SMOLVM_ENOTFOUND);
        ck_assert_ptr_nonnull(strstr(smolvm_last_error()->message, "aaaaaaaaaaaa/vm.json"));
}
END_TEST

START_TEST(test_list)
{
        char dir[256], vms[256];
        make_vm_dir(dir, sizeof(dir), "0123456789ab", good);
        make_vm_dir(dir, sizeof(dir), "bbbbbbbbbbbb", "{\"version\":1,\"id\":\"bbbb"); /* half-written */
        make_vm_dir(dir, sizeof(dir), "cccccccccccc", NULL);                           /* being created */
        snprintf(vms, sizeof(vms), "%s/vms", tmpdir);
        smolvm_vm_info *v = NULL;
        size_t n = 0;
        ck_assert_int_eq(vm_list_dir(vms, &v, &n), 0);
        ck_assert_uint_eq(n, 2);
        bool saw_good = false, saw_bad = false;
        for (size_t i = 0; i < n; i++) {
                if (!strcmp(v[i].id, "0123456789ab")) {
                        saw_good = true;
                        ck_assert_str_eq(v[i].name, "web-1");
                        ck_assert_int_eq(v[i].state, SMOLVM_STATE_CREATED);
                } else if (!strcmp(v[i].id, "bbbbbbbbbbbb")) {
                        saw_bad = true;
                        ck_assert_int_eq(v[i].state, SMOLVM_STATE_ERROR);
                }
        }
        ck_assert(saw_good && saw_bad);
        free(v);
        /* A missing vms dir is an empty list. */
        ck_assert_int_eq(vm_list_dir("/nonexistent/vms", &v, &n), 0);
        ck_assert_uint_eq(n, 0);
}
END_TEST

/* A removal killed part-way leaves vms/.removing-<id>: listed, then finished by
 * the next sweep unless a live remover holds its lock. */
START_TEST(test_trash)
{
        char dir[256], vms[256], p[512];
        snprintf(vms, sizeof(vms), "%s/vms", tmpdir);
        make_vm_dir(dir, sizeof(dir), "0123456789ab", good);
        touch(dir, "lock", "");
        snprintf(p, sizeof(p), "%s/sub", dir);
        ck_assert_int_eq(mkdir(p, 0700), 0);
        touch(p, "f", "x");
        make_vm_dir(dir, sizeof(dir), "dddddddddddd", good);

        /* Held lock: a remover at work. vm_dir_remove keeps the fd across its rename. */
        snprintf(p, sizeof(p), "%s/vms/0123456789ab/lock", tmpdir);
        int held = open(p, O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(held, 0);
        ck_assert_int_eq(flock(held, LOCK_EX), 0);
        char from[512], to[512];
        snprintf(from, sizeof(from), "%s/0123456789ab", vms);
        snprintf(to, sizeof(to), "%s/.removing-0123456789ab", vms);
        ck_assert_int_eq(rename(from, to), 0); /* what a killed vm_dir_remove leaves */

        smolvm_vm_info *v = NULL;
        size_t n = 0;
        ck_assert_int_eq(vm_list_dir(vms, &v, &n), 0);
        ck_assert_uint_eq(n, 2);
        bool saw_trash = false;
        for (size_t i = 0; i < n; i++)
                if (!strcmp(v[i].id, "0123456789ab")) {
                        saw_trash = true;
                        ck_assert_int_eq(v[i].state, SMOLVM_STATE_ERROR);
                }
        ck_assert(saw_trash);
        free(v);
        ck_assert_int_eq(vm_trash_sweep(vms, NULL), 0); /* locked: left alone */
        ck_assert_int_eq(access(to, F_OK), 0);
        close(held); /* the remover was killed */
        ck_assert_int_eq(vm_trash_sweep(vms, "dddddddddddd"), 0); /* another id only */
        ck_assert_int_eq(access(to, F_OK), 0);
        ck_assert_int_eq(vm_trash_sweep(vms, NULL), 1);
        ck_assert_int_eq(access(to, F_OK), -1);
        /* The other VM is untouched; removing it leaves nothing. */
        ck_assert_int_eq(vm_list_dir(vms, &v, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(v[0].id, "dddddddddddd");
        free(v);
        ck_assert_int_eq(vm_dir_remove(vms, "dddddddddddd"), 0);
        ck_assert_int_eq(rmdir(vms), 0); /* empty */
}
END_TEST

static Suite *state_suite(void)
{
        Suite *s = suite_create("state");
        TCase *tc = tcase_create("record");
        tcase_add_test(tc, test_parse_good);
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_half_written);
        tcase_add_test(tc, test_bad_fields);
        tcase_add_test(tc, test_names);
        tcase_add_test(tc, test_mounts);
        tcase_add_test(tc, test_mount_guest_paths);
        tcase_add_test(tc, test_image_names);
        tcase_add_test(tc, test_image_stores);
        tcase_add_test(tc, test_env_entries);
        tcase_add_test(tc, test_strerror);
        suite_add_tcase(s, tc);
        TCase *fs = tcase_create("dirs");
        tcase_add_checked_fixture(fs, setup_tmp, teardown_tmp);
        tcase_add_test(fs, test_load_and_derive);
        tcase_add_test(fs, test_list);
        tcase_add_test(fs, test_trash);
        tcase_add_test(fs, test_image_dir);
        suite_add_tcase(s, fs);
        return s;
}

int main(void)
{
        return run_suite(state_suite());
}
