/* SPDX-License-Identifier: Apache-2.0 */
/* Intrusive doubly linked lists: an item has prev and next pointers, a list is
 * a head pointer (NULL when empty). Macros, so that one copy serves every item
 * type; head and item are evaluated more than once (pass plain lvalues). */
#pragma once

#include <stddef.h>

/* Put item first in the list at head. */
#define LIST_PREPEND(head, item)                        \
        do {                                            \
                (item)->prev = NULL;                    \
                (item)->next = (head);                  \
                if ((item)->next)                       \
                        (item)->next->prev = (item);    \
                (head) = (item);                        \
        } while (0)

/* Take item out of the list at head (it must be in it); its links are cleared. */
#define LIST_REMOVE(head, item)                                 \
        do {                                                    \
                if ((item)->prev)                               \
                        (item)->prev->next = (item)->next;      \
                else                                            \
                        (head) = (item)->next;                  \
                if ((item)->next)                               \
                        (item)->next->prev = (item)->prev;      \
                (item)->prev = (item)->next = NULL;             \
        } while (0)
