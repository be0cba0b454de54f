/* SPDX-License-Identifier: Apache-2.0 */
/* Image builder: the apt mirror (apt-get indextargets under a test APT_CONFIG),
 * apt-cache output, module signature/.BTF stripping, xz/zstd decompression, cpio
 * writer, command runner, ELF check (image-builder/). No network, no root needed.
 * Module ordering: test_image_kmod.c. */
#include <elf.h>
#include <fcntl.h>
#include <sched.h>
#include <lzma.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zstd.h>

#include "check_main.h"
#include "image_i.h"

/* `apt-get indextargets --format` lines as aptsrc.c asks for them. */
START_TEST(test_indextargets_parse)
{
        char *u = NULL;
        const char *t =
                "deb-src Sources bookworm main http://src.example/debian/\n"
                "deb Contents-amd64 bookworm main http://contents.example/debian/\n"
                "deb Packages bullseye main http://other.example/debian/\n"
                "deb Packages bookworm contrib http://contrib.example/debian/\n"
                "deb Packages bookworm main cdrom://x/\n"
                "deb Packages bookworm main mirror+file:/etc/apt/mirrors.txt/\n"
                "deb Packages ./ $(COMPONENT) http://flat.example/repo/\n"
                "deb Packages bookworm main\n"
                "deb Packages bookworm main http://a.example/ extra\n"
                "deb Packages bookworm-security main http://security.example/debian-security/\n"
                "deb Packages bookworm main http://deb.example/debian/\n"
                "deb Packages bookworm main http://later.example/debian/\n";
        ck_assert_int_eq(apt_parse_indextargets(t, "bookworm", &u), 0);
        ck_assert_str_eq(u, "http://deb.example/debian"); /* apt's trailing slash dropped */
        free(u);
        u = NULL;
        ck_assert_int_eq(apt_parse_indextargets(t, "bookworm-security", &u), 0);
        ck_assert_str_eq(u, "http://security.example/debian-security");
        free(u);
        u = NULL;
        ck_assert_int_eq(apt_parse_indextargets(t, "trixie", &u), -ENOENT);
        ck_assert_int_eq(apt_parse_indextargets("", "bookworm", &u), -ENOENT);
        ck_assert_int_eq(apt_parse_indextargets("deb Packages bookworm main file:/srv/repo/", "bookworm", &u), 0);
        ck_assert_str_eq(u, "file:/srv/repo");
        free(u);
        u = NULL;
        ck_assert_int_eq(apt_parse_indextargets("deb Packages bookworm main http://root.example/", "bookworm", &u), 0);
        ck_assert_str_eq(u, "http://root.example");
        free(u);
        u = NULL;
        /* Binary junk must not crash. */
        char junk[512];
        for (size_t i = 0; i < sizeof(junk) - 1; i++)
                junk[i] = (char)((i * 131 + 7) % 255 + 1);
        junk[sizeof(junk) - 1] = '\0';
        ck_assert_int_eq(apt_parse_indextargets(junk, "bookworm", &u), -ENOENT);
        ck_assert_ptr_null(u);
}
END_TEST

static void write_text(const char *dir, const char *rel, const char *text)
{
        char *p = path_join(dir, rel);
        ck_assert_ptr_nonnull(p);
        char *slash = strrchr(p, '/');
        *slash = '\0';
        ck_assert_int_eq(mkdir_p(p, 0755), 0);
        *slash = '/';
        ck_assert_int_eq(write_file_atomic(p, text, strlen(text), 0644), 0);
        free(p);
}

/* The mirror is what apt itself resolves from its configuration, wherever that
 * points (APT_CONFIG, Dir::Etc::sourcelist, Dir::Etc::sourceparts; one-line and
 * deb822 files, Enabled: no), not what the files at the default paths say. */
static char *apt_config(const char *dir, const char *list, const char *parts_a, const char *parts_b)
{
        char *conf = path_join(dir, "apt.conf");
        char *text = xasprintf("Dir::Etc::sourcelist \"%s/sources.list\";\nDir::Etc::sourceparts \"%s/parts\";\n",
                               dir, dir);
        write_text(dir, "apt.conf", text);
        write_text(dir, "sources.list", list);
        write_text(dir, "parts/a.sources", parts_a);
        write_text(dir, "parts/b.list", parts_b);
        free(text);
        ck_assert_int_eq(setenv("APT_CONFIG", conf, 1), 0);
        return conf;
}

