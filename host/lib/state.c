/* SPDX-License-Identifier: Apache-2.0 */
/* The VM record (vms/<id>/vm.json), the per-VM lock, and the derived live state.
 *
 * The record holds only what does not change while the VM lives (id, name, image,
 * sizes). Whether it runs is never stored: it is read from the world each time
 * (a live smolvm-supervisor named in supervisor.pid whose command line names this
 * VM dir), so a SIGKILLed supervisor cannot leave a lie behind. */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "smolvm_i.h"
#include "util.h"
#include "vmdir.h"

#define RECORD_VERSION 1
#define RECORD_MAX_BYTES (1024 * 1024)
#define MAX_RECORD_ENV 4096u

bool vm_template_key_valid(const char *s)
{
        return s && strlen(s) == VM_TEMPLATE_KEY_LEN && strspn(s, "0123456789abcdef") == VM_TEMPLATE_KEY_LEN;
}

void vm_record_done(vm_record *rec)
{
        if (!rec)
                return;
        free(rec->name);
        free(rec->image);
        free(rec->image_dir);
        free(rec->accel);
        free(rec->kernel_cmdline);
        free(rec->from_snapshot);
        free(rec->from_template);
        if (rec->env)
                for (size_t i = 0; rec->env[i]; i++)
                        free(rec->env[i]);
        free(rec->env);
        vm_mounts_free(rec->mounts, rec->n_mounts);
        json_decref(rec->net);
        *rec = (vm_record){ 0 };
}

bool vm_name_valid(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > SMOLVM_NAME_MAX || vm_id_valid(s))
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
                if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
                        return false;
        }
        return true;
}

/* ---- parse ---- */

static rec_reader vm_rec_reader(const char *path)
{
        return (rec_reader){ .path = path, .what = "VM record",
                             .hint = "the VM's record is damaged: remove the VM with `smolvm rm -f ID` (or its "
                                     "directory)" };
}

