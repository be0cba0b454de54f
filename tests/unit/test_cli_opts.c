/* SPDX-License-Identifier: Apache-2.0 */
/* The option-table walker of libsmolvm-cli (host/cli/cli_opts.c): every syntax a
 * command line may use, fragments at an offset, errors (with the --json
 * envelope), --help from the table, command families. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "check_main.h"
#include "cli_opts.h"

/* ---- a command with every kind of option, and a fragment at an offset ---- */

typedef struct word_state {
        int calls;
        const char *last;
} word_state;

typedef struct frag {
        const char *dir;
        unsigned secs_ms;
        word_state words;
} frag;

typedef struct args {
        bool flag;
        bool interactive;
        const char *name;
        unsigned count;
        frag inner;
        bool after; /* a field after the fragment: must stay untouched by it */
} args;

static int parse_word(const char *arg, void *field)
{
        word_state *f = field;
        if (!strcmp(arg, "bad")) {
                cli_error("invalid word '%s'", arg);
                return -EINVAL;
        }
        f->calls++;
        f->last = arg;
        return 0;
}

static const cli_opt frag_opts[] = {
        CLI_STRING(frag, dir, "workdir", 'w', "DIR", "a directory"),
        CLI_UINT(frag, secs_ms, "timeout", 0, "SEC", 1, 100, 1000, "seconds"),
        CLI_CALL(frag, words, "word", 'e', "W", parse_word, "a word\nwith a second help line"),
        CLI_END,
};

static const cli_opt test_opts[] = {
        CLI_BOOL(args, flag, "flag", 'f', "a flag"),
        CLI_BOOL(args, interactive, "interactive", 'i', "another flag"),
        CLI_STRING(args, name, "name", 0, "NAME", "a name"),
        CLI_UINT(args, count, "count", 'c', "N", 0, 10, 1, "a count"),
        CLI_INCLUDE(args, inner, frag_opts),
        CLI_STRING(args, name, "a-very-long-option-name", 0, "WITH-A-LONG-VALUE", "help on the next line"),
        CLI_END,
};

static const cli_cmd permute_cmd = { .name = "test", .synopsis = "[OPTIONS] ARG...", .opts = test_opts,
                                     .about = "About the test command.\n", .footer = "The footer.\n" };
static const cli_cmd no_args_cmd = { .name = "test", .synopsis = "[OPTIONS]", .opts = test_opts, .no_args = true };
static const cli_cmd in_order_cmd = { .name = "test", .synopsis = "[OPTIONS] CMD...", .opts = test_opts,
                                      .in_order = true };

/* ---- stdout and stderr of a call, captured ---- */

typedef struct captured {
        int saved_out, saved_err, out_fd, err_fd;
        char out[16384], err[16384];
} captured;

static void capture_begin(captured *c)
{
        fflush(stdout);
        fflush(stderr);
        c->out_fd = memfd_create("out", MFD_CLOEXEC);
        c->err_fd = memfd_create("err", MFD_CLOEXEC);
        ck_assert_int_ge(c->out_fd, 0);
        ck_assert_int_ge(c->err_fd, 0);
        c->saved_out = dup(STDOUT_FILENO);
        c->saved_err = dup(STDERR_FILENO);
        dup2(c->out_fd, STDOUT_FILENO);
        dup2(c->err_fd, STDERR_FILENO);
}

