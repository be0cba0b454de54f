/* SPDX-License-Identifier: Apache-2.0 */
#include "cli_opts.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* getopt_long's value for an option without a short letter: LONG_VAL + its index. */
#define LONG_VAL 256
/* What getopt returns for a positional argument when optstring starts with '-'. */
#define POSITIONAL 1
/* The widest option column of --help; longer options put their help on the next line. */
#define HELP_COL_MAX 28

typedef struct flat_opt {
        const cli_opt *o;
        size_t offset; /* of the field in the whole struct (an include adds its own) */
} flat_opt;

/* A command's table with its fragments flattened, as getopt_long wants it. */
typedef struct opt_set {
        flat_opt v[CLI_MAX_OPTS];
        size_t n;
        struct option lo[CLI_MAX_OPTS + 1];
        char shorts[2 + 2 * CLI_MAX_OPTS + 1];
        int json_val;
} opt_set;

static void flatten(const cli_opt *t, size_t base, opt_set *s)
{
        for (; t && t->kind != CLI_OPT_END; t++) {
                if (t->kind == CLI_OPT_INCLUDE) {
                        flatten(t->include, base + t->offset, s);
                        continue;
                }
                /* A wrong table is a programmer error, caught by any run of the command. */
                assert(s->n + 2 < CLI_MAX_OPTS);
                assert(t->name && strcmp(t->name, "json") != 0 && strcmp(t->name, "help") != 0);
                assert(!t->short_name || (isalnum((unsigned char)t->short_name) && t->short_name != 'h'));
                assert(t->kind != CLI_OPT_UINT || (unsigned long long)t->max * (t->scale ? t->scale : 1) <= UINT_MAX);
                assert(t->kind != CLI_OPT_CALL || t->parse);
                for (size_t i = 0; i < s->n; i++)
                        assert(strcmp(s->v[i].o->name, t->name) != 0 &&
                               (!t->short_name || s->v[i].o->short_name != t->short_name));
                if (s->n + 2 >= CLI_MAX_OPTS)
                        return;
                s->v[s->n++] = (flat_opt){ t, base + t->offset };
        }
}

static void build(const cli_cmd *cmd, opt_set *s)
{
        char *w = s->shorts;
        /* '-': positionals come back in order (POSITIONAL), whatever POSIXLY_CORRECT
         * says and without getopt permuting argv under us; ':': a missing value is
         * told apart from an unknown option. */
        *w++ = '-';
        *w++ = ':';
        flatten(cmd->opts, 0, s);
        for (size_t i = 0; i < s->n; i++) {
                const cli_opt *o = s->v[i].o;
                s->lo[i] = (struct option){ o->name, o->metavar ? required_argument : no_argument, NULL,
                                            o->short_name ? o->short_name : LONG_VAL + (int)i };
                if (o->short_name) {
                        *w++ = o->short_name;
                        if (o->metavar)
                                *w++ = ':';
                }
        }
        s->json_val = LONG_VAL + (int)s->n;
        s->lo[s->n] = (struct option){ "json", no_argument, NULL, s->json_val };
        s->lo[s->n + 1] = (struct option){ "help", no_argument, NULL, 'h' };
        s->lo[s->n + 2] = (struct option){ 0 };
        *w++ = 'h';
        *w = '\0';
}

static const char *name_of_val(const opt_set *s, int c)
{
        if (c == s->json_val)
                return "json";
        if (c == 'h')
                return "help";
        if (c >= LONG_VAL && c < LONG_VAL + (int)s->n)
                return s->v[c - LONG_VAL].o->name;
        for (size_t i = 0; i < s->n; i++)
                if (s->v[i].o->short_name == c)
                        return s->v[i].o->name;
        return NULL;
}

static const flat_opt *opt_of_val(const opt_set *s, int c)
{
        if (c >= LONG_VAL && c < LONG_VAL + (int)s->n)
                return &s->v[c - LONG_VAL];
        for (size_t i = 0; i < s->n; i++)
                if (s->v[i].o->short_name == c)
                        return &s->v[i];
        return NULL;
}

