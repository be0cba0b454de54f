/* SPDX-License-Identifier: Apache-2.0 */
/* image-builder/kmod.c: the initramfs module closure, load order and conditions,
 * read through libkmod from indexes that the real depmod wrote over a tree of
 * small made-up modules (relocatable ELF files carrying what depmod reads:
 * .modinfo, exported symbol names, undefined symbols). No root, no network;
 * needs depmod (Debian's kmod package, a runtime dependency of the builder). */
#include <elf.h>
#include <lzma.h>
#include <stdio.h>
#include <sys/stat.h>

#include "check_main.h"
#include "image_i.h"

#define RELEASE "6.1.0-test"

typedef struct buf {
        uint8_t *p;
        size_t n;
} buf;

static size_t put(buf *b, const void *data, size_t n)
{
        size_t off = b->n;
        b->p = realloc(b->p, b->n + n + 1);
        ck_assert_ptr_nonnull(b->p);
        if (n)
                memcpy(b->p + b->n, data, n);
        b->n += n;
        return off;
}

static void align8(buf *b)
{
        static const uint8_t zero[8];
        if (b->n % 8)
                put(b, zero, 8 - b->n % 8);
}

/* Space-separated words of s, each put NUL-terminated; returns the first offset. */
static size_t put_words(buf *b, const char *s, char sep)
{
        size_t start = b->n;
        while (s && *s) {
                const char *e = strchrnul(s, sep);
                if (e > s) {
                        put(b, s, (size_t)(e - s));
                        put(b, "", 1);
                }
                s = *e ? e + 1 : e;
        }
        return start;
}

/* Writes <root>/lib/modules/RELEASE/<relpath>: modinfo is '|'-separated
 * key=value entries, exports and imports space-separated symbol names.
 * A relpath ending in .xz is written xz-compressed, as Debian 13 ships them. */
static void write_module(const char *root, const char *relpath, const char *modinfo, const char *exports,
                         const char *imports)
{
        buf b = {0};
        Elf64_Ehdr eh = {0};
        put(&b, &eh, sizeof(eh));
        size_t mi_off = b.n;
        put(&b, "license=GPL", 12);
        put_words(&b, modinfo, '|');
        size_t mi_size = b.n - mi_off;
        size_t ks_off = put_words(&b, exports, ' ');
        size_t ks_size = b.n - ks_off;
        /* .strtab: "" then the imported names; .symtab: the null symbol, then one
         * undefined global per import. */
        size_t str_off = put(&b, "", 1);
        size_t n_imports = 0;
        size_t name_off[16];
        for (const char *s = imports; s && *s;) {
                const char *e = strchrnul(s, ' ');
                ck_assert_uint_lt(n_imports, 16);
                name_off[n_imports++] = b.n - str_off;
                put(&b, s, (size_t)(e - s));
                put(&b, "", 1);
                s = *e ? e + 1 : e;
        }
        size_t str_size = b.n - str_off;
        align8(&b);
        Elf64_Sym sym = {0};
        size_t sym_off = put(&b, &sym, sizeof(sym));
        for (size_t i = 0; i < n_imports; i++) {
                sym = (Elf64_Sym){.st_name = (uint32_t)name_off[i], .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_NOTYPE),
                                  .st_shndx = SHN_UNDEF};
                put(&b, &sym, sizeof(sym));
        }
        size_t sym_size = b.n - sym_off;
        static const char shstr[] = "\0.modinfo\0__ksymtab_strings\0.symtab\0.strtab\0.shstrtab";
        size_t shs_off = put(&b, shstr, sizeof(shstr));
        align8(&b);
        Elf64_Shdr sh[6] = {
                {0},
                {.sh_name = 1, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC, .sh_offset = mi_off, .sh_size = mi_size, .sh_addralign = 1},
                {.sh_name = 10, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC, .sh_offset = ks_off, .sh_size = ks_size, .sh_addralign = 1},
                {.sh_name = 28, .sh_type = SHT_SYMTAB, .sh_offset = sym_off, .sh_size = sym_size, .sh_link = 4, .sh_info = 1,
                 .sh_addralign = 8, .sh_entsize = sizeof(Elf64_Sym)},
                {.sh_name = 36, .sh_type = SHT_STRTAB, .sh_offset = str_off, .sh_size = str_size, .sh_addralign = 1},
                {.sh_name = 44, .sh_type = SHT_STRTAB, .sh_offset = shs_off, .sh_size = sizeof(shstr), .sh_addralign = 1},
        };
        size_t shoff = put(&b, sh, sizeof(sh));
        eh = (Elf64_Ehdr){.e_type = ET_REL, .e_machine = EM_X86_64, .e_version = EV_CURRENT, .e_shoff = shoff,
                          .e_ehsize = sizeof(Elf64_Ehdr), .e_shentsize = sizeof(Elf64_Shdr), .e_shnum = 6, .e_shstrndx = 5};
        memcpy(eh.e_ident, ELFMAG, SELFMAG);
        eh.e_ident[EI_CLASS] = ELFCLASS64;
        eh.e_ident[EI_DATA] = ELFDATA2LSB;
        eh.e_ident[EI_VERSION] = EV_CURRENT;
        memcpy(b.p, &eh, sizeof(eh));

        char *path = xasprintf("%s/lib/modules/" RELEASE "/%s", root, relpath);
        char *slash = strrchr(path, '/');
        *slash = '\0';
        ck_assert_int_eq(mkdir_p(path, 0755), 0);
        *slash = '/';
        size_t l = strlen(relpath);
        if (l > 3 && strcmp(relpath + l - 3, ".xz") == 0) {
                size_t cap = b.n + 4096, out_len = 0;
                uint8_t *out = malloc(cap);
                ck_assert_int_eq(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, b.p, b.n, out, &out_len, cap), LZMA_OK);
                ck_assert_int_eq(write_file_atomic(path, out, out_len, 0644), 0);
                free(out);
        } else {
                ck_assert_int_eq(write_file_atomic(path, b.p, b.n, 0644), 0);
        }
        free(path);
        free(b.p);
}