int vm_record_parse(const char *path, const char *text, size_t len, vm_record *ret)
{
        vm_record rec = { 0 };
        json_error_t jerr;
        char *id = NULL;
        int r;
        const rec_reader src = vm_rec_reader(path), *rr = &src;

        if (len == 0)
                return rec_corrupt(rr, "the file is empty (a write was interrupted?)");
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return rec_corrupt(rr, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        if (!json_is_object(root)) {
                json_decref(root);
                return rec_corrupt(rr, "not a JSON object");
        }
        if ((r = rec_check_version(rr, root, RECORD_VERSION, "this VM was created by another smolvm version")) < 0)
                goto fail;
        if ((r = rec_get_str(rr, root, "id", true, SIZE_MAX, &id)) < 0)
                goto fail;
        if (!vm_id_valid(id)) {
                r = rec_corrupt(rr, "field 'id' is not %d hex digits", SMOLVM_ID_LEN);
                goto fail;
        }
        memcpy(rec.id, id, SMOLVM_ID_LEN + 1);
        json_t *created_v = json_object_get(root, "created");
        if (!json_is_integer(created_v) || json_integer_value(created_v) < 0) {
                r = rec_corrupt(rr, "field 'created' must be a non-negative integer");
                goto fail;
        }
        rec.created_unix = json_integer_value(created_v);
        if ((r = rec_get_str(rr, root, "name", false, SIZE_MAX, &rec.name)) < 0 ||
            (r = rec_get_str(rr, root, "image", false, SIZE_MAX, &rec.image)) < 0 ||
            (r = rec_get_str(rr, root, "image_dir", true, SIZE_MAX, &rec.image_dir)) < 0 ||
            (r = rec_get_str(rr, root, "accel", false, SIZE_MAX, &rec.accel)) < 0 ||
            (r = rec_get_str(rr, root, "kernel_cmdline", false, SIZE_MAX, &rec.kernel_cmdline)) < 0 ||
            (r = rec_get_str(rr, root, "from_snapshot", false, SIZE_MAX, &rec.from_snapshot)) < 0 ||
            (r = rec_get_str(rr, root, "from_template", false, SIZE_MAX, &rec.from_template)) < 0 ||
            (r = rec_get_uint(rr, root, "vcpus", true, 0, 64, &rec.vcpus)) < 0 ||
            (r = rec_get_uint(rr, root, "mem_mib", true, 0, 262144, &rec.mem_mib)) < 0 ||
            (r = rec_get_uint(rr, root, "disk_mib", false, 0, 64u * 1024 * 1024, &rec.disk_mib)) < 0 ||
            (r = rec_get_uint(rr, root, "boot_timeout_ms", false, 0, 3600u * 1000u, &rec.boot_timeout_ms)) < 0)
                goto fail;
        char *mid = NULL;
        if ((r = rec_get_str(rr, root, "machine_id", false, 32, &mid)) < 0)
                goto fail;
        if (mid) {
                bool ok = strlen(mid) == 32 && strspn(mid, "0123456789abcdef") == 32 && strspn(mid, "0") < 32;
                if (ok)
                        memcpy(rec.machine_id, mid, 33);
                free(mid);
                if (!ok) {
                        r = rec_corrupt(rr, "field 'machine_id' is not 32 lowercase hex digits");
                        goto fail;
                }
        }
        if (rec.from_snapshot && !vm_id_valid(rec.from_snapshot)) {
                r = rec_corrupt(rr, "field 'from_snapshot' is not %d hex digits", SMOLVM_ID_LEN);
                goto fail;
        }
        if (rec.from_template && (!rec.from_snapshot || !vm_template_key_valid(rec.from_template))) {
                r = rec_corrupt(rr, "field 'from_template' is not a template key, or has no 'from_snapshot'");
                goto fail;
        }
        if (rec.name && !vm_name_valid(rec.name)) {
                r = rec_corrupt(rr, "field 'name' is not a valid VM name");
                goto fail;
        }
        if (rec.vcpus == 0 || rec.mem_mib < 64) {
                r = rec_corrupt(rr, "fields 'vcpus' and 'mem_mib' must be at least 1 and 64");
                goto fail;
        }
        if ((r = rec_check_image(rr, rec.image_dir, rec.accel)) < 0)
                goto fail;
        if ((r = rec_get_bool(rr, root, "ephemeral", &rec.ephemeral)) < 0)
                goto fail;
        json_t *env = json_object_get(root, "env");
        if (env && !json_is_null(env)) {
                if (!json_is_array(env) || json_array_size(env) > MAX_RECORD_ENV) {
                        r = rec_corrupt(rr, "field 'env' must be an array of at most %u strings", MAX_RECORD_ENV);
                        goto fail;
                }
                rec.env = calloc(json_array_size(env) + 1, sizeof(char *));
                if (!rec.env) {
                        r = vm_error(-ENOMEM, NULL, "out of memory");
                        goto fail;
                }
                for (size_t i = 0; i < json_array_size(env); i++) {
                        json_t *e = json_array_get(env, i);
                        const char *s = json_is_string(e) ? json_string_value(e) : NULL;
                        const char *eq = s ? strchr(s, '=') : NULL;
                        if (!eq || eq == s) {
                                r = rec_corrupt(rr, "field 'env[%zu]' must be a string KEY=VALUE", i);
                                goto fail;
                        }
                        if (!(rec.env[i] = strdup(s))) {
                                r = vm_error(-ENOMEM, NULL, "out of memory");
                                goto fail;
                        }
                }
        }
        {
                char why[512];
                r = vm_mounts_parse(root, &rec, why, sizeof(why));
                if (r == 0)
                        r = vm_net_parse(root, &rec, why, sizeof(why));
                if (r == -ENOMEM) {
                        r = vm_error(-ENOMEM, NULL, "out of memory");
                        goto fail;
                }
                if (r < 0) {
                        r = rec_corrupt(rr, "%s", why);
                        goto fail;
                }
        }
        free(id);
        json_decref(root);
        *ret = rec;
        return 0;
fail:
        free(id);
        json_decref(root);
        vm_record_done(&rec);
        return r;
}

char *vm_record_format(const vm_record *rec)
{
        json_t *o = json_pack("{s:i, s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:s, s:I, s:b}", "version", RECORD_VERSION,
                              "id", rec->id, "created", (json_int_t)rec->created_unix, "image",
                              rec->image ? rec->image : "default", "image_dir", rec->image_dir ? rec->image_dir : "",
                              "vcpus", (json_int_t)rec->vcpus, "mem_mib", (json_int_t)rec->mem_mib, "disk_mib",
                              (json_int_t)rec->disk_mib, "accel", rec->accel ? rec->accel : "auto",
                              "boot_timeout_ms", (json_int_t)rec->boot_timeout_ms, "ephemeral", rec->ephemeral);
        if (!o)
                return NULL;
        json_t *env = json_array();
        bool bad = !env;
        for (size_t i = 0; !bad && rec->env && rec->env[i]; i++) {
                json_t *s = json_string(rec->env[i]);
                bad = !s || json_array_append_new(env, s) < 0;
        }
        bad = bad || json_object_set_new(o, "env", env) < 0;
        if (!bad && rec->name)
                bad = json_object_set_new(o, "name", json_string(rec->name)) < 0;
        else if (!bad)
                bad = json_object_set_new(o, "name", json_null()) < 0;
        if (!bad && rec->kernel_cmdline)
                bad = json_object_set_new(o, "kernel_cmdline", json_string(rec->kernel_cmdline)) < 0;
        if (!bad && rec->from_snapshot)
                bad = json_object_set_new(o, "from_snapshot", json_string(rec->from_snapshot)) < 0;
        if (!bad && rec->from_template)
                bad = json_object_set_new(o, "from_template", json_string(rec->from_template)) < 0;
        if (!bad && rec->machine_id[0])
                bad = json_object_set_new(o, "machine_id", json_string(rec->machine_id)) < 0;
        /* Only when there are mounts: records without them stay as they were. */
        if (!bad && rec->n_mounts)
                bad = json_object_set_new(o, "mounts", vm_mounts_to_json(rec, false)) < 0 ||
                      json_object_set_new(o, "mount_transport",
                                          json_string(vm_mount_transport_name(rec->mount_transport))) < 0;
        if (!bad && rec->net)
                bad = json_object_set(o, "net", rec->net) < 0;
        char *s = bad ? NULL : json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(o);
        return s;
}

static int read_small_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max)
                return -EFBIG;
        char *buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = negative_errno();
                        free(buf);
                        return r;
                }
                if (n == 0 || (len += (size_t)n) == (size_t)st.st_size)
                        break;
        }
        buf[len] = '\0';
        *ret = buf;
        *ret_len = len;
        return 0;
}

