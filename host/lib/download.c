/* SPDX-License-Identifier: Apache-2.0 */
/* Guest -> host copies (smolvm_download_with) over the agent's read_file and
 * list_tree ops (docs/protocol.md).
 *
 * The guest is hostile and the destination may hold symlinks that an earlier
 * download recreated from it. Which part of the host path is whose:
 *  - the directories above host_path's last component are the caller's: they are
 *    resolved as usual, like cp(1) does (mkdir_p_open creates missing ones);
 *  - host_path's last component, the name "into a directory" appends, and every
 *    entry of a tree are the copy's: each is opened below its parent's fd with
 *    openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so a symlink there is never
 *    followed. Where the copy would go through one the download stops and names
 *    it; a file or symlink of the copy replaces one at its own name (rename).
 * Decisions (is it a directory? does it exist?) are made on the fd that was
 * opened, never on a separate stat of a path, and modes are applied with fchmod
 * on fds opened that way (directories: re-opened, checked to be the same inode).
 *
 * Sizes: what the guest announces is checked against the cap and the free space
 * before anything is written, and read_body() never accepts more bytes than
 * announced; the sink counts what is received against the cap as well. */
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

#include "files_i.h"
#include "guest_path.h"
#include "util.h"

/* setuid/setgid from a guest would be a gift to whoever runs the file on the host. */
#define DOWNLOAD_FILE_MODE_MASK 0777u
#define DOWNLOAD_DIR_MODE_MASK 01777u
#define MIB(b) ((double)(b) / (1024.0 * 1024.0))

static const char symlink_hint[] = "downloads never follow a symlink where the copy goes: remove it, or download "
                                   "elsewhere";

typedef struct dl_ctx {
        smolvm_vm *vm;
        int cancel_fd;
        uint64_t max_bytes;      /* UINT64_MAX: no cap */
        uint64_t received_bytes; /* file bytes written so far */
} dl_ctx;

static int symlink_in_the_way(const char *shown)
{
        return vm_error(-EEXIST, symlink_hint, "%s is a symlink: not following it", shown);
}

/* The directory rel (a validated relative path) names below parent_fd, resolved
 * with openat2 through no symlink and never out of parent_fd. The decision is made
 * on the opened inode: an O_PATH | O_NOFOLLOW open stops at a trailing symlink (an
 * fd of the link itself) where O_DIRECTORY would only say ENOTDIR. Returns an
 * O_RDONLY fd, -ELOOP (a symlink, last or on the way), -ENOTDIR, -ENOENT, or a
 * negative errno. */
static int open_dir_beneath(int parent_fd, const char *rel)
{
        struct open_how how = {
                .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        _cleanup_close_ int fd = -1;
        /* EAGAIN: a rename raced with the lookup; harmless to retry. */
        for (int tries = 0; fd < 0 && tries < 8; tries++) {
                fd = (int)syscall(SYS_openat2, parent_fd, rel, &how, sizeof(how));
                if (fd < 0 && errno != EAGAIN)
                        return negative_errno();
        }
        if (fd < 0)
                return -EAGAIN;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISLNK(st.st_mode))
                return -ELOOP;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return dfd < 0 ? negative_errno() : dfd;
}

/* The directory of the copy that rel names below parent_fd (shown: its path for
 * messages). Returns the fd or a negative errno (recorded). */
static int open_copy_dir(int parent_fd, const char *rel, const char *shown)
{
        int fd = open_dir_beneath(parent_fd, rel);
        if (fd == -ELOOP)
                return symlink_in_the_way(shown);
        if (fd == -ENOTDIR)
                return vm_error(-EEXIST, "remove it, or download elsewhere", "%s exists and is not a directory",
                                shown);
        if (fd < 0)
                return vm_error(fd, NULL, "open %s: %s", shown, strerror(-fd));
        return fd;
}

/* Within the cap and room on dir_fd's file system for files of total_bytes (disk_bytes
 * once rounded up to blocks)? Records -EFBIG / -ENOSPC. */