static void read_back(int fd, char *buf, size_t size)
{
        ssize_t n = pread(fd, buf, size - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        close(fd);
}

static void capture_end(captured *c)
{
        fflush(stdout);
        fflush(stderr);
        dup2(c->saved_out, STDOUT_FILENO);
        dup2(c->saved_err, STDERR_FILENO);
        close(c->saved_out);
        close(c->saved_err);
        read_back(c->out_fd, c->out, sizeof(c->out));
        read_back(c->err_fd, c->err, sizeof(c->err));
}

/* argv from a list of words (argv[0] = "test"), as the shell gives it: writable,
 * NULL-terminated, its own storage per call. */
#define MAX_ARGS 32
typedef struct words {
        char *argv[MAX_ARGS + 2];
        char store[MAX_ARGS + 1][128]; /* the words themselves: nothing to free */
        int argc;
} words;

static void add_word(words *w, const char *s)
{
        ck_assert_int_lt(w->argc, MAX_ARGS + 1);
        ck_assert_uint_lt(strlen(s), sizeof(w->store[0]));
        strcpy(w->store[w->argc], s);
        w->argv[w->argc] = w->store[w->argc];
        w->argc++;
}

static void make_argv(words *w, ...)
{
        va_list ap;
        va_start(ap, w);
        w->argc = 0;
        add_word(w, "test");
        for (const char *s; (s = va_arg(ap, const char *));)
                add_word(w, s);
        w->argv[w->argc] = NULL;
        va_end(ap);
}

/* Parse with output captured; *ret_args zeroed first. */
static int parse(const cli_cmd *cmd, words *w, args *ret_args, cli_parsed *p, captured *c)
{
        *ret_args = (args){ 0 };
        capture_begin(c);
        int r = cli_parse(cmd, w->argc, w->argv, ret_args, p);
        capture_end(c);
        return r;
}

START_TEST(test_long_forms)
{
        words w;
        args a;
        cli_parsed p;
        captured c;
        make_argv(&w, "--name=web", "--count", "7", "--timeout=3", "--workdir", "/tmp", "--flag", "pos1", NULL);
        ck_assert_int_eq(parse(&permute_cmd, &w, &a, &p, &c), 0);
        ck_assert_str_eq(a.name, "web");
        ck_assert_uint_eq(a.count, 7);
        ck_assert_uint_eq(a.inner.secs_ms, 3000); /* scaled */
        ck_assert_str_eq(a.inner.dir, "/tmp");
        ck_assert(a.flag);
        ck_assert(!a.interactive && !a.after && !p.json && !p.dashdash);
        ck_assert_int_eq(p.n_pos, 1);
        ck_assert_str_eq(p.pos[0], "pos1");
        ck_assert_ptr_null(p.pos[1]);
        ck_assert_str_eq(c.out, "");
        ck_assert_str_eq(c.err, "");
}
END_TEST

START_TEST(test_short_clusters)
{
        words w;
        args a;
        cli_parsed p;
        captured c;
        /* -fi: two flags; -ie W: a flag and one with its value next; -eW2: glued;
         * -c3 -w/x. */
        make_argv(&w, "-fi", "-ie", "one", "-etwo", "-c3", "-w/x", NULL);
        ck_assert_int_eq(parse(&permute_cmd, &w, &a, &p, &c), 0);
        ck_assert(a.flag && a.interactive);
        ck_assert_int_eq(a.inner.words.calls, 2);
        ck_assert_str_eq(a.inner.words.last, "two");
        ck_assert_uint_eq(a.count, 3);
        ck_assert_str_eq(a.inner.dir, "/x");
        ck_assert_int_eq(p.n_pos, 0);
        ck_assert_ptr_null(p.pos[0]);
}
END_TEST

START_TEST(test_permute_and_dashdash)
{
        words w;
        args a;
        cli_parsed p;
        captured c;
        make_argv(&w, "a", "-f", "b", "--json", "--", "-i", "--name=x", NULL);
        ck_assert_int_eq(parse(&permute_cmd, &w, &a, &p, &c), 0);
        ck_assert(a.flag && p.json);
        ck_assert(!a.interactive && !a.name); /* after "--": arguments */
        ck_assert(p.dashdash);
        ck_assert_int_eq(p.n_pos, 4);
        ck_assert_str_eq(p.pos[0], "a");
        ck_assert_str_eq(p.pos[1], "b");
        ck_assert_str_eq(p.pos[2], "-i");
        ck_assert_str_eq(p.pos[3], "--name=x");
        ck_assert_ptr_null(p.pos[4]);

        /* "-" alone is an argument (stdin), a value may be "--" itself. */
        make_argv(&w, "-", "--name", "--", NULL);
        ck_assert_int_eq(parse(&permute_cmd, &w, &a, &p, &c), 0);
        ck_assert_str_eq(a.name, "--");
        ck_assert(!p.dashdash);
        ck_assert_int_eq(p.n_pos, 1);
        ck_assert_str_eq(p.pos[0], "-");
}
END_TEST

START_TEST(test_permute_ignores_posixly_correct)
{
        words w;
        args a;
        cli_parsed p;
        captured c;
        setenv("POSIXLY_CORRECT", "1", 1);
        make_argv(&w, "id", "-f", NULL);
        int r = parse(&permute_cmd, &w, &a, &p, &c);
        unsetenv("POSIXLY_CORRECT");
        ck_assert_int_eq(r, 0);
        ck_assert(a.flag);
        ck_assert_int_eq(p.n_pos, 1);
}
END_TEST

START_TEST(test_in_order)
{
        words w;
        args a;
        cli_parsed p;
        captured c;
        /* The first positional ends the options: the rest is the guest's argv. */
        make_argv(&w, "-i", "--timeout", "2", "sh", "-c", "--json", "-f", "--", "x", NULL);
        ck_assert_int_eq(parse(&in_order_cmd, &w, &a, &p, &c), 0);
        ck_assert(a.interactive && !a.flag && !p.json && !p.dashdash);
        ck_assert_uint_eq(a.inner.secs_ms, 2000);
        const char *want[] = { "sh", "-c", "--json", "-f", "--", "x" };
        ck_assert_int_eq(p.n_pos, 6);
        for (int i = 0; i < 6; i++)
                ck_assert_str_eq(p.pos[i], want[i]);
        ck_assert_ptr_null(p.pos[6]);

        make_argv(&w, "--flag", "--", "--json", NULL);
        ck_assert_int_eq(parse(&in_order_cmd, &w, &a, &p, &c), 0);
        ck_assert(a.flag && p.dashdash && !p.json);
        ck_assert_int_eq(p.n_pos, 1);
        ck_assert_str_eq(p.pos[0], "--json");
}
END_TEST

/* Parse a command line that must fail; the captured stderr must name `needle`. */
static void expect_error(const char *needle, captured *c, words *w, bool json)
{
        args a;
        cli_parsed p;
        ck_assert_int_eq(parse(&permute_cmd, w, &a, &p, c), -EINVAL);
        ck_assert_msg(strstr(c->err, needle), "stderr '%s' lacks '%s'", c->err, needle);
        ck_assert_msg(!strncmp(c->err, "smolvm: ", 8), "stderr '%s'", c->err);
        ck_assert(p.json == json);
        if (!json)
                ck_assert_str_eq(c->out, "");
}

START_TEST(test_errors)
{
        words w;
        captured c;
        make_argv(&w, "--bogus", NULL);
        expect_error("unknown option '--bogus'", &c, &w, false);
        make_argv(&w, "--bogus=1", NULL);
        expect_error("unknown option '--bogus'", &c, &w, false);
        /* getopt_long would take "--fla" for --flag and "--time" for --timeout. */
        make_argv(&w, "--fla", NULL);
        expect_error("unknown option '--fla'", &c, &w, false);
        make_argv(&w, "--time=5", NULL);
        expect_error("unknown option '--time'", &c, &w, false);
        make_argv(&w, "-fz", NULL);
        expect_error("unknown option '-z'", &c, &w, false);
        make_argv(&w, "--name", NULL);
        expect_error("option --name needs a value", &c, &w, false);
        make_argv(&w, "-f", "-e", NULL);
        expect_error("option --word needs a value", &c, &w, false);
        make_argv(&w, "--flag=yes", NULL);
        expect_error("option --flag takes no value", &c, &w, false);
        make_argv(&w, "--json=1", NULL);
        expect_error("option --json takes no value", &c, &w, false);
        make_argv(&w, "--count", "11", NULL);
        expect_error("invalid value '11' for --count (expected a whole number from 0 to 10)", &c, &w, false);
        make_argv(&w, "--timeout=-1", NULL);
        expect_error("invalid value '-1' for --timeout", &c, &w, false);
        make_argv(&w, "--word", "bad", NULL);
        expect_error("invalid word 'bad'", &c, &w, false);
        /* Only the first error is reported. */
        make_argv(&w, "--bogus", "--other", NULL);
        expect_error("'--bogus'", &c, &w, false);
        ck_assert_ptr_null(strstr(c.err, "--other"));
}
END_TEST

START_TEST(test_no_args)
{
        words w;
        args a;
        cli_parsed p;
        captured c;
        make_argv(&w, "-f", NULL);
        ck_assert_int_eq(parse(&no_args_cmd, &w, &a, &p, &c), 0);
        ck_assert(a.flag);
        make_argv(&w, "-f", "stray", "--json", NULL);
        ck_assert_int_eq(parse(&no_args_cmd, &w, &a, &p, &c), -EINVAL);
        ck_assert_ptr_nonnull(strstr(c.err, "smolvm: unexpected argument 'stray'\nhint: usage: smolvm test [OPTIONS]\n"));
        json_t *o = json_loads(c.out, 0, NULL);
        ck_assert_msg(o, "no envelope: '%s'", c.out);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "error"), "code")), "invalid_argument");
        json_decref(o);
}
END_TEST

