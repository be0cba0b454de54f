/* SPDX-License-Identifier: Apache-2.0 */
/* Unix stream sockets at a path: the one copy of "listen there, replacing
 * what a killed run left" and of "the address of a socket in a directory,
 * however deep". Needs nothing but libc. */
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

/* A listening unix stream socket bound at path (O_CLOEXEC; sock_flags may add
 * SOCK_NONBLOCK), backlog as for listen(). A socket already at path (left by a
 * run that was killed) is replaced; any other file there is kept and the bind
 * fails (-EADDRINUSE). Returns the fd or a negative errno (-ENAMETOOLONG: path
 * does not fit in sun_path). */
int unix_listen(const char *path, int backlog, int sock_flags);

/* The address of the socket dir/name in *sa. sun_path holds 108 bytes: a
 * longer path goes through /proc/self/fd/N/name, with *ret_dir_fd an O_PATH
 * fd of dir that must stay open until the connect is done (else -1). Returns
 * 0 or a negative errno (opening dir; -ENAMETOOLONG: name itself too long). */
int unix_sockaddr_at(const char *dir, const char *name, struct sockaddr_un *sa, int *ret_dir_fd);