START_TEST(test_find_mirror_apt_config)
{
        char tmpl[] = "/tmp/test-image-XXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(tmpl));
        char *u = NULL;
        ib_err e = {0};
        /* A disabled deb822 stanza and a deb-src one are not sources of packages. */
        char *conf = apt_config(tmpl, "# nothing here\n",
                                "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\n"
                                "Components: main\nEnabled: no\n\n"
                                "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n\n"
                                "Types: deb\nURIs: http://configured.example/debian\nSuites: bookworm bookworm-updates\n"
                                "Components: contrib main\n",
                                "deb http://later.example/debian bookworm main\n");
        ck_assert_int_eq(apt_find_mirror("bookworm", &u, &e), 0);
        ck_assert_ptr_null(e.msg);
        ck_assert_str_eq(u, "http://configured.example/debian");
        free(u);
        u = NULL;
        free(conf);

        /* sources.list comes before sources.list.d, as apt reads them. */
        conf = apt_config(tmpl, "deb [arch=amd64] http://classic.example/debian bookworm main\n", "", "");
        ck_assert_int_eq(apt_find_mirror("bookworm", &u, &e), 0);
        ck_assert_str_eq(u, "http://classic.example/debian");
        free(u);
        u = NULL;
        free(conf);

        /* Nothing usable: a clear error that says what to do. */
        conf = apt_config(tmpl, "deb cdrom:[Debian]/ bookworm main\n", "", "deb http://x.example/ trixie main\n");
        ck_assert_int_eq(apt_find_mirror("bookworm", &u, &e), -ENOENT);
        ck_assert_ptr_null(u);
        ck_assert_ptr_nonnull(e.msg);
        ck_assert_ptr_nonnull(strstr(e.msg, "bookworm main"));
        ck_assert_ptr_nonnull(strstr(e.msg, "--mirror"));
        free(e.msg);
        free(conf);
        unsetenv("APT_CONFIG");
        ck_assert_int_eq(rm_rf(tmpl), 0);
}
END_TEST

START_TEST(test_apt_cache_output)
{
        char *p = NULL;
        char *v = NULL;
        ck_assert_int_eq(apt_parse_depends("linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n", &p, &v), 0);
        ck_assert_str_eq(p, "linux-image-6.1.0-56-amd64");
        ck_assert_ptr_null(v);
        free(p);
        p = NULL;
        ck_assert_int_eq(apt_parse_depends("linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\n",
                                           &p, &v), 0);
        ck_assert_str_eq(p, "linux-image-6.1.0-56-amd64");
        ck_assert_str_eq(v, "6.1.192-2");
        free(p);
        free(v);
        p = NULL;
        ck_assert_int_eq(apt_parse_depends("  Depends: linux-image-x (= \n", &p, &v), 0);
        ck_assert_ptr_null(v);
        free(p);
        p = NULL;
        ck_assert_int_eq(apt_parse_depends("linux-image-amd64\n |Depends: <linux-image-virtual>\n"
                                           "  Depends: linux-image-6.12.1-amd64\n", &p, NULL), 0);
        ck_assert_str_eq(p, "linux-image-6.12.1-amd64");
        free(p);
        p = NULL;
        ck_assert_int_eq(apt_parse_depends("E: No packages found\n", &p, NULL), -ENOENT);
        ck_assert_int_eq(apt_parse_depends("", &p, NULL), -ENOENT);
        ck_assert_int_eq(apt_parse_version("Package: x\nVersion: 6.1.192-2\nArchitecture: amd64\n", &p), 0);
        ck_assert_str_eq(p, "6.1.192-2");
        free(p);
        ck_assert_int_eq(apt_parse_version("Package: x\n", &p), -ENOENT);
}
END_TEST

/* A minimal module: ELF header, sections [null, .BTF (flags), .shstrtab], then
 * (optionally) a signature block as the kernel's sign-file appends it. */
