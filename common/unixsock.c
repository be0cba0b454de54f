/* SPDX-License-Identifier: Apache-2.0 */
/* Unix stream sockets at a path; see unixsock.h. */
#include "unixsock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int unix_listen(const char *path, int backlog, int sock_flags)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len + 1);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | sock_flags, 0);
        if (fd < 0)
                return negative_errno();
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
                (void)unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, backlog) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

int unix_sockaddr_at(const char *dir, const char *name, struct sockaddr_un *sa, int *ret_dir_fd)
{
        *sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
        int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", dir, name);
        if (n >= 0 && (size_t)n < sizeof(sa->sun_path)) {
                *ret_dir_fd = -1;
                return 0;
        }
        _cleanup_close_ int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return negative_errno();
        n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dir_fd, name);
        if (n < 0 || (size_t)n >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        *ret_dir_fd = TAKE_FD(dir_fd);
        return 0;
}