START_TEST(test_error_envelope)
{
        words w;
        captured c;
        /* --json after the error still asks for the envelope. */
        make_argv(&w, "--count", "x", "--json", NULL);
        expect_error("invalid value 'x' for --count", &c, &w, true);
        json_error_t jerr;
        json_t *o = json_loads(c.out, 0, &jerr);
        ck_assert_msg(o, "not one JSON document: '%s'", c.out);
        ck_assert(json_is_false(json_object_get(o, "ok")));
        ck_assert_str_eq(json_string_value(json_object_get(o, "command")), "test");
        ck_assert_int_eq(json_integer_value(json_object_get(o, "exit_code")), CLI_EXIT_ERROR);
        json_t *e = json_object_get(o, "error");
        ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "invalid_argument");
        ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "message")), "'x' for --count"));
        ck_assert_str_eq(json_string_value(json_object_get(e, "recovery")),
                         "run 'smolvm test --help' for the options");
        json_decref(o);
}
END_TEST

START_TEST(test_help_from_table)
{
        words w;
        args a;
        cli_parsed p;
        captured c;
        make_argv(&w, "-f", "--help", "--bogus", NULL);
        ck_assert_int_eq(parse(&permute_cmd, &w, &a, &p, &c), 1);
        ck_assert_str_eq(c.err, "");
        const char *want[] = {
                "Usage: smolvm test [OPTIONS] ARG...\n\nAbout the test command.\n\nOptions:\n",
                "\n  -f, --flag         a flag\n",
                "\n  --name NAME        a name\n",
                "\n  -c, --count N      a count\n",
                "\n  -e, --word W       a word\n                     with a second help line\n",
                "\n  --timeout SEC      seconds\n",
                "\n  --a-very-long-option-name WITH-A-LONG-VALUE\n                     help on the next line\n",
                "\n  --json             print the result as a JSON envelope (docs/cli.md)\n",
                "\n  -h, --help         show this help\n\nThe footer.\n",
        };
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
                ck_assert_msg(strstr(c.out, want[i]), "help lacks [%s] in [%s]", want[i], c.out);
}
END_TEST