static size_t fake_module(uint8_t *buf, uint64_t btf_flags, bool signed_)
{
        static const char strtab[] = "\0.BTF\0.shstrtab\0";
        memset(buf, 0, 1024);
        Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;
        memcpy(eh->e_ident, ELFMAG, SELFMAG);
        eh->e_ident[EI_CLASS] = ELFCLASS64;
        eh->e_ident[EI_DATA] = ELFDATA2LSB;
        eh->e_type = ET_REL;
        eh->e_shoff = 256;
        eh->e_shentsize = sizeof(Elf64_Shdr);
        eh->e_shnum = 3;
        eh->e_shstrndx = 2;
        memcpy(buf + 128, strtab, sizeof(strtab));
        Elf64_Shdr *sh = (Elf64_Shdr *)(buf + 256);
        sh[1] = (Elf64_Shdr){ .sh_name = 1, .sh_type = SHT_PROGBITS, .sh_flags = btf_flags, .sh_offset = 64, .sh_size = 8 };
        sh[2] = (Elf64_Shdr){ .sh_name = 6, .sh_type = SHT_STRTAB, .sh_offset = 128, .sh_size = sizeof(strtab) };
        size_t len = 256 + 3 * sizeof(Elf64_Shdr);
        if (signed_) {
                memset(buf + len, 0xab, 40); /* the PKCS#7 blob */
                len += 40;
                uint8_t info[12] = { 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 40 };
                memcpy(buf + len, info, sizeof(info));
                len += sizeof(info);
                memcpy(buf + len, "~Module signature appended~\n", 28);
                len += 28;
        }
        return len;
}

START_TEST(test_kmod_prepare_for_boot)
{
        uint8_t buf[1024], plain[1024];
        size_t plain_len = fake_module(plain, 0, false);
        size_t len = fake_module(buf, 0, true);
        ck_assert_uint_eq(len, plain_len + 80);
        ck_assert_uint_eq(kmod_prepare_for_boot(buf, len), plain_len);
        const Elf64_Shdr *sh = (const Elf64_Shdr *)(buf + 256);
        ck_assert_uint_eq(sh[1].sh_name, 0);  /* .BTF hidden */
        ck_assert_uint_eq(sh[2].sh_name, 6);  /* the rest untouched */
        ck_assert_uint_eq(sh[1].sh_offset, 64);
        /* Idempotent: no signature left, nothing named .BTF. */
        ck_assert_uint_eq(kmod_prepare_for_boot(buf, plain_len), plain_len);

        /* An allocated section named .BTF is not ours to hide; no signature: length kept. */
        len = fake_module(buf, SHF_ALLOC, false);
        ck_assert_uint_eq(kmod_prepare_for_boot(buf, len), len);
        ck_assert_uint_eq(((const Elf64_Shdr *)(buf + 256))[1].sh_name, 1);

        /* A signature length larger than the file, a truncated section table, not ELF: unchanged. */
        len = fake_module(buf, 0, true);
        buf[len - 28 - 1] = 0xff;
        buf[len - 28 - 2] = 0xff;
        ck_assert_uint_eq(kmod_prepare_for_boot(buf, len), len);
        len = fake_module(buf, 0, false);
        ck_assert_uint_eq(kmod_prepare_for_boot(buf, len - 8), len - 8);
        ck_assert_uint_eq(((const Elf64_Shdr *)(buf + 256))[1].sh_name, 1);
        memcpy(buf, "text", 4);
        ck_assert_uint_eq(kmod_prepare_for_boot(buf, 100), 100);
}
END_TEST