static int check_room(const dl_ctx *x, int dir_fd, uint64_t total_bytes, uint64_t disk_bytes, const char *shown)
{
        static const char limit_hint[] = "raise the limit (smolvm cp --max-size), or download less";
        if (total_bytes > x->max_bytes - x->received_bytes && x->received_bytes == 0)
                return vm_error(-EFBIG, limit_hint, "download to %s: %.1f MiB, more than the limit of %.1f MiB",
                                shown, MIB(total_bytes), MIB(x->max_bytes));
        if (total_bytes > x->max_bytes - x->received_bytes)
                return vm_error(-EFBIG, limit_hint,
                                "download to %s: %.1f MiB more would pass the limit of %.1f MiB (%.1f MiB written)",
                                shown, MIB(total_bytes), MIB(x->max_bytes), MIB(x->received_bytes));
        struct statvfs sv;
        if (fstatvfs(dir_fd, &sv) < 0)
                return vm_error(negative_errno(), NULL, "statvfs for %s: %s", shown, strerror(errno));
        uint64_t free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
        if (disk_bytes > free_bytes)
                return vm_error(-ENOSPC, "free some space, or download elsewhere",
                                "download to %s needs %.1f MiB, its file system has %.1f MiB free", shown,
                                MIB(disk_bytes), MIB(free_bytes));
        return 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t disk_size(uint64_t size, uint64_t block_bytes)
{
        uint64_t rem = block_bytes ? size % block_bytes : 0;
        return rem ? sat_add(size, block_bytes - rem) : size;
}

typedef struct file_sink {
        dl_ctx *x;
        int fd;
        const char *shown;
} file_sink;

static int file_sink_write(void *ud, const void *data, size_t len)
{
        file_sink *s = ud;
        /* The announced size passed check_room(); this holds whatever the guest sends. */
        if (len > s->x->max_bytes - s->x->received_bytes)
                return vm_error(-EFBIG, NULL, "download to %s: the guest sent more than the limit of %.1f MiB",
                                s->shown, MIB(s->x->max_bytes));
        s->x->received_bytes += len;
        int r = write_all(s->fd, data, len);
        if (r < 0)
                return vm_error(r, r == -ENOSPC ? "free some space, or download elsewhere" : NULL, "write %s: %s",
                                s->shown, strerror(-r));
        return 0;
}

/* Receive the open read_file stream into parent_fd/leaf: a temporary file in the
 * same directory, renamed over leaf once complete (a symlink at leaf is replaced,
 * not followed). On any failure, cancellation included, the temporary file goes. */
static int receive_file_at(dl_ctx *x, agent_call *c, const char *guest_path, uint64_t size, unsigned mode,
                           int parent_fd, const char *leaf, const char *shown)
{
        uint64_t block_bytes = 0;
        struct statvfs sv;
        if (fstatvfs(parent_fd, &sv) == 0)
                block_bytes = sv.f_frsize;
        int r = check_room(x, parent_fd, size, disk_size(size, block_bytes), shown);
        if (r < 0)
                return r;
        char tmp[64];
        file_sink s = { .x = x, .fd = -1, .shown = shown };
        for (int tries = 0; s.fd < 0; tries++) {
                char id[SMOLVM_ID_LEN + 1];
                r = random_id(id);
                if (r < 0)
                        return r;
                snprintf(tmp, sizeof(tmp), ".smolvm-%s.tmp", id);
                s.fd = openat(parent_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (s.fd < 0 && (errno != EEXIST || tries > 8))
                        return vm_error(negative_errno(), NULL, "create a temporary file next to %s: %s", shown,
                                        strerror(errno));
        }
        r = read_body(c, guest_path, size, file_sink_write, &s);
        if (r == -ECANCELED)
                r = vm_error(-ECANCELED, NULL, "download to %s interrupted: the partial file was removed", shown);
        if (r == 0 && fchmod(s.fd, mode & DOWNLOAD_FILE_MODE_MASK) < 0)
                r = vm_error(negative_errno(), NULL, "chmod %s: %s", shown, strerror(errno));
        if (r == 0 && close(TAKE_FD(s.fd)) < 0)
                r = vm_error(negative_errno(), NULL, "write %s: %s", shown, strerror(errno));
        safe_close(s.fd);
        if (r == 0 && renameat(parent_fd, tmp, parent_fd, leaf) < 0)
                r = vm_error(negative_errno(), NULL, "rename to %s: %s", shown, strerror(errno));
        if (r < 0)
                (void)unlinkat(parent_fd, tmp, 0);
        return r;
}

/* Where the copy goes: dir_fd/leaf, or dir_fd itself when leaf is NULL (host_path
 * "." or "/" as SMOLVM_DOWNLOAD_AS). */
typedef struct dl_dest {
        int dir_fd;
        const char *leaf;  /* points into shown */
        char *shown;       /* the copy's host path */
        bool slash;        /* host_path ended with '/' (a directory is meant) */
} dl_dest;

static void dl_dest_done(dl_dest *d)
{
        d->dir_fd = safe_close(d->dir_fd);
        free(d->shown);
        d->shown = NULL;
}

/* The last component of guest_path: the copy's name inside a directory. */
static int copy_name(const char *guest_path, char **ret)
{
        size_t end = strlen(guest_path);
        while (end > 0 && guest_path[end - 1] == '/')
                end--;
        size_t start = end;
        while (start > 0 && guest_path[start - 1] != '/')
                start--;
        size_t n = end - start;
        if (n == 0 || (n == 1 && guest_path[start] == '.') || (n == 2 && !strncmp(guest_path + start, "..", 2)))
                return vm_error(-EINVAL, "name the destination instead of a directory to put it in",
                                "cannot copy %s into a directory: it has no name", guest_path);
        *ret = strndup(guest_path + start, n);
        return *ret ? 0 : vm_error(-ENOMEM, NULL, "out of memory");
}

static int resolve_dest(const char *host_path, smolvm_download_dest how, const char *guest_path, dl_dest *ret)
{
        size_t n = strlen(host_path);
        bool slash = n > 1 && host_path[n - 1] == '/';
        while (n > 1 && host_path[n - 1] == '/')
                n--;
        _cleanup_free_ char *path = strndup(host_path, n), *user = NULL, *name = NULL;
        if (!path)
                return vm_error(-ENOMEM, NULL, "out of memory");
        char *sep = strrchr(path, '/');
        const char *last = sep ? sep + 1 : path;
        /* "/", "." and "..": the whole path is the caller's, and a directory. */
        bool whole = !*last || !strcmp(last, ".") || !strcmp(last, "..");
        if (whole || !sep)
                user = strdup(whole ? path : ".");
        else
                user = strndup(path, sep == path ? 1 : (size_t)(sep - path));
        if (!user)
                return vm_error(-ENOMEM, NULL, "out of memory");
        _cleanup_close_ int user_fd = mkdir_p_open(user, 0755);
        if (user_fd < 0)
                return vm_error(user_fd, NULL, "mkdir %s: %s", user, strerror(-user_fd));

        _cleanup_close_ int into_fd = -1;
        if (whole && how != SMOLVM_DOWNLOAD_AS) {
                into_fd = TAKE_FD(user_fd);
        } else if (!whole && how != SMOLVM_DOWNLOAD_AS) {
                if (how == SMOLVM_DOWNLOAD_INTO && mkdirat(user_fd, last, 0755) < 0 && errno != EEXIST)
                        return vm_error(negative_errno(), NULL, "mkdir %s: %s", path, strerror(errno));
                /* The "into" decision is this open: no stat of a path that could change. */
                into_fd = open_dir_beneath(user_fd, last);
                if (into_fd == -ELOOP)
                        return symlink_in_the_way(path);
                bool absent = into_fd == -ENOENT || into_fd == -ENOTDIR;
                if (into_fd < 0 && !(how == SMOLVM_DOWNLOAD_AUTO && absent))
                        return vm_error(into_fd, NULL, "open %s: %s", path, strerror(-into_fd));
        }
        dl_dest d = { .dir_fd = -1 };
        if (into_fd >= 0) {
                int r = copy_name(guest_path, &name);
                if (r < 0)
                        return r;
                bool root = !strcmp(path, "/");
                if (asprintf(&d.shown, "%s%s%s", path, root ? "" : "/", name) < 0)
                        return vm_error(-ENOMEM, NULL, "out of memory");
                d.leaf = d.shown + strlen(d.shown) - strlen(name);
                d.dir_fd = TAKE_FD(into_fd);
        } else {
                d.slash = slash;
                d.shown = TAKE_PTR(path);
                d.leaf = whole ? NULL : last; /* path's buffer is now shown */
                d.dir_fd = TAKE_FD(user_fd);
        }
        *ret = d;
        return 0;
}

/* ---- trees ---- */

typedef struct tree_entry {
        const char *path;         /* validated, relative; "" = the root */
        char type;                /* 'd', 'f', 'l' */
        unsigned mode;
        uint64_t size;            /* files: as listed */
        const char *target;
        dev_t dev;                /* directories: the one this download opened */
        ino_t ino;
} tree_entry;

static int parse_entry(json_t *e, const char *guest_root, tree_entry *ret)
{
        json_t *p = json_object_get(e, "path"), *t = json_object_get(e, "type"), *tg = json_object_get(e, "target");
        uint64_t mode = 0;
        if (!json_is_string(p) || !json_is_string(t))
                return vm_error(-EBADMSG, NULL, "list_tree %s: guest sent an entry without path or type", guest_root);
        const char *path = json_string_value(p), *type = json_string_value(t);
        size_t plen = json_string_length(p);
        tree_entry te = { .path = path };
        if (plen == 0 || (plen == 1 && path[0] == '.'))
                te.path = "";
        else if (!guest_relpath_valid(path, plen))
                return vm_error(-EBADMSG, "the guest may be compromised; nothing was written for this entry",
                                "list_tree %s: guest sent an unsafe path", guest_root);
        if (!strcmp(type, "dir"))
                te.type = 'd';
        else if (!strcmp(type, "file"))
                te.type = 'f';
        else if (!strcmp(type, "symlink")) {
                te.type = 'l';
                if (!json_is_string(tg) || !guest_symlink_target_valid(json_string_value(tg), json_string_length(tg)))
                        return vm_error(-EBADMSG, NULL, "list_tree %s: guest sent an invalid symlink target",
                                        guest_root);
                te.target = json_string_value(tg);
        } else {
                te.type = '?'; /* a type we do not copy (fifo, socket, ...) */
        }
        if (te.type != 'l' && te.type != '?' && uint_field(e, "mode", 07777777, &mode) < 0)
                return vm_error(-EBADMSG, NULL, "list_tree %s: guest sent an entry without a valid mode", guest_root);
        if (te.type == 'f' && uint_field(e, "size", UINT64_MAX >> 1, &te.size) < 0)
                return vm_error(-EBADMSG, NULL, "list_tree %s: guest sent a file without a valid size", guest_root);
        if (!*te.path && te.type != 'd')
                return vm_error(-EBADMSG, NULL, "list_tree %s: guest listed the root as a %s", guest_root, type);
        te.mode = (unsigned)mode;
        *ret = te;
        return 0;
}

/* Split a validated relative path into its parent's fd (below root_fd, through no
 * symlink) and the last component. */
static int open_parent(int root_fd, const char *rel, const char *shown, const char **ret_leaf)
{
        const char *slash = strrchr(rel, '/');
        if (!slash) {
                *ret_leaf = rel;
                int fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
                return fd < 0 ? vm_error(negative_errno(), NULL, "dup: %s", strerror(errno)) : fd;
        }
        _cleanup_free_ char *parent = strndup(rel, (size_t)(slash - rel));
        if (!parent)
                return vm_error(-ENOMEM, NULL, "out of memory");
        *ret_leaf = slash + 1;
        int fd = open_dir_beneath(root_fd, parent);
        /* Parents come first in a listing, and a directory entry that meets a
         * symlink stops the download: a guest that lists children of one lies. */
        if (fd == -ELOOP || fd == -ENOTDIR)
                return vm_error(-EEXIST, symlink_hint, "the parent of %s is a symlink or a file: not following it",
                                shown);
        if (fd < 0)
                return vm_error(fd, NULL, "open the parent of %s: %s", shown, strerror(-fd));
        return fd;
}

static int download_dir_entry(int pfd, const char *leaf, const char *shown, tree_entry *te)
{
        if (mkdirat(pfd, leaf, 0700) < 0 && errno != EEXIST)
                return vm_error(negative_errno(), NULL, "mkdir %s: %s", shown, strerror(errno));
        _cleanup_close_ int fd = open_copy_dir(pfd, leaf, shown);
        if (fd < 0)
                return fd;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return vm_error(negative_errno(), NULL, "stat %s: %s", shown, strerror(errno));
        te->dev = st.st_dev;
        te->ino = st.st_ino;
        return 0;
}

static int download_symlink_entry(int pfd, const char *leaf, const char *shown, const char *target)
{
        char tmp[64], id[SMOLVM_ID_LEN + 1];
        int r = random_id(id);
        if (r < 0)
                return r;
        snprintf(tmp, sizeof(tmp), ".smolvm-%s.tmp", id);
        if (symlinkat(target, pfd, tmp) < 0)
                return vm_error(negative_errno(), NULL, "symlink %s: %s", shown, strerror(errno));
        if (renameat(pfd, tmp, pfd, leaf) < 0) {
                r = vm_error(negative_errno(), NULL, "rename to %s: %s", shown, strerror(errno));
                (void)unlinkat(pfd, tmp, 0);
        }
        return r;
}

static int download_entry(dl_ctx *x, int root_fd, const char *guest_root, const char *host_root, tree_entry *te)
{
        if (!*te->path || te->type == '?')
                return 0;
        _cleanup_free_ char *shown = NULL, *gpath = NULL;
        bool root = !strcmp(guest_root, "/");
        if (asprintf(&shown, "%s/%s", host_root, te->path) < 0 ||
            asprintf(&gpath, "%s/%s", root ? "" : guest_root, te->path) < 0)
                return vm_error(-ENOMEM, NULL, "out of memory");
        const char *leaf = NULL;
        _cleanup_close_ int pfd = open_parent(root_fd, te->path, shown, &leaf);
        if (pfd < 0)
                return pfd;
        switch (te->type) {
        case 'd':
                return download_dir_entry(pfd, leaf, shown, te);
        case 'l':
                return download_symlink_entry(pfd, leaf, shown, te->target);
        case 'f': {
                agent_call c = { .fd = -1 }; /* closed below even when read_open fails before opening it */
                uint64_t size;
                unsigned mode;
                int r = read_open(x->vm, gpath, x->cancel_fd, &c, &size, &mode);
                if (r == 0)
                        r = receive_file_at(x, &c, gpath, size, mode, pfd, leaf, shown);
                agent_call_close(&c);
                return r;
        }
        default:
                return 0;
        }
}

/* Directory modes last and deepest first: a read-only directory must not stop
 * us from creating its children. Each is re-opened as it was created (no
 * symlink) and must still be the same inode. */
static int apply_dir_modes(int root_fd, const char *host_root, const tree_entry *ents, size_t n)
{
        for (size_t i = n; i-- > 0;) {
                if (ents[i].type != 'd' || !*ents[i].path)
                        continue;
                _cleanup_free_ char *shown = NULL;
                if (asprintf(&shown, "%s/%s", host_root, ents[i].path) < 0)
                        return vm_error(-ENOMEM, NULL, "out of memory");
                _cleanup_close_ int fd = open_copy_dir(root_fd, ents[i].path, shown);
                if (fd < 0)
                        return fd;
                struct stat st;
                if (fstat(fd, &st) < 0)
                        return vm_error(negative_errno(), NULL, "stat %s: %s", shown, strerror(errno));
                if (st.st_dev != ents[i].dev || st.st_ino != ents[i].ino)
                        return vm_error(-ESTALE, "something else changes the destination: download elsewhere",
                                        "%s was replaced during the download", shown);
                if (fchmod(fd, ents[i].mode & DOWNLOAD_DIR_MODE_MASK) < 0)
                        return vm_error(negative_errno(), NULL, "chmod %s: %s", shown, strerror(errno));
        }
        return 0;
}

/* list_tree does not list its root: ask for the root's mode with stat(1). Best
 * effort: returns 0 and *ret_mode, or a negative errno (not recorded). */
static int guest_mode(const dl_ctx *x, const char *guest_path, unsigned *ret_mode)
{
        const char *argv[] = { "stat", "-c", "%a", "--", guest_path, NULL };
        smolvm_exec_opts o;
        smolvm_exec_opts_init(&o);
        o.argv = argv;
        o.timeout_ms = AGENT_CALL_IDLE_TIMEOUT_MS;
        o.max_output_bytes = 64;
        o.cancel_fd = x->cancel_fd;
        smolvm_result res;
        int r = smolvm_run(x->vm, &o, &res);
        if (r < 0)
                return r;
        char *end = NULL;
        unsigned long m = strtoul(res.stdout_data, &end, 8);
        if (res.status.exit_code != 0 || end == res.stdout_data || (*end && *end != '\n') || m > 07777)
                r = -EBADMSG;
        else
                *ret_mode = (unsigned)m;
        smolvm_result_free(&res);
        return r;
}

static int list_tree(const dl_ctx *x, const char *guest_path, json_t **ret)
{
        json_t *req = request_new("list_tree", guest_path);
        if (!req)
                return smolvm_last_error()->code;
        agent_call c;
        int r = agent_call_open(x->vm, req, "list_tree", SMOLVM_AGENT_REPLY_ANSWER, &c);
        json_decref(req);
        if (r < 0)
                return r;
        c.cancel_fd = x->cancel_fd;
        r = agent_call_result(&c, ret);
        agent_call_close(&c);
        return r;
}

/* All files of the listing against the cap and the free space, before anything
 * is written. */
static int check_tree_room(const dl_ctx *x, int dir_fd, const tree_entry *ents, size_t n, const char *shown)
{
        struct statvfs sv;
        uint64_t block_bytes = fstatvfs(dir_fd, &sv) == 0 ? sv.f_frsize : 0;
        uint64_t total = 0, disk = 0;
        for (size_t i = 0; i < n; i++) {
                if (ents[i].type != 'f')
                        continue;
                total = sat_add(total, ents[i].size);
                disk = sat_add(disk, disk_size(ents[i].size, block_bytes));
        }
        return check_room(x, dir_fd, total, disk, shown);
}

static int download_tree(dl_ctx *x, const char *guest_path, const char *host_path, smolvm_download_dest how,
                         char **ret_host_path)
{
        json_t *res = NULL;
        int r = list_tree(x, guest_path, &res);
        if (r < 0)
                return r;
        json_t *arr = json_object_get(res, "entries");
        size_t n = json_array_size(arr);
        _cleanup_free_ tree_entry *ents = NULL;
        _cleanup_close_ int root_fd = -1;
        dl_dest d = { .dir_fd = -1 };
        if (!json_is_array(arr)) {
                r = vm_error(-EBADMSG, NULL, "list_tree %s: guest agent sent no entries", guest_path);
                goto out;
        }
        ents = calloc(n ? n : 1, sizeof(*ents));
        if (!ents) {
                r = vm_error(-ENOMEM, NULL, "out of memory");
                goto out;
        }
        /* Validate everything before writing anything. */
        for (size_t i = 0; i < n; i++) {
                r = parse_entry(json_array_get(arr, i), guest_path, &ents[i]);
                if (r < 0)
                        goto out;
        }
        r = resolve_dest(host_path, how, guest_path, &d);
        if (r == 0)
                r = check_tree_room(x, d.dir_fd, ents, n, d.shown);
        if (r < 0)
                goto out;
        if (d.leaf) {
                if (mkdirat(d.dir_fd, d.leaf, 0700) < 0 && errno != EEXIST) {
                        r = vm_error(negative_errno(), NULL, "mkdir %s: %s", d.shown, strerror(errno));
                        goto out;
                }
                root_fd = open_copy_dir(d.dir_fd, d.leaf, d.shown);
        } else {
                root_fd = openat(d.dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (root_fd < 0)
                        root_fd = vm_error(negative_errno(), NULL, "open %s: %s", d.shown, strerror(errno));
        }
        if (root_fd < 0) {
                r = root_fd;
                goto out;
        }
        for (size_t i = 0; i < n && r == 0; i++)
                r = download_entry(x, root_fd, guest_path, d.shown, &ents[i]);
        if (r == 0)
                r = apply_dir_modes(root_fd, d.shown, ents, n);
        unsigned root_mode;
        if (r == 0 && guest_mode(x, guest_path, &root_mode) == 0 &&
            fchmod(root_fd, root_mode & DOWNLOAD_DIR_MODE_MASK) < 0)
                r = vm_error(negative_errno(), NULL, "chmod %s: %s", d.shown, strerror(errno));
        if (r == 0 && ret_host_path)
                *ret_host_path = TAKE_PTR(d.shown);
out:
        dl_dest_done(&d);
        json_decref(res);
        return r;
}

/* ---- the entry points ---- */

SMOLVM_EXPORT void smolvm_download_opts_init(smolvm_download_opts *o)
{
        *o = (smolvm_download_opts){ .dest = SMOLVM_DOWNLOAD_AS, .cancel_fd = -1 };
}

SMOLVM_EXPORT int smolvm_download_with(smolvm_vm *vm, const char *guest_path, const char *host_path,
                                       const smolvm_download_opts *opts, char **ret_host_path)
{
        int r = check_guest_path(guest_path, "download");
        if (r < 0)
                return r;
        if (!host_path || !*host_path)
                return vm_error(-EINVAL, NULL, "download: no host path");
        if (!opts || opts->dest > SMOLVM_DOWNLOAD_AUTO)
                return vm_error(-EINVAL, NULL, "download: invalid options");
        dl_ctx x = { .vm = vm, .cancel_fd = opts->cancel_fd,
                     .max_bytes = opts->max_bytes ? opts->max_bytes : UINT64_MAX };
        agent_call c;
        uint64_t size;
        unsigned mode;
        r = read_open(vm, guest_path, x.cancel_fd, &c, &size, &mode);
        if (r == -EISDIR)
                return download_tree(&x, guest_path, host_path, opts->dest, ret_host_path);
        if (r < 0)
                return r;
        dl_dest d = { .dir_fd = -1 };
        r = resolve_dest(host_path, opts->dest, guest_path, &d);
        if (r == 0 && (!d.leaf || d.slash))
                r = vm_error(-EISDIR, "name the file, not a directory to put it in", "download to %s", host_path);
        if (r == 0)
                r = receive_file_at(&x, &c, guest_path, size, mode, d.dir_fd, d.leaf, d.shown);
        agent_call_close(&c);
        if (r == 0 && ret_host_path)
                *ret_host_path = TAKE_PTR(d.shown);
        dl_dest_done(&d);
        return r;
}

SMOLVM_EXPORT int smolvm_download(smolvm_vm *vm, const char *guest_path, const char *host_path)
{
        smolvm_download_opts o;
        smolvm_download_opts_init(&o);
        return smolvm_download_with(vm, guest_path, host_path, &o, NULL);
}