static void write_text(const char *root, const char *rel, const char *text)
{
        char *p = xasprintf("%s/lib/modules/" RELEASE "/%s", root, rel);
        ck_assert_int_eq(write_file_atomic(p, text, strlen(text), 0644), 0);
        free(p);
}

/* A made-up kernel shaped like the default root set of Debian 6.1: ext4 with its
 * crc32c softdep through an alias (two providers), virtio, fuse; crc32 and
 * virtio_console built in. */
static char root_dir[] = "/tmp/test-image-kmod-XXXXXX";
static char *index_dir;

static void kernel_setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(root_dir));
        write_module(root_dir, "kernel/lib/crc16.ko", NULL, "crc16", NULL);
        write_module(root_dir, "kernel/fs/mbcache.ko", NULL, "mb_cache_create", NULL);
        write_module(root_dir, "kernel/fs/jbd2/jbd2.ko", NULL, "jbd2_journal_start", "crc32_le");
        write_module(root_dir, "kernel/fs/ext4/ext4.ko", "softdep=pre: crypto-crc32c|alias=fs-ext4", NULL,
                     "crc16 mb_cache_create jbd2_journal_start");
        write_module(root_dir, "kernel/drivers/virtio/virtio.ko", NULL, "register_virtio_driver", NULL);
        write_module(root_dir, "kernel/drivers/virtio/virtio_ring.ko", NULL, "virtqueue_add", "register_virtio_driver");
        write_module(root_dir, "kernel/drivers/virtio/virtio_mmio.ko.xz", NULL, NULL, "register_virtio_driver virtqueue_add");
        write_module(root_dir, "kernel/drivers/block/virtio_blk.ko", "alias=virtio:d00000002v*", NULL,
                     "virtqueue_add register_virtio_driver");
        write_module(root_dir, "kernel/crypto/crc32c_generic.ko", "alias=crypto-crc32c|alias=crc32c", NULL, NULL);
        write_module(root_dir, "kernel/arch/x86/crypto/crc32c-intel.ko", "alias=crypto-crc32c", NULL, NULL);
        write_module(root_dir, "kernel/fs/fuse/fuse.ko", NULL, "fuse_conn_init", NULL);
        write_module(root_dir, "kernel/fs/fuse/virtiofs.ko", NULL, NULL, "fuse_conn_init register_virtio_driver virtqueue_add");
        /* Loops between softdeps are legal (modprobe breaks them); a softdep with no
         * pre:/post: is ignored, like kmod does; one naming nothing is skipped. */
        write_module(root_dir, "kernel/misc/sa.ko", "softdep=pre: sb nosuchmodule", NULL, NULL);
        write_module(root_dir, "kernel/misc/sb.ko", "softdep=pre: sa|softdep=gcm", NULL, NULL);
        write_text(root_dir, "modules.builtin", "kernel/lib/crc32.ko\nkernel/drivers/char/virtio_console.ko\n");
        index_dir = xasprintf("%s/index", root_dir);
        ib_err e = {0};
        int r = ib_kmod_index(root_dir, RELEASE, index_dir, &e);
        ck_assert_msg(r == 0, "ib_kmod_index: %s", e.msg ? e.msg : strerror(-r));
}

static void kernel_teardown(void)
{
        ck_assert_int_eq(rm_rf(root_dir), 0);
        free(index_dir);
}