/* Modules come xz- or zstd-compressed (Debian 13: xz); the output is bounded. */
START_TEST(test_decompress)
{
        const size_t n = 4u << 20;
        uint8_t *plain = malloc(n);
        for (size_t i = 0; i < n; i++)
                plain[i] = (uint8_t)(i % 251 < 200 ? 0 : i);
        size_t cap = n + 65536, xz_len = 0;
        uint8_t *xz = malloc(2 * cap);
        ck_assert_int_eq(lzma_easy_buffer_encode(1, LZMA_CHECK_CRC32, NULL, plain, n, xz, &xz_len, cap), LZMA_OK);
        void *out = NULL;
        size_t out_len = 0;
        ck_assert_int_eq(ib_unxz(xz, xz_len, 0, n, &out, &out_len), 0);
        ck_assert_uint_eq(out_len, n);
        ck_assert(memcmp(out, plain, n) == 0);
        free(out);
        out = NULL;
        /* One byte over the limit: refused, nothing returned. */
        ck_assert_int_eq(ib_unxz(xz, xz_len, 0, n - 1, &out, &out_len), -EFBIG);
        ck_assert_ptr_null(out);
        /* Truncated, corrupt, empty: -EBADMSG. */
        ck_assert_int_eq(ib_unxz(xz, xz_len / 2, 0, n, &out, &out_len), -EBADMSG);
        xz[xz_len / 2] ^= 0x55;
        ck_assert_int_eq(ib_unxz(xz, xz_len, 0, n, &out, &out_len), -EBADMSG);
        xz[xz_len / 2] ^= 0x55;
        ck_assert_int_eq(ib_unxz(xz, 0, 0, n, &out, &out_len), -EBADMSG);
        ck_assert_ptr_null(out);
        /* Two concatenated streams, as the xz tool accepts them. */
        size_t two = xz_len;
        ck_assert_int_eq(lzma_easy_buffer_encode(1, LZMA_CHECK_CRC64, NULL, plain, 1000, xz, &two, 2 * cap), LZMA_OK);
        ck_assert_int_eq(ib_unxz(xz, two, 0, 2 * n, &out, &out_len), 0);
        ck_assert_uint_eq(out_len, n + 1000);
        ck_assert(memcmp((uint8_t *)out + n, plain, 1000) == 0);
        free(out);
        out = NULL;

        size_t zcap = ZSTD_compressBound(n), z_len;
        uint8_t *z = malloc(2 * zcap);
        z_len = ZSTD_compress(z, zcap, plain, n, 3);
        ck_assert(!ZSTD_isError(z_len));
        ck_assert_int_eq(ib_unzstd(z, z_len, n, &out, &out_len), 0);
        ck_assert_uint_eq(out_len, n);
        ck_assert(memcmp(out, plain, n) == 0);
        free(out);
        out = NULL;
        ck_assert_int_eq(ib_unzstd(z, z_len, n - 1, &out, &out_len), -EFBIG);
        ck_assert_ptr_null(out);
        ck_assert_int_eq(ib_unzstd(z, z_len / 2, n, &out, &out_len), -EBADMSG);
        ck_assert_int_eq(ib_unzstd(z, 0, n, &out, &out_len), -EBADMSG);
        ck_assert_int_eq(ib_unzstd(plain + 300, 100, n, &out, &out_len), -EBADMSG);
        ck_assert_ptr_null(out);
        /* Two frames. */
        size_t z2 = ZSTD_compress(z + z_len, zcap, plain, 1000, 3);
        ck_assert(!ZSTD_isError(z2));
        ck_assert_int_eq(ib_unzstd(z, z_len + z2, 2 * n, &out, &out_len), 0);
        ck_assert_uint_eq(out_len, n + 1000);
        free(out);
        free(z);
        free(xz);
        free(plain);
}
END_TEST

static uint32_t hexfield(const char *h, int i)
{
        char b[9];
        memcpy(b, h + 6 + 8 * i, 8);
        b[8] = '\0';
        return (uint32_t)strtoul(b, NULL, 16);
}

START_TEST(test_cpio_format)
{
        char tmpl[] = "/tmp/test-image-XXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(tmpl));
        char *arch = path_join(tmpl, "a.cpio");
        int fd = open(arch, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        cpio_writer w;
        cpio_init(&w, fd);
        ck_assert_int_eq(cpio_add_dir(&w, "/lib", 0755), 0);
        ck_assert_int_eq(cpio_add_file(&w, "lib/x.ko", 0644, "abcde", 5), 0);
        ck_assert_int_eq(cpio_add_file(&w, "init", 0755, "#!", 2), 0);
        ck_assert_int_eq(cpio_add_file(&w, "empty", 0600, NULL, 0), 0);
        ck_assert_int_eq(cpio_add_chardev(&w, "console", 0600, 5, 1), 0);
        ck_assert_int_eq(cpio_add_file(&w, "", 0644, "x", 1), -EINVAL); /* sticky */
        ck_assert_int_eq(cpio_finish(&w), -EINVAL);
        close(fd);

        /* Re-do cleanly and walk the headers. */
        fd = open(arch, O_RDWR | O_TRUNC | O_CLOEXEC);
        cpio_init(&w, fd);
        cpio_add_dir(&w, "/lib", 0755);
        cpio_add_file(&w, "lib/x.ko", 0644, "abcde", 5);
        cpio_add_file(&w, "init", 0755, "#!", 2);
        cpio_add_chardev(&w, "console", 0600, 5, 1);
        ck_assert_int_eq(cpio_finish(&w), 0);
        close(fd);
        char *buf = NULL;
        size_t len = 0;
        ck_assert_int_eq(read_file(arch, 1 << 20, &buf, &len), 0);
        ck_assert_uint_eq(len % 512, 0);
        const char *names[] = {"lib", "lib/x.ko", "init", "console", "TRAILER!!!"};
        const uint32_t modes[] = {040755, 0100644, 0100755, 020600, 0};
        const uint32_t sizes[] = {0, 5, 2, 0, 0};
        size_t off = 0;
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                const char *h = buf + off;
                ck_assert_int_eq(off % 4, 0);
                ck_assert_int_eq(memcmp(h, "070701", 6), 0);
                ck_assert_uint_eq(hexfield(h, 1), modes[i]);
                ck_assert_uint_eq(hexfield(h, 6), sizes[i]);
                uint32_t namesize = hexfield(h, 11);
                ck_assert_uint_eq(namesize, strlen(names[i]) + 1);
                ck_assert_str_eq(h + 110, names[i]);
                if (i == 3) {
                        ck_assert_uint_eq(hexfield(h, 9), 5);
                        ck_assert_uint_eq(hexfield(h, 10), 1);
                }
                off += (110 + namesize + 3) & ~3u;
                if (i == 1)
                        ck_assert_int_eq(memcmp(buf + off, "abcde", 5), 0);
                off += (sizes[i] + 3) & ~3u;
        }
        free(buf);

        /* And GNU cpio agrees, when it is installed. */
        if (access("/usr/bin/cpio", X_OK) == 0) {
                char *out = NULL;
                ib_err e = {0};
                const char *argv[] = {"cpio", "-it", "--quiet", "-F", arch, NULL};
                ib_cmd cmd = {.argv = argv, .stdout_max_bytes = 4096, .timeout_ms = 10000};
                ck_assert_int_eq(ib_run(&cmd, "test", &out, NULL, &e), 0);
                ck_assert_str_eq(out, "lib\nlib/x.ko\ninit\nconsole\n");
                free(out);
        }
        free(arch);
        rm_rf(tmpl);
}
END_TEST