/* ---- families ---- */

static int verb_calls;
static char verb_args[256];

static int verb_fn(int argc, char **argv)
{
        verb_calls++;
        verb_args[0] = '\0';
        for (int i = 0; i < argc; i++)
                snprintf(verb_args + strlen(verb_args), sizeof(verb_args) - strlen(verb_args), "%s%s", i ? " " : "",
                         argv[i]);
        return 7;
}

static const cli_verb verbs[] = {
        { "go", verb_fn, "go somewhere" },
        { "alias", verb_fn, NULL },
        { NULL, NULL, NULL },
};
static const cli_family family = { .name = "fam", .about = "A family.\n", .verbs = verbs };

static int run_family(words *w, captured *c)
{
        capture_begin(c);
        int r = cli_run_family(&family, w->argc, w->argv);
        capture_end(c);
        return r;
}

START_TEST(test_family)
{
        words w;
        captured c;
        verb_calls = 0;
        make_argv(&w, "go", "x", "--json", NULL);
        ck_assert_int_eq(run_family(&w, &c), 7);
        ck_assert_str_eq(verb_args, "go x --json");
        make_argv(&w, "help", "alias", NULL);
        ck_assert_int_eq(run_family(&w, &c), 7);
        ck_assert_str_eq(verb_args, "alias --help");
        ck_assert_int_eq(verb_calls, 2);

        make_argv(&w, "--help", NULL);
        ck_assert_int_eq(run_family(&w, &c), 0);
        ck_assert_ptr_nonnull(strstr(c.out, "Usage: smolvm fam COMMAND"));
        ck_assert_ptr_nonnull(strstr(c.out, "  go         go somewhere\n"));
        ck_assert_ptr_null(strstr(c.out, "alias")); /* aliases are not listed */

        make_argv(&w, "nope", "--json", NULL);
        ck_assert_int_eq(run_family(&w, &c), CLI_EXIT_ERROR);
        ck_assert_ptr_nonnull(strstr(c.err, "unknown fam command 'nope' (go)"));
        json_t *o = json_loads(c.out, 0, NULL);
        ck_assert_msg(o, "no envelope: '%s'", c.out);
        ck_assert_str_eq(json_string_value(json_object_get(o, "command")), "fam nope");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "error"), "code")), "invalid_argument");
        json_decref(o);

        make_argv(&w, NULL);
        ck_assert_int_eq(run_family(&w, &c), CLI_EXIT_ERROR);
        ck_assert_str_eq(c.out, "");
        ck_assert_ptr_nonnull(strstr(c.err, "Usage: smolvm fam"));
        ck_assert_int_eq(verb_calls, 2);
}
END_TEST

static Suite *cli_opts_suite(void)
{
        Suite *s = suite_create("cli_opts");
        TCase *tc = tcase_create("walker");
        tcase_add_test(tc, test_long_forms);
        tcase_add_test(tc, test_short_clusters);
        tcase_add_test(tc, test_permute_and_dashdash);
        tcase_add_test(tc, test_permute_ignores_posixly_correct);
        tcase_add_test(tc, test_in_order);
        tcase_add_test(tc, test_errors);
        tcase_add_test(tc, test_no_args);
        tcase_add_test(tc, test_error_envelope);
        tcase_add_test(tc, test_help_from_table);
        tcase_add_test(tc, test_family);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(cli_opts_suite());
}
