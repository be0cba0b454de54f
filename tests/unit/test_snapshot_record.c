/* SPDX-License-Identifier: Apache-2.0 */
/* The snapshot record (snapshot.json) parser: bounded, checked, round trip
 * (host/lib/snapshot_record.c). The record is input: a damaged or planted
 * file must give SMOLVM_ECORRUPT naming it, never a path outside the dir. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "smolvm_i.h"

static const char *const good =
        "{\"version\":1,\"id\":\"0123456789ab\",\"vm_id\":\"ba9876543210\",\"created\":1700000000,"
        "\"image\":\"default\",\"image_dir\":\"/img\",\"accel\":\"tcg\",\"vcpus\":2,\"mem_mib\":512,"
        "\"disk_mib\":0,\"internal\":false,\"pause_ms\":12,\"ram_bytes\":4096,\"name\":\"s1\","
        "\"layers\":[\"layer-aaaaaaaaaaaa.qcow2\"]}";

static int parse(const char *text, snap_record *rec)
{
        return snap_record_parse("/s/snapshot.json", text, strlen(text), rec);
}

static void assert_corrupt(const char *text)
{
        snap_record rec;
        int r = parse(text, &rec);
        ck_assert_msg(r == SMOLVM_ECORRUPT, "expected corrupt for <%s>, got %d", text, r);
        ck_assert_ptr_nonnull(strstr(smolvm_last_error()->message, "/s/snapshot.json"));
}

/* good with one field replaced (key and its value, as JSON text). */
static char *with(const char *key, const char *value)
{
        char *out = NULL, pat[64];
        snprintf(pat, sizeof(pat), "\"%s\":", key);
        const char *at = strstr(good, pat);
        ck_assert_ptr_nonnull(at);
        const char *v = at + strlen(pat), *end = v;
        int depth = 0;
        while (*end && (depth > 0 || (*end != ',' && *end != '}'))) {
                depth += *end == '[' ? 1 : *end == ']' ? -1 : 0;
                end++;
        }
        ck_assert_int_ge(asprintf(&out, "%.*s%s%s", (int)(v - good), good, value, end), 0);
        return out;
}

START_TEST(test_parse_good)
{
        snap_record rec;
        ck_assert_int_eq(parse(good, &rec), 0);
        ck_assert_str_eq(rec.id, "0123456789ab");
        ck_assert_str_eq(rec.vm_id, "ba9876543210");
        ck_assert_str_eq(rec.name, "s1");
        ck_assert_str_eq(rec.image_dir, "/img");
        ck_assert_uint_eq(rec.vcpus, 2);
        ck_assert_uint_eq(rec.mem_mib, 512);
        ck_assert_uint_eq(rec.n_layers, 1);
        ck_assert_str_eq(rec.layers[0], "layer-aaaaaaaaaaaa.qcow2");
        ck_assert_ptr_null(rec.layers[1]);
        ck_assert(!rec.internal);
        snap_record_done(&rec);
}
END_TEST

START_TEST(test_round_trip)
{
        snap_record rec, back;
        ck_assert_int_eq(parse(good, &rec), 0);
        char *text = snap_record_format(&rec);
        ck_assert_ptr_nonnull(text);
        ck_assert_int_eq(parse(text, &back), 0);
        ck_assert_str_eq(back.id, rec.id);
        ck_assert_str_eq(back.name, rec.name);
        ck_assert_str_eq(back.layers[0], rec.layers[0]);
        ck_assert_uint_eq(back.pause_ms, 12);
        ck_assert_uint_eq(back.ram_bytes, 4096);
        free(text);
        snap_record_done(&rec);
        snap_record_done(&back);
}
END_TEST