START_TEST(test_run)
{
        ib_err e = {0};
        char *out = NULL;
        const char *ok[] = {"sh", "-c", "printf hello; echo noise >&2", NULL};
        ib_cmd c1 = {.argv = ok, .stdout_max_bytes = 100};
        ck_assert_int_eq(ib_run(&c1, "step", &out, NULL, &e), 0);
        ck_assert_str_eq(out, "hello");
        free(out);
        ck_assert_ptr_null(e.msg);

        const char *bad[] = {"sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line$i >&2; i=$((i+1)); done; exit 3", NULL};
        ib_cmd c2 = {.argv = bad};
        ck_assert_int_eq(ib_run(&c2, "rootfs", NULL, NULL, &e), -EPROTO);
        ck_assert_msg(strncmp(e.msg, "rootfs: sh failed (exit 3): ", 28) == 0, "%s", e.msg);
        ck_assert_ptr_nonnull(strstr(e.msg, "line2999"));
        ck_assert_ptr_null(strstr(e.msg, "line2000 "));
        ck_assert_ptr_null(strchr(e.msg, '\n'));
        free(e.msg);
        e.msg = NULL;

        /* debootstrap prints its E: lines on stdout. */
        const char *so[] = {"sh", "-c", "echo 'I: Retrieving'; echo 'E: Failed getting release file'; exit 1", NULL};
        ib_cmd c6 = {.argv = so, .stdout_in_tail = true};
        ck_assert_int_eq(ib_run(&c6, "rootfs", NULL, NULL, &e), -EPROTO);
        ck_assert_str_eq(e.msg, "rootfs: sh failed (exit 1): I: Retrieving | E: Failed getting release file");
        free(e.msg);
        e.msg = NULL;

        const char *nf[] = {"smolvm-no-such-command-xyz", NULL};
        ib_cmd c3 = {.argv = nf};
        ck_assert_int_eq(ib_run(&c3, "kernel", NULL, NULL, &e), -ENOENT);
        ck_assert_ptr_nonnull(strstr(e.msg, "not found"));
        free(e.msg);
        e.msg = NULL;

        const char *slow[] = {"sleep", "10", NULL};
        ib_cmd c4 = {.argv = slow, .timeout_ms = 200};
        uint64_t t0 = now_ms();
        ck_assert_int_eq(ib_run(&c4, "kernel", NULL, NULL, &e), -ETIMEDOUT);
        ck_assert_uint_lt(now_ms() - t0, 3000);
        free(e.msg);
        e.msg = NULL;
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* the child was reaped */

        const char *big[] = {"sh", "-c", "yes | head -c 100000", NULL};
        ib_cmd c5 = {.argv = big, .stdout_max_bytes = 1000};
        ck_assert_int_eq(ib_run(&c5, "x", &out, NULL, &e), -E2BIG);
        free(e.msg);
}
END_TEST

START_TEST(test_tail_lines)
{
        char out[64];
        ib_tail_lines("a\nb\nc\nd\n\n", 9, 2, out, sizeof(out));
        ck_assert_str_eq(out, "c | d");
        ib_tail_lines("", 0, 3, out, sizeof(out));
        ck_assert_str_eq(out, "");
        ib_tail_lines("0123456789012345678901234567890123456789", 40, 1, out, 11);
        ck_assert_str_eq(out, "0123456789");
}
END_TEST