int cli_parse_uint(const char *flag, const char *s, unsigned long min, unsigned long max, unsigned long *ret)
{
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (!*s || *s == '-' || *s == '+' || *end || errno || v < min || v > max) {
                cli_error("invalid value '%s' for %s (expected a whole number from %lu to %lu)", s, flag, min, max);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

static int store(const flat_opt *f, const char *arg, void *args)
{
        void *field = (char *)args + f->offset;
        const cli_opt *o = f->o;
        switch (o->kind) {
        case CLI_OPT_BOOL:
                *(bool *)field = true;
                return 0;
        case CLI_OPT_STRING:
                *(const char **)field = arg;
                return 0;
        case CLI_OPT_UINT: {
                char flag[80];
                unsigned long v;
                snprintf(flag, sizeof(flag), "--%s", o->name);
                int r = cli_parse_uint(flag, arg, o->min, o->max, &v);
                if (r < 0)
                        return r;
                *(unsigned *)field = (unsigned)(v * (o->scale ? o->scale : 1));
                return 0;
        }
        case CLI_OPT_CALL:
                return o->parse(arg, field);
        case CLI_OPT_END:
        case CLI_OPT_INCLUDE:
        default:
                return -EINVAL;
        }
}

/* True if the argument "--NAME" or "--NAME=..." spells name in full: getopt_long
 * also takes unambiguous abbreviations, which a later option could make
 * ambiguous (or silently different). */
static bool spelled_out(const char *arg, const char *name)
{
        size_t n = strlen(name);
        return strncmp(arg + 2, name, n) == 0 && (arg[2 + n] == '\0' || arg[2 + n] == '=');
}

static void option_error(const cli_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void option_error(const cli_cmd *cmd, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        cli_verror(fmt, ap);
        va_end(ap);
        cli_hint("run '%s %s --help' for the options", cli_program(), cmd->name);
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, void *args, cli_parsed *ret)
{
        opt_set s = { 0 };
        build(cmd, &s);
        *ret = (cli_parsed){ .cmd = cmd, .pos = argv + 1 };
        int n_pos = 0, rest = argc;
        bool failed = false;

        optind = 0; /* glibc: a full re-initialisation (a family's parser may have run) */
        opterr = 0;
        for (;;) {
                /* The argument getopt works on in this call (a cluster "-ie" for as
                 * long as it lasts): with '-', getopt never moves argv around. */
                int at = optind ? optind : 1, idx = -1;
                int c = getopt_long(argc, argv, s.shorts, s.lo, &idx);
                if (c == -1) {
                        ret->dashdash = optind == at + 1 && !strcmp(argv[at], "--");
                        rest = optind;
                        break;
                }
                if (c == POSITIONAL) {
                        if (cmd->in_order) {
                                rest = optind - 1;
                                break;
                        }
                        /* Only slots getopt is done with are written (below at). */
                        argv[1 + n_pos++] = optarg;
                        continue;
                }
                const char *arg = argv[at];
                bool is_long = arg[0] == '-' && arg[1] == '-';
                if (idx >= 0 && !spelled_out(arg, s.lo[idx].name)) {
                        if (!failed)
                                option_error(cmd, "unknown option '%.*s'", (int)strcspn(arg, "="), arg);
                        failed = true;
                        continue;
                }
                if (c == s.json_val) {
                        ret->json = true; /* also after an error: its envelope is wanted */
                        continue;
                }
                if (failed)
                        continue;
                if (c == 'h') {
                        cli_print_help(cmd, stdout);
                        return 1;
                }
                if (c == ':') {
                        option_error(cmd, "option --%s needs a value", name_of_val(&s, optopt));
                        failed = true;
                } else if (c == '?') {
                        const char *known = is_long && optopt ? name_of_val(&s, optopt) : NULL;
                        if (known)
                                option_error(cmd, "option --%s takes no value", known);
                        else if (is_long)
                                option_error(cmd, "unknown option '%.*s'", (int)strcspn(arg, "="), arg);
                        else
                                option_error(cmd, "unknown option '-%c'", optopt);
                        failed = true;
                } else {
                        const flat_opt *f = opt_of_val(&s, c);
                        /* The parsers print their own errors. */
                        failed = !f || store(f, optarg, args) < 0;
                }
        }
        for (int i = rest; i < argc; i++)
                argv[1 + n_pos++] = argv[i];
        argv[1 + n_pos] = NULL; /* a guest command line is passed on as it is */
        ret->n_pos = n_pos;
        if (failed) {
                cli_usage_fail(cmd->name, ret->json);
                return -EINVAL;
        }
        if (cmd->no_args && n_pos > 0) {
                cli_usage(ret, "unexpected argument '%s'", ret->pos[0]);
                return -EINVAL;
        }
        return 0;
}

int cli_usage(const cli_parsed *p, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        cli_verror(fmt, ap);
        va_end(ap);
        cli_hint("usage: %s %s %s", cli_program(), p->cmd->name, p->cmd->synopsis);
        return cli_usage_fail(p->cmd->name, p->json);
}

/* ---- --help ---- */

static void opt_left(char *buf, size_t size, char short_name, const char *name, const char *metavar)
{
        char sh[8] = "";
        if (short_name)
                snprintf(sh, sizeof(sh), "-%c, ", short_name);
        snprintf(buf, size, "  %s--%s%s%s", sh, name, metavar ? " " : "", metavar ? metavar : "");
}

/* "  -e, --env K=V    help", the help's further lines under its first. */
static void print_opt(FILE *f, const char *left, const char *help, int col)
{
        int n = (int)strlen(left);
        fputs(left, f);
        if (n + 2 > col) {
                fputc('\n', f);
                n = 0;
        }
        for (const char *h = help ? help : ""; h; n = 0) {
                const char *nl = strchr(h, '\n');
                int len = nl ? (int)(nl - h) : (int)strlen(h);
                fprintf(f, "%*s%.*s\n", col - n, "", len, h);
                h = nl ? nl + 1 : NULL;
        }
}

void cli_print_help(const cli_cmd *cmd, FILE *f)
{
        opt_set s = { 0 };
        char left[128];
        int col = (int)strlen("  -h, --help");
        flatten(cmd->opts, 0, &s);
        for (size_t i = 0; i < s.n; i++) {
                opt_left(left, sizeof(left), s.v[i].o->short_name, s.v[i].o->name, s.v[i].o->metavar);
                int n = (int)strlen(left);
                if (n <= HELP_COL_MAX && n > col)
                        col = n;
        }
        col += 2;
        fprintf(f, "Usage: %s %s %s\n", cli_program(), cmd->name, cmd->synopsis);
        if (cmd->about)
                fprintf(f, "\n%s", cmd->about);
        fputs("\nOptions:\n", f);
        for (size_t i = 0; i < s.n; i++) {
                opt_left(left, sizeof(left), s.v[i].o->short_name, s.v[i].o->name, s.v[i].o->metavar);
                print_opt(f, left, s.v[i].o->help, col);
        }
        opt_left(left, sizeof(left), 0, "json", NULL);
        print_opt(f, left, cmd->json_help ? cmd->json_help : "print the result as a JSON envelope (docs/cli.md)",
                  col);
        opt_left(left, sizeof(left), 'h', "help", NULL);
        print_opt(f, left, "show this help", col);
        if (cmd->footer)
                fprintf(f, "\n%s", cmd->footer);
}

/* ---- command families ---- */

static const cli_verb *find_verb(const cli_family *fam, const char *name)
{
        for (const cli_verb *v = fam->verbs; v->name; v++)
                if (!strcmp(v->name, name))
                        return v;
        return NULL;
}

void cli_print_family_help(const cli_family *fam, FILE *f)
{
        const char *sep = fam->name ? " " : "", *fname = fam->name ? fam->name : "";
        fprintf(f, "Usage: %s%s%s %s\n", cli_program(), sep, fname,
                fam->name ? "COMMAND [OPTIONS] [ARGS...]" : "[--help] [--version] COMMAND [ARGS...]");
        if (fam->about)
                fprintf(f, "\n%s", fam->about);
        fputs("\nCommands:\n", f);
        for (const cli_verb *v = fam->verbs; v->name; v++)
                if (v->help)
                        fprintf(f, "  %-10s %s\n", v->name, v->help);
        fprintf(f, "\nRun '%s%s%s COMMAND --help' for a command's options.\n", cli_program(), sep, fname);
        if (fam->footer)
                fprintf(f, "\n%s", fam->footer);
}

int cli_run_family(const cli_family *fam, int argc, char **argv)
{
        if (argc < 2) {
                cli_print_family_help(fam, stderr);
                return CLI_EXIT_ERROR;
        }
        const char *name = argv[1];
        if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
                /* "help run" is "run --help" */
                const cli_verb *v = !strcmp(name, "help") && argc > 2 ? find_verb(fam, argv[2]) : NULL;
                if (v) {
                        char *sub[] = { argv[2], (char *)"--help", NULL };
                        return v->fn(2, sub);
                }
                cli_print_family_help(fam, stdout);
                return 0;
        }
        const cli_verb *v = find_verb(fam, name);
        if (v)
                return v->fn(argc - 1, argv + 1);

        char command[128], names[256] = "", msg[512], recovery[160];
        snprintf(command, sizeof(command), "%s%s%s", fam->name ? fam->name : "", fam->name ? " " : "", name);
        for (const cli_verb *w = fam->verbs; fam->name && w->name; w++)
                if (w->help)
                        snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", names[0] ? ", " : "",
                                 w->name);
        if (name[0] == '-')
                snprintf(msg, sizeof(msg), "unknown option '%s'", name);
        else if (fam->name)
                snprintf(msg, sizeof(msg), "unknown %s command '%s' (%s)", fam->name, name, names);
        else
                snprintf(msg, sizeof(msg), "unknown command '%s'", name);
        snprintf(recovery, sizeof(recovery), "run '%s%s%s --help' for the list of commands", cli_program(),
                 fam->name ? " " : "", fam->name ? fam->name : "");
        cli_error("%s", msg);
        cli_hint("%s", recovery);
        if (cli_argv_has_json(argc, argv))
                cli_json_error(command, CLI_EXIT_ERROR, "invalid_argument", msg, recovery, NULL);
        return CLI_EXIT_ERROR;
}
