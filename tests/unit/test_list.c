/* SPDX-License-Identifier: Apache-2.0 */
/* Intrusive lists (common/list.h): order after prepends, removal from the
 * head, the middle and the tail, every link checked both ways. */
#include "check_main.h"
#include "list.h"

typedef struct item {
        int v;
        struct item *prev, *next;
} item;

/* The list at head holds exactly want[0..n) in that order, linked both ways. */
static void expect(item *head, const int *want, size_t n)
{
        item *prev = NULL;
        size_t i = 0;
        for (item *it = head; it; prev = it, it = it->next, i++) {
                ck_assert_uint_lt(i, n);
                ck_assert_int_eq(it->v, want[i]);
                ck_assert_ptr_eq(it->prev, prev);
        }
        ck_assert_uint_eq(i, n);
}

START_TEST(test_prepend_remove)
{
        item a = { .v = 1 }, b = { .v = 2 }, c = { .v = 3 }, d = { .v = 4 };
        item *head = NULL;
        expect(head, NULL, 0);
        LIST_PREPEND(head, &a);
        LIST_PREPEND(head, &b);
        LIST_PREPEND(head, &c);
        LIST_PREPEND(head, &d);
        expect(head, (int[]){ 4, 3, 2, 1 }, 4);
        LIST_REMOVE(head, &c); /* middle */
        expect(head, (int[]){ 4, 2, 1 }, 3);
        ck_assert_ptr_null(c.prev);
        ck_assert_ptr_null(c.next);
        LIST_REMOVE(head, &d); /* head */
        expect(head, (int[]){ 2, 1 }, 2);
        LIST_REMOVE(head, &a); /* tail */
        expect(head, (int[]){ 2 }, 1);
        LIST_PREPEND(head, &c); /* a removed item goes back in */
        expect(head, (int[]){ 3, 2 }, 2);
        LIST_REMOVE(head, &b);
        LIST_REMOVE(head, &c);
        ck_assert_ptr_null(head);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("list");
        TCase *tc = tcase_create("list");
        tcase_add_test(tc, test_prepend_remove);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