START_TEST(test_elf_check)
{
        ib_err e = {0};
        char *self = NULL;
        size_t len = 0;
        ck_assert_int_eq(read_file("/proc/self/exe", 64u << 20, &self, &len), 0);
        /* This test binary is dynamically linked. */
        ck_assert_int_eq(elf_check_static(self, len, "t", &e), -ENOEXEC);
        ck_assert_ptr_nonnull(strstr(e.msg, "dynamically linked"));
        free(e.msg);
        e.msg = NULL;
        free(self);

        ck_assert_int_eq(elf_check_static("#!/bin/sh\n", 10, "t", &e), -ENOEXEC);
        free(e.msg);
        e.msg = NULL;

        /* A minimal static ELF: header + one PT_LOAD. */
        uint8_t img[sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr)] = {0};
        Elf64_Ehdr eh = {0};
        memcpy(eh.e_ident, ELFMAG, SELFMAG);
        eh.e_ident[EI_CLASS] = ELFCLASS64;
        eh.e_ident[EI_DATA] = ELFDATA2LSB;
        eh.e_type = ET_EXEC;
        eh.e_machine = EM_X86_64;
        eh.e_phoff = sizeof(Elf64_Ehdr);
        eh.e_phentsize = sizeof(Elf64_Phdr);
        eh.e_phnum = 1;
        Elf64_Phdr ph = {.p_type = PT_LOAD};
        memcpy(img, &eh, sizeof(eh));
        memcpy(img + sizeof(eh), &ph, sizeof(ph));
        ck_assert_int_eq(elf_check_static(img, sizeof(img), "t", &e), 0);
        ((Elf64_Ehdr *)(void *)img)->e_phnum = 2; /* table past the end */
        ck_assert_int_eq(elf_check_static(img, sizeof(img), "t", &e), -ENOEXEC);
        free(e.msg);
}
END_TEST

/* A bzImage-shaped buffer: HdrS at 0x202, setup_sects=1 (protected mode at 1024),
 * payload_offset/length at 0x248. The payload is whatever the caller puts there. */
static size_t make_bzimage(uint8_t *buf, size_t cap, const void *payload, uint32_t plen)
{
        memset(buf, 0, cap);
        buf[0x1f1] = 1;
        memcpy(buf + 0x202, "HdrS", 4);
        put_le32(buf + 0x248, 16);
        put_le32(buf + 0x24c, plen);
        memcpy(buf + 1024 + 16, payload, plen);
        return 1024 + 16 + plen;
}

START_TEST(test_vmlinux_malformed)
{
        static uint8_t buf[4096];
        void *out = NULL;
        size_t out_len = 0;
        ib_err err = {0};

        /* Too short, no magic. */
        ck_assert_int_eq(ib_vmlinux_from_bzimage(buf, 100, &out, &out_len, &err), -EINVAL);
        memset(buf, 0, sizeof(buf));
        ck_assert_int_eq(ib_vmlinux_from_bzimage(buf, sizeof(buf), &out, &out_len, &err), -EINVAL);

        /* Payload length pointing past the end of the file. */
        size_t n = make_bzimage(buf, sizeof(buf), "\xfd" "7zXZ\0" "0123456789", 16);
        put_le32(buf + 0x24c, 0xfffffff0u);
        ck_assert_int_eq(ib_vmlinux_from_bzimage(buf, n, &out, &out_len, &err), -EINVAL);
        /* Offset overflow. */
        n = make_bzimage(buf, sizeof(buf), "\xfd" "7zXZ\0" "0123456789", 16);
        put_le32(buf + 0x248, 0xffffff00u);
        ck_assert_int_eq(ib_vmlinux_from_bzimage(buf, n, &out, &out_len, &err), -EINVAL);

        /* Not xz. */
        n = make_bzimage(buf, sizeof(buf), "\x1f\x8b" "gzipgzipgzipgzip", 18);
        ck_assert_int_eq(ib_vmlinux_from_bzimage(buf, n, &out, &out_len, &err), -ENOTSUP);

        /* xz magic, absurd trailing size. */
        uint8_t p[32];
        memcpy(p, "\xfd" "7zXZ\0", 6);
        memset(p + 6, 0x55, sizeof(p) - 6);
        put_le32(p + sizeof(p) - 4, 0xffffffffu);
        n = make_bzimage(buf, sizeof(buf), p, sizeof(p));
        ck_assert_int_eq(ib_vmlinux_from_bzimage(buf, n, &out, &out_len, &err), -EINVAL);

        /* xz magic, plausible size, garbage stream: a decode error, never a crash. */
        put_le32(p + sizeof(p) - 4, 4096);
        n = make_bzimage(buf, sizeof(buf), p, sizeof(p));
        ck_assert_int_eq(ib_vmlinux_from_bzimage(buf, n, &out, &out_len, &err), -EBADMSG);
        ck_assert_ptr_null(out);
        /* The first failure's message is kept (first writer wins) and names the step. */
        ck_assert_ptr_nonnull(err.msg);
        ck_assert_ptr_nonnull(strstr(err.msg, "kernel:"));
        free(err.msg);
}
END_TEST