static ssize_t idx(const strv *s, const char *str)
{
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->v[i], str) == 0)
                        return (ssize_t)i;
        return -1;
}

static ib_kmod *open_db(void)
{
        ib_kmod *db = NULL;
        ib_err e = {0};
        ck_assert_int_eq(ib_kmod_open(index_dir, &db, &e), 0);
        ck_assert_ptr_null(e.msg);
        return db;
}

START_TEST(test_kmod_order)
{
        ib_kmod *db = open_db();
        strv order = {0};
        ib_err e = {0};
        const char *roots[] = {"virtio_mmio", "virtio-blk", "ext4", "virtio_console", "virtiofs", NULL};
        ck_assert_int_eq(ib_kmod_resolve(db, roots, &order, &e), 0);
        ck_assert_ptr_null(e.msg);
        /* Every module of the closure once, dependencies first; virtio_console is built in. */
        static const char *const want[] = {
                "kernel/drivers/virtio/virtio.ko",   "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio_mmio.ko.xz", "kernel/drivers/block/virtio_blk.ko",
                "kernel/crypto/crc32c_generic.ko",   "kernel/arch/x86/crypto/crc32c-intel.ko",
                "kernel/lib/crc16.ko",               "kernel/fs/mbcache.ko",
                "kernel/fs/jbd2/jbd2.ko",            "kernel/fs/ext4/ext4.ko",
                "kernel/fs/fuse/fuse.ko",            "kernel/fs/fuse/virtiofs.ko",
        };
        ck_assert_uint_eq(order.n, ARRAY_SIZE(want));
        for (size_t i = 0; i < ARRAY_SIZE(want); i++)
                ck_assert_msg(idx(&order, want[i]) >= 0, "%s missing", want[i]);
        /* Each after what it needs (the fixture's imports). */
        static const char *const before[][2] = {
                {"virtio/virtio.ko", "virtio/virtio_ring.ko"},   {"virtio/virtio_ring.ko", "virtio/virtio_mmio.ko.xz"},
                {"virtio/virtio.ko", "block/virtio_blk.ko"},     {"virtio/virtio_ring.ko", "block/virtio_blk.ko"},
                {"lib/crc16.ko", "ext4/ext4.ko"},                {"fs/mbcache.ko", "ext4/ext4.ko"},
                {"jbd2/jbd2.ko", "ext4/ext4.ko"},                {"fuse/fuse.ko", "fuse/virtiofs.ko"},
                {"virtio/virtio_ring.ko", "fuse/virtiofs.ko"},
                /* softdep pre: through an alias: both providers, before ext4. */
                {"crc32c_generic.ko", "ext4/ext4.ko"},           {"crc32c-intel.ko", "ext4/ext4.ko"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(before); i++) {
                ssize_t a = -1, b = -1;
                for (size_t j = 0; j < order.n; j++) {
                        size_t l = strlen(order.v[j]);
                        if (l >= strlen(before[i][0]) && strcmp(order.v[j] + l - strlen(before[i][0]), before[i][0]) == 0)
                                a = (ssize_t)j;
                        if (l >= strlen(before[i][1]) && strcmp(order.v[j] + l - strlen(before[i][1]), before[i][1]) == 0)
                                b = (ssize_t)j;
                }
                ck_assert_msg(a >= 0 && b >= 0 && a < b, "%s must come before %s", before[i][0], before[i][1]);
        }
        ck_assert_int_eq(idx(&order, "kernel/drivers/virtio/virtio.ko"), 0);
        ck_assert_int_eq(idx(&order, "kernel/drivers/virtio/virtio_ring.ko"), 1);
        ck_assert_int_eq(idx(&order, "kernel/drivers/virtio/virtio_mmio.ko.xz"), 2);
        strv_done(&order);
        ib_kmod_free(db);
}
END_TEST

/* The order file's conditions: a module any unconditional root needs is
 * unconditional (virtio, virtio_ring: virtio_blk needs them too), one needed only
 * by conditional roots gets the union of their conditions (fuse: demand from its
 * own root, virtio:26 from virtiofs). */
START_TEST(test_kmod_conditions)
{
        ib_kmod *db = open_db();
        static const kmod_root roots[] = {
                {"virtio_mmio", NULL}, {"virtio_blk", ""}, {"ext4", NULL},
                {"fuse", "demand"}, {"virtiofs", "virtio:26"}, {"virtiofs", "virtio:26 demand"}, {NULL, NULL},
        };
        const char *names[] = {"virtio_mmio", "virtio_blk", "ext4", "fuse", "virtiofs", NULL};
        strv order = {0}, when = {0};
        ib_err e = {0};
        ck_assert_int_eq(ib_kmod_resolve(db, names, &order, &e), 0);
        ck_assert_int_eq(ib_kmod_conditions(db, roots, &order, &when, &e), 0);
        ck_assert_ptr_null(e.msg);
        ck_assert_uint_eq(when.n, order.n);
        ck_assert_str_eq(when.v[idx(&order, "kernel/drivers/virtio/virtio.ko")], "");
        ck_assert_str_eq(when.v[idx(&order, "kernel/drivers/virtio/virtio_ring.ko")], "");
        ck_assert_str_eq(when.v[idx(&order, "kernel/fs/ext4/ext4.ko")], "");
        ck_assert_str_eq(when.v[idx(&order, "kernel/crypto/crc32c_generic.ko")], "");
        ck_assert_str_eq(when.v[idx(&order, "kernel/fs/fuse/fuse.ko")], "demand virtio:26");
        ck_assert_str_eq(when.v[idx(&order, "kernel/fs/fuse/virtiofs.ko")], "virtio:26 demand");
        strv_done(&when);

        /* A root that is not there: the error of ib_kmod_resolve. */
        static const kmod_root missing[] = {{"ext4", NULL}, {"nosuchmod", "virtio:1"}, {NULL, NULL}};
        ck_assert_int_eq(ib_kmod_conditions(db, missing, &order, &when, &e), -ENOENT);
        ck_assert_ptr_nonnull(e.msg);
        free(e.msg);
        strv_done(&order);
        ib_kmod_free(db);
}
END_TEST

START_TEST(test_kmod_errors)
{
        ib_kmod *db = open_db();
        strv order = {0};
        ib_err e = {0};
        const char *missing[] = {"ext4", "no_such_module", NULL};
        ck_assert_int_eq(ib_kmod_resolve(db, missing, &order, &e), -ENOENT);
        ck_assert_ptr_nonnull(strstr(e.msg, "no_such_module"));
        ck_assert_uint_eq(order.n, 0);
        free(e.msg);
        e.msg = NULL;

        /* A built-in root needs nothing; an alias is not a module name. */
        const char *builtin[] = {"crc32", "virtio_console", NULL};
        ck_assert_int_eq(ib_kmod_resolve(db, builtin, &order, &e), 0);
        ck_assert_uint_eq(order.n, 0);
        const char *alias[] = {"fs-ext4", NULL};
        ck_assert_int_eq(ib_kmod_resolve(db, alias, &order, &e), -ENOENT);
        free(e.msg);
        e.msg = NULL;

        /* Softdep loops are broken, like modprobe does; "nosuchmodule" and a
         * softdep without pre:/post: are skipped. */
        const char *ra[] = {"sa", NULL};
        ck_assert_int_eq(ib_kmod_resolve(db, ra, &order, &e), 0);
        ck_assert_uint_eq(order.n, 2);
        ck_assert_str_eq(order.v[0], "kernel/misc/sb.ko");
        ck_assert_str_eq(order.v[1], "kernel/misc/sa.ko");
        strv_done(&order);
        ib_kmod_free(db);

        /* No index: a clear error naming the directory. */
        ck_assert_int_eq(ib_kmod_open(root_dir, &db, &e), -ENOENT);
        ck_assert_ptr_nonnull(strstr(e.msg, "modules.dep.bin"));
        ck_assert_ptr_nonnull(strstr(e.msg, root_dir));
        free(e.msg);
        e.msg = NULL;

        char *u = kmod_uncompressed_path("kernel/x/y.ko.zst");
        ck_assert_str_eq(u, "kernel/x/y.ko");
        free(u);
}
END_TEST

/* depmod refuses a hard dependency cycle; the index step reports it. */
START_TEST(test_kmod_index_cycle)
{
        char root[] = "/tmp/test-image-kmod-XXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(root));
        write_module(root, "kernel/a.ko", NULL, "a_sym", "b_sym");
        write_module(root, "kernel/b.ko", NULL, "b_sym", "a_sym");
        ib_err e = {0};
        char *index = xasprintf("%s/index", root);
        ck_assert_int_lt(ib_kmod_index(root, RELEASE, index, &e), 0);
        ck_assert_ptr_nonnull(e.msg);
        ck_assert_ptr_nonnull(strstr(e.msg, "depmod"));
        ck_assert(!ib_kmod_has_index(index));
        free(index);
        free(e.msg);
        ck_assert_int_eq(rm_rf(root), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("image_kmod");
        TCase *tc = tcase_create("core");
        tcase_add_unchecked_fixture(tc, kernel_setup, kernel_teardown);
        tcase_add_test(tc, test_kmod_order);
        tcase_add_test(tc, test_kmod_conditions);
        tcase_add_test(tc, test_kmod_errors);
        tcase_add_test(tc, test_kmod_index_cycle);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