int vm_record_load(const char *dir, vm_record *ret)
{
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/" VMDIR_RECORD, dir);
        const rec_reader src = vm_rec_reader(path), *rr = &src;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_small_file(path, RECORD_MAX_BYTES, &text, &len);
        if (r == -ENOENT)
                return vm_error(SMOLVM_ENOTFOUND, "`smolvm ls` lists the VMs", "no VM record %s", path);
        if (r == -EFBIG)
                return rec_corrupt(rr, "not a regular file of at most %d bytes", RECORD_MAX_BYTES);
        if (r < 0)
                return vm_error(r, NULL, "read %s: %s", path, strerror(-r));
        vm_record rec;
        r = vm_record_parse(path, text, len, &rec);
        if (r < 0)
                return r;
        const char *base = strrchr(dir, '/');
        base = base ? base + 1 : dir;
        if (strcmp(base, rec.id) != 0) {
                vm_record_done(&rec);
                return rec_corrupt(rr, "its id does not match its directory");
        }
        *ret = rec;
        return 0;
}

int vm_record_save(const char *dir, const vm_record *rec)
{
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/" VMDIR_RECORD, dir);
        _cleanup_free_ char *s = vm_record_format(rec);
        if (!s)
                return vm_error(-EINVAL, NULL, "cannot encode %s (names, paths and env must be UTF-8)", path);
        return vm_write_file(path, s, strlen(s), !rec->ephemeral);
}

/* ---- lock ---- */

int vm_lock_path(const char *path, unsigned timeout_ms)
{
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                int r = negative_errno();
                if (r == -ENOENT)
                        return vm_error(SMOLVM_ENOTFOUND, NULL, "VM directory of %s is gone (deleted?)", path);
                return vm_error(r, NULL, "open %s: %s", path, strerror(-r));
        }
        uint64_t deadline = now_ms() + timeout_ms;
        for (;;) {
                if (flock(fd, LOCK_EX | LOCK_NB) == 0)
                        return fd;
                if (errno != EWOULDBLOCK && errno != EINTR) {
                        int r = negative_errno();
                        safe_close(fd);
                        return vm_error(r, NULL, "flock %s: %s", path, strerror(-r));
                }
                if (now_ms() >= deadline) {
                        safe_close(fd);
                        return vm_error(SMOLVM_EBUSY, "another smolvm command is working on this VM; retry later",
                                        "timed out waiting for the lock %s", path);
                }
                usleep(20000);
        }
}