/* Debian 6.12 (bookworm-backports) packs its bzImage payload with zstd: the
 * ELF comes out whole; a wrong trailing size or a garbage stream is an error. */
START_TEST(test_vmlinux_zstd)
{
        static uint8_t buf[8192], elf[3000], z[4096];
        memset(elf, 0x5a, sizeof(elf));
        memcpy(elf, "\x7f" "ELF", 4);
        size_t z_len = ZSTD_compress(z, sizeof(z) - 4, elf, sizeof(elf), 3);
        ck_assert(!ZSTD_isError(z_len));
        put_le32(z + z_len, sizeof(elf));
        void *out = NULL;
        size_t out_len = 0, n = make_bzimage(buf, sizeof(buf), z, z_len + 4);
        ib_err err = {0};
        ck_assert_int_eq(ib_vmlinux_from_bzimage(buf, n, &out, &out_len, &err), 0);
        ck_assert_uint_eq(out_len, sizeof(elf));
        ck_assert_mem_eq(out, elf, sizeof(elf));
        free(out);
        out = NULL;

        /* The trailing size one short: more than it says, refused. */
        put_le32(buf + 1024 + 16 + z_len, sizeof(elf) - 1);
        ck_assert_int_lt(ib_vmlinux_from_bzimage(buf, n, &out, &out_len, &err), 0);
        ck_assert_ptr_null(out);
        /* zstd magic, garbage after it. */
        memset(buf + 1024 + 16 + 4, 0xa5, z_len - 4);
        put_le32(buf + 1024 + 16 + z_len, sizeof(elf));
        ck_assert_int_eq(ib_vmlinux_from_bzimage(buf, n, &out, &out_len, &err), -EBADMSG);
        ck_assert_ptr_null(out);
        ck_assert_ptr_nonnull(strstr(err.msg, "kernel:"));
        free(err.msg);
}
END_TEST

/* umount_beneath (what a killed debootstrap leaves: proc, sys mounted in the
 * target) finds the mounts below a directory in /proc/self/mountinfo, names with
 * spaces included, and detaches the deepest first; the directory's siblings stay.
 * In a private mount namespace (a user namespace too when not root). */
static bool mounted(const char *path)
{
        char *text = NULL;
        ck_assert_int_eq(read_file("/proc/self/mountinfo", 16u << 20, &text, NULL), 0);
        char *needle = xasprintf(" %s ", path);
        bool r = strstr(text, needle) != NULL;
        free(needle);
        free(text);
        return r;
}

START_TEST(test_umount_beneath)
{
        ck_assert_int_eq(unshare(geteuid() == 0 ? CLONE_NEWNS : CLONE_NEWUSER | CLONE_NEWNS), 0);
        ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        char tmpl[] = "/tmp/test-image-XXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(tmpl));
        char *root = xasprintf("%s/build root", tmpl), *proc = xasprintf("%s/proc", root);
        char *sub = xasprintf("%s/proc/sub", root), *sibling = xasprintf("%s/build rootx", tmpl);
        ck_assert_int_eq(mkdir_p(proc, 0755), 0);
        ck_assert_int_eq(mkdir_p(sibling, 0755), 0);
        ck_assert_int_eq(mount("tmpfs", proc, "tmpfs", 0, NULL), 0);
        ck_assert_int_eq(mkdir(sub, 0755), 0);
        ck_assert_int_eq(mount("tmpfs", sub, "tmpfs", 0, NULL), 0);
        ck_assert_int_eq(mount("tmpfs", sibling, "tmpfs", 0, NULL), 0);
        char *esc_proc = xasprintf("%s/build\\040root/proc", tmpl);
        char *esc_sub = xasprintf("%s/build\\040root/proc/sub", tmpl);
        char *esc_sibling = xasprintf("%s/build\\040rootx", tmpl);
        ck_assert(mounted(esc_proc) && mounted(esc_sub) && mounted(esc_sibling));
        ck_assert_int_eq(umount_beneath(root), 0);
        ck_assert(!mounted(esc_proc));
        ck_assert(!mounted(esc_sub));
        ck_assert(mounted(esc_sibling));
        ck_assert_int_eq(umount2(sibling, MNT_DETACH), 0);
        ck_assert_int_eq(rm_rf(tmpl), 0);
        free(root), free(proc), free(sub), free(sibling), free(esc_proc), free(esc_sub), free(esc_sibling);
}
END_TEST