START_TEST(test_bad)
{
        static const struct {
                const char *key, *value;
        } bad[] = {
                { "version", "2" },
                { "id", "\"../../etc\"" },
                { "vm_id", "\"0123\"" },
                { "image_dir", "\"relative/dir\"" },
                { "vcpus", "0" },
                { "mem_mib", "1" },
                { "mem_mib", "\"512\"" },
                { "accel", "\"xen\"" },
                { "internal", "1" },
                { "name", "\"bad name\"" },
                { "layers", "[\"../../etc/passwd\"]" },
                { "layers", "[\"layer-ZZZZZZZZZZZZ.qcow2\"]" },
                { "layers", "[1]" },
                { "layers", "\"layer-aaaaaaaaaaaa.qcow2\"" },
                { "pause_ms", "-1" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char *t = with(bad[i].key, bad[i].value);
                assert_corrupt(t);
                free(t);
        }
        assert_corrupt("");
        assert_corrupt("[]");
        assert_corrupt("{\"version\":1");
        assert_corrupt("{\"version\":1,\"version\":1}");
}
END_TEST

/* "lane": whether the VM had the lane's device. Absent (an older smolvm's
 * record): not known, -1, and written back absent; true/false round trip. */
START_TEST(test_lane)
{
        snap_record rec, back;
        ck_assert_int_eq(parse(good, &rec), 0);
        ck_assert_int_eq(rec.lane, -1);
        char *text = snap_record_format(&rec);
        ck_assert_ptr_nonnull(text);
        ck_assert_ptr_null(strstr(text, "\"lane\""));
        free(text);
        snap_record_done(&rec);
        for (int v = 0; v <= 1; v++) {
                char *t = NULL;
                ck_assert_int_ge(asprintf(&t, "%.*s,\"lane\":%s}", (int)strlen(good) - 1, good, v ? "true" : "false"),
                                 0);
                ck_assert_int_eq(parse(t, &rec), 0);
                ck_assert_int_eq(rec.lane, v);
                text = snap_record_format(&rec);
                ck_assert_ptr_nonnull(text);
                ck_assert_int_eq(parse(text, &back), 0);
                ck_assert_int_eq(back.lane, v);
                snap_record_done(&back);
                snap_record_done(&rec);
                free(text);
                free(t);
        }
        char *t = NULL;
        ck_assert_int_ge(asprintf(&t, "%.*s,\"lane\":1}", (int)strlen(good) - 1, good), 0);
        assert_corrupt(t);
        free(t);
}
END_TEST

/* Mounts (vsock only): kept through a round trip; a virtio-fs or bad list refused. */
START_TEST(test_mounts)
{
        char *t = NULL;
        const char *m = "[{\"host\":\"/srv/a\",\"guest\":\"/mnt/a\",\"writable\":false},"
                        "{\"host\":\"/srv/b\",\"guest\":\"/mnt/b\",\"writable\":true}]";
        ck_assert_int_ge(asprintf(&t, "%.*s,\"mounts\":%s,\"mount_transport\":\"vsock\"}", (int)strlen(good) - 1,
                                  good, m), 0);
        snap_record rec;
        ck_assert_int_eq(parse(t, &rec), 0);
        ck_assert_uint_eq(rec.n_mounts, 2);
        ck_assert_str_eq(rec.mounts[1].guest_path, "/mnt/b");
        ck_assert(rec.mounts[1].writable && !rec.mounts[0].writable);
        char *again = snap_record_format(&rec);
        ck_assert_ptr_nonnull(again);
        snap_record back;
        ck_assert_int_eq(parse(again, &back), 0);
        ck_assert_uint_eq(back.n_mounts, 2);
        ck_assert_str_eq(back.mounts[0].host_path, "/srv/a");
        snap_record_done(&back);
        snap_record_done(&rec);
        free(again);
        free(t);
        ck_assert_int_ge(asprintf(&t, "%.*s,\"mounts\":%s}", (int)strlen(good) - 1, good, m), 0);
        assert_corrupt(t); /* no transport: virtio-fs, never snapshotted */
        free(t);
        ck_assert_int_ge(asprintf(&t, "%.*s,\"mounts\":[{\"host\":\"rel\",\"guest\":\"/mnt/a\"}],"
                                  "\"mount_transport\":\"vsock\"}", (int)strlen(good) - 1, good), 0);
        assert_corrupt(t);
        free(t);
        ck_assert_int_ge(asprintf(&t, "%.*s,\"mounts\":7,\"mount_transport\":\"vsock\"}", (int)strlen(good) - 1,
                                  good), 0);
        assert_corrupt(t);
        free(t);
}
END_TEST

START_TEST(test_bounds)
{
        /* More layers than a chain may have. */
        char layers[4096] = "[";
        for (unsigned i = 0; i <= SNAPSHOT_MAX_LAYERS; i++)
                snprintf(layers + strlen(layers), sizeof(layers) - strlen(layers), "%s\"layer-%012x.qcow2\"",
                         i ? "," : "", i);
        strcat(layers, "]");
        char *t = with("layers", layers);
        assert_corrupt(t);
        free(t);
        /* An oversized file is refused before it is parsed. */
        size_t n = 70 * 1024;
        char *big = malloc(n + 1);
        memset(big, ' ', n);
        big[n] = '\0';
        memcpy(big, good, strlen(good));
        snap_record rec;
        ck_assert_int_eq(snap_record_parse("/s/snapshot.json", big, n, &rec), SMOLVM_ECORRUPT);
        free(big);
        ck_assert(snap_layer_name_valid("layer-0123456789ab.qcow2"));
        ck_assert(!snap_layer_name_valid("layer-0123456789ab.qcow2x"));
        ck_assert(!snap_layer_name_valid("layer-0123456789a/.qcow2"));
        ck_assert(!snap_layer_name_valid("disk.qcow2"));
}
END_TEST

static Suite *snapshot_record_suite(void)
{
        Suite *s = suite_create("snapshot_record");
        TCase *tc = tcase_create("record");
        tcase_add_test(tc, test_parse_good);
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_bad);
        tcase_add_test(tc, test_bounds);
        tcase_add_test(tc, test_mounts);
        tcase_add_test(tc, test_lane);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(snapshot_record_suite());
}