/* ---- derived state ---- */

static bool same_file(const char *a, const char *b)
{
        struct stat sa, sb;
        return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Is pid a live smolvm-supervisor serving dir? A zombie has an empty cmdline. */
static bool is_our_supervisor(pid_t pid, const char *dir)
{
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        size_t cap = 8192;
        buf = malloc(cap + 1);
        if (!buf)
                return false;
        for (;;) {
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || (len += (size_t)n) == cap)
                        break;
        }
        buf[len] = '\0';
        if (len == 0)
                return false;
        const char *argv0 = buf, *slash = strrchr(argv0, '/');
        if (strcmp(slash ? slash + 1 : argv0, "smolvm-supervisor") != 0)
                return false;
        for (size_t off = strlen(buf) + 1; off < len; off += strlen(buf + off) + 1)
                if (!strcmp(buf + off, "--vm-dir") && off + strlen(buf + off) + 1 < len)
                        return same_file(buf + off + strlen(buf + off) + 1, dir);
        return false;
}

pid_t vm_live_supervisor(const char *dir, bool *ret_stale)
{
        char path[PATH_MAX], buf[32];
        snprintf(path, sizeof(path), "%s/" VMDIR_PID, dir);
        if (ret_stale)
                *ret_stale = false;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        char *end;
        long pid = strtol(buf, &end, 10);
        if (pid > 0 && pid <= INT_MAX && is_our_supervisor((pid_t)pid, dir))
                return (pid_t)pid;
        if (ret_stale)
                *ret_stale = true;
        return 0;
}

smolvm_state vm_derive_state(const char *dir, pid_t *ret_pid)
{
        char path[PATH_MAX];
        bool stale = false;
        pid_t pid = vm_live_supervisor(dir, &stale);
        if (ret_pid)
                *ret_pid = pid;
        if (pid > 0) {
                snprintf(path, sizeof(path), "%s/" VMDIR_PAUSED, dir);
                return access(path, F_OK) == 0 ? SMOLVM_STATE_PAUSED : SMOLVM_STATE_RUNNING;
        }
        /* A supervisor that ends normally removes supervisor.pid; one that was
         * killed cannot. It leaves "failed" when the VM itself failed. */
        if (stale)
                return SMOLVM_STATE_ERROR;
        snprintf(path, sizeof(path), "%s/" VMDIR_FAILED, dir);
        if (access(path, F_OK) == 0)
                return SMOLVM_STATE_ERROR;
        snprintf(path, sizeof(path), "%s/" VMDIR_OVERLAY, dir);
        return access(path, F_OK) == 0 ? SMOLVM_STATE_STOPPED : SMOLVM_STATE_CREATED;
}

void vm_error_reason(const char *dir, char *buf, size_t size)
{
        char path[PATH_MAX];
        bool stale = false;
        snprintf(path, sizeof(path), "%s/" VMDIR_FAILED, dir);
        /* Written by the supervisor or a failed start; the guest may have had a
         * say in it (a mount's error): one line, sanitised. */
        if (read_line_file(path, buf, size) > 0) {
                sanitize_text(buf);
                return;
        }
        (void)vm_live_supervisor(dir, &stale);
        if (stale)
                snprintf(buf, size, "its supervisor died without stopping the VM (killed?); `smolvm start` boots "
                                    "it again");
        else
                snprintf(buf, size, "the last run failed (no reason recorded)");
}

int proc_stat(pid_t pid, char *ret_state, pid_t *ret_ppid)
{
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        int r = read_line_file(path, buf, sizeof(buf));
        if (r < 0)
                return r;
        /* "PID (COMM) S PPID ...": COMM may hold anything, ')' included. */
        const char *p = strrchr(buf, ')');
        int ppid;
        char state;
        if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2)
                return -EBADMSG;
        *ret_state = state;
        *ret_ppid = (pid_t)ppid;
        return 0;
}