static int count_image(void *ud, const char *key, const char *names, const smolvm_image_info *info)
{
        (void)key, (void)names, (void)info;
        ++*(int *)ud;
        return 0;
}

/* One rule for what an image is (common/store.h), the same as libsmolvm's
 * resolve_image (tests/unit/test_state.c): the three files a VM boots from.
 * Debian's bzImage is optional: a directory made by hand may come without. */
START_TEST(test_image_dir_rule)
{
        char home[] = "/tmp/test-image-home-XXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(home));
        /* Hermetic: only this home's images, not a system store the machine has. */
        char *no_system = xasprintf("%s/no-system-store", home);
        ck_assert_int_eq(setenv("SMOLVM_SYSTEM_STORE", no_system, 1), 0);
        free(no_system);
        char *dir = xasprintf("%s/images/hand", home);
        ck_assert_int_eq(mkdir_p(dir, 0755), 0);
        static const char *const boot[] = { "vmlinux", "initramfs.img", "rootfs.ext4" };
        for (size_t i = 0; i < 3; i++) {
                char *p = path_join(dir, boot[i]);
                ck_assert_int_eq(write_file_atomic(p, "x", 1, 0644), 0);
                free(p);
        }
        smolvm_image_info info = {0};
        char *err = NULL;
        ck_assert_int_eq(smolvm_image_resolve_ex(home, "hand", &info, &err), 0);
        ck_assert_ptr_null(err);
        ck_assert_str_eq(info.key, "hand");
        ck_assert_ptr_null(info.vmlinuz); /* not there: not claimed */
        ck_assert_ptr_nonnull(strstr(info.rootfs, "/images/hand/rootfs.ext4"));
        smolvm_image_info_done(&info);
        /* Listed too (smolvm image ls). */
        int seen = 0;
        ck_assert_int_eq(smolvm_image_list(home, count_image, &seen), 0);
        ck_assert_int_eq(seen, 1);
        /* Without its rootfs it is not an image. */
        char *rootfs = path_join(dir, "rootfs.ext4");
        ck_assert_int_eq(unlink(rootfs), 0);
        ck_assert_int_eq(smolvm_image_resolve_ex(home, "hand", &info, &err), -ENOENT);
        ck_assert_ptr_nonnull(err);
        free(err);
        free(rootfs);
        free(dir);
        ck_assert_int_eq(rm_rf(home), 0);
}
END_TEST

START_TEST(test_hash_keys)
{
        char a[65], b[65];
        ib_hash *h = ib_hash_new();
        ib_hash_str(h, "k", "ab");
        ib_hash_str(h, "k", "c");
        ib_hash_final_hex(h, a);
        h = ib_hash_new();
        ib_hash_str(h, "k", "a");
        ib_hash_str(h, "k", "bc");
        ib_hash_final_hex(h, b);
        ck_assert_uint_eq(strlen(a), 64);
        ck_assert_str_ne(a, b);
        h = ib_hash_new();
        ib_hash_bytes(h, "abc", 3);
        ib_hash_final_hex(h, a);
        ck_assert_str_eq(a, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

int main(void)
{
        Suite *s = suite_create("image");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_indextargets_parse);
        tcase_add_test(tc, test_find_mirror_apt_config);
        tcase_add_test(tc, test_apt_cache_output);
        tcase_add_test(tc, test_kmod_prepare_for_boot);
        tcase_add_test(tc, test_decompress);
        tcase_add_test(tc, test_cpio_format);
        tcase_add_test(tc, test_run);
        tcase_add_test(tc, test_tail_lines);
        tcase_add_test(tc, test_elf_check);
        tcase_add_test(tc, test_hash_keys);
        tcase_add_test(tc, test_image_dir_rule);
        tcase_add_test(tc, test_umount_beneath);
        tcase_add_test(tc, test_vmlinux_malformed);
        tcase_add_test(tc, test_vmlinux_zstd);
        tcase_set_timeout(tc, 30);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
