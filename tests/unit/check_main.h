/* SPDX-License-Identifier: Apache-2.0 */
/* Shared main() for the Check suites: TAP on stdout (meson's protocol: 'tap'),
 * nothing else on stdout, exit status 1 when any test failed. */
#pragma once

#include <check.h>
#include <stdlib.h>

static inline int run_suite(Suite *s)
{
        SRunner *sr = srunner_create(s);
        /* "-" is stdout itself; "/dev/stdout" would be reopened with O_TRUNC
         * and clobber earlier output when stdout is a file. */
        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