SMOLVM_EXPORT const char *smolvm_state_name(smolvm_state s)
{
        switch (s) {
        case SMOLVM_STATE_CREATED:
                return "created";
        case SMOLVM_STATE_RUNNING:
                return "running";
        case SMOLVM_STATE_PAUSED:
                return "paused";
        case SMOLVM_STATE_STOPPED:
                return "stopped";
        case SMOLVM_STATE_ERROR:
                return "error";
        default:
                return "unknown";
        }
}

void vm_info_from_record(const vm_record *rec, smolvm_vm_info *ret)
{
        *ret = (smolvm_vm_info){ 0 };
        snprintf(ret->id, sizeof(ret->id), "%s", rec->id);
        snprintf(ret->name, sizeof(ret->name), "%s", rec->name ? rec->name : "");
        ret->created_unix = rec->created_unix;
        ret->vcpus = rec->vcpus;
        ret->mem_mib = rec->mem_mib;
        ret->disk_mib = rec->disk_mib;
        snprintf(ret->accel, sizeof(ret->accel), "%s", rec->accel ? rec->accel : "auto");
        snprintf(ret->image, sizeof(ret->image), "%s", rec->image ? rec->image : "default");
        ret->ephemeral = rec->ephemeral;
}

/* ---- listing ---- */

static int cmp_info(const void *a, const void *b)
{
        const smolvm_vm_info *x = a, *y = b;
        if (x->created_unix != y->created_unix)
                return x->created_unix < y->created_unix ? -1 : 1;
        return strcmp(x->id, y->id);
}

int vm_list_dir(const char *vms_dir, smolvm_vm_info **ret, size_t *ret_n)
{
        DIR *d = opendir(vms_dir);
        if (!d) {
                if (errno == ENOENT) {
                        *ret = NULL;
                        *ret_n = 0;
                        return 0;
                }
                int r = negative_errno();
                return vm_error(r, NULL, "open %s: %s", vms_dir, strerror(-r));
        }
        smolvm_vm_info *v = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        int r = 0;
        while ((de = readdir(d))) {
                size_t trash_len = strlen(VM_TRASH_PREFIX);
                /* A removal in progress, or one a kill interrupted that could not be
                 * finished: listed (state error, by id) so that it is never invisible. */
                bool trash = !strncmp(de->d_name, VM_TRASH_PREFIX, trash_len) && vm_id_valid(de->d_name + trash_len);
                if (de->d_name[0] == '.' && !trash)
                        continue;
                char dir[PATH_MAX];
                snprintf(dir, sizeof(dir), "%s/%s", vms_dir, de->d_name);
                struct stat st;
                if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        smolvm_vm_info *nv = realloc(v, cap * sizeof(*v));
                        if (!nv) {
                                r = vm_error(-ENOMEM, NULL, "out of memory");
                                break;
                        }
                        v = nv;
                }
                vm_record rec;
                if (trash) {
                        v[n] = (smolvm_vm_info){ .state = SMOLVM_STATE_ERROR, .created_unix = st.st_mtime };
                        memcpy(v[n].id, de->d_name + trash_len, SMOLVM_ID_LEN + 1);
                        n++;
                        continue;
                }
                if (vm_record_load(dir, &rec) < 0) {
                        /* A VM being created has no record yet; a damaged one is shown as an error. */
                        char path[PATH_MAX + 16];
                        snprintf(path, sizeof(path), "%s/" VMDIR_RECORD, dir);
                        if (access(path, F_OK) < 0)
                                continue;
                        v[n] = (smolvm_vm_info){ .state = SMOLVM_STATE_ERROR };
                        size_t idlen = strnlen(de->d_name, sizeof(v[n].id) - 1);
                        memcpy(v[n].id, de->d_name, idlen);
                        v[n].id[idlen] = '\0';
                        v[n].created_unix = st.st_mtime;
                        n++;
                        continue;
                }
                vm_info_from_record(&rec, &v[n]);
                vm_record_done(&rec);
                v[n].state = vm_derive_state(dir, &v[n].supervisor_pid);
                n++;
        }
        closedir(d);
        if (r < 0) {
                free(v);
                return r;
        }
        if (n)
                qsort(v, n, sizeof(*v), cmp_info);
        else {
                free(v);
                v = NULL;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}
