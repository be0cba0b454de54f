/* SPDX-License-Identifier: Apache-2.0 */
/* Command lines as data (libsmolvm-cli): each command declares its options in a
 * table (long name, short letter, argument, help, the field it sets or a parse
 * callback) and cli_parse() walks it with getopt_long, once for every command.
 * Tables include shared fragments (the VM's shape, an exec's options) at an
 * offset, so run, exec and create declare those options once. --help is printed
 * from the same table. Unit tested in tests/unit/test_cli_opts.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cli_out.h"

typedef enum cli_opt_kind {
        CLI_OPT_END = 0, /* ends a table */
        CLI_OPT_BOOL,    /* no argument: sets a bool field to true */
        CLI_OPT_STRING,  /* sets a const char * field to the argument (it points into argv) */
        CLI_OPT_UINT,    /* an unsigned field: the argument, a whole number in [min, max], times scale */
        CLI_OPT_CALL,    /* parse(argument or NULL, field): checks and stores; prints its own error */
        CLI_OPT_INCLUDE, /* the entries of another table, whose fields are at offset */
} cli_opt_kind;

typedef struct cli_opt cli_opt;
struct cli_opt {
        cli_opt_kind kind;
        const char *name;    /* the long name, without "--" */
        char short_name;     /* a letter, or 0 */
        const char *metavar; /* the argument in --help ("SEC"); NULL: the option takes none */
        const char *help;    /* lines separated by '\n' */
        size_t offset;       /* of the field, from the start of the struct cli_parse() fills */
        unsigned min, max, scale;                  /* CLI_OPT_UINT */
        int (*parse)(const char *arg, void *field); /* CLI_OPT_CALL: 0 or a negative errno */
        const cli_opt *include;                    /* CLI_OPT_INCLUDE */
};

/* The offset of field f of struct T, which must have type `type` (a compile
 * error otherwise: a table cannot write a bool into a string). */
#define CLI_FIELD(T, f, type) (offsetof(T, f) + 0 * sizeof(_Generic(((T *)0)->f, type: 0)))

#define CLI_BOOL(T, f, lname, sname, helptext) \
        { .kind = CLI_OPT_BOOL, .name = (lname), .short_name = (sname), .help = (helptext), \
          .offset = CLI_FIELD(T, f, bool) }
#define CLI_STRING(T, f, lname, sname, mv, helptext) \
        { .kind = CLI_OPT_STRING, .name = (lname), .short_name = (sname), .metavar = (mv), .help = (helptext), \
          .offset = CLI_FIELD(T, f, const char *) }
#define CLI_UINT(T, f, lname, sname, mv, lo, hi, sc, helptext) \
        { .kind = CLI_OPT_UINT, .name = (lname), .short_name = (sname), .metavar = (mv), .help = (helptext), \
          .offset = CLI_FIELD(T, f, unsigned), .min = (lo), .max = (hi), .scale = (sc) }
#define CLI_CALL(T, f, lname, sname, mv, fn, helptext) \
        { .kind = CLI_OPT_CALL, .name = (lname), .short_name = (sname), .metavar = (mv), .help = (helptext), \
          .offset = offsetof(T, f), .parse = (fn) }
#define CLI_INCLUDE(T, f, table) { .kind = CLI_OPT_INCLUDE, .offset = offsetof(T, f), .include = (table) }
#define CLI_END { .kind = CLI_OPT_END }

/* Most options a command may have, fragments included (--json and --help too). */
#define CLI_MAX_OPTS 48

typedef struct cli_cmd {
        const char *name;      /* "run", "image ls": messages, --help, the envelope's command */
        const char *synopsis;  /* after "Usage: PROG NAME ", e.g. "[OPTIONS] [--] CMD [ARG...]" */
        const char *about;     /* what it does: --help prints it after the usage line */
        const cli_opt *opts;   /* NULL: none but --json and --help, which every command has */
        const char *json_help; /* --json's help ('\n' between lines); NULL: a generic line */
        const char *footer;    /* printed after the options (exit status...), or NULL */
        bool in_order;         /* the first positional argument ends the options: run and
                                * exec, whose command line after it is the guest's */
        bool no_args;          /* options only: a positional argument is a usage error */
} cli_cmd;

typedef struct cli_parsed {
        const cli_cmd *cmd;
        bool json;     /* --json */
        bool dashdash; /* the options ended at "--" (in_order: before any positional) */
        char **pos;    /* the positional arguments, in order, NULL-terminated (argv's
                        * pointers, moved to argv[1..] as getopt's permutation does) */
        int n_pos;
} cli_parsed;

/* Parse argv[1..] (argv[0]: the command's name) by cmd's table into the struct
 * at args, and the rest into *ret. "--opt=value" and "--opt value", combined
 * short flags ("-ie K=V"), "--" ends the options; long names must be given in
 * full (an abbreviation would break when an option is added). Returns 0; 1 when
 * --help was printed (exit 0); -EINVAL when the command line is wrong: then the
 * error is on stderr and, if --json was given (also after the error), the
 * envelope on stdout (exit CLI_EXIT_ERROR). */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, void *args, cli_parsed *ret);
/* The exit code for cli_parse()'s non-zero result. */
static inline int cli_parse_exit(int r)
{
        return r > 0 ? 0 : CLI_EXIT_ERROR;
}
/* A usage error about the positional arguments: "PROG: message", the usage line
 * as a hint, the envelope with p->json. Returns CLI_EXIT_ERROR. */
int cli_usage(const cli_parsed *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* cmd's --help: usage, about, the options from its table, footer. */
void cli_print_help(const cli_cmd *cmd, FILE *f);

/* Parse a decimal unsigned integer in [min, max]; prints an error naming the flag
 * and the value on failure. Returns 0 or -EINVAL. */
int cli_parse_uint(const char *flag, const char *s, unsigned long min, unsigned long max, unsigned long *ret);

/* ---- command families: "smolvm COMMAND", "smolvm image COMMAND" ---- */

typedef struct cli_verb {
        const char *name;
        int (*fn)(int argc, char **argv); /* argv[0] is the verb; returns the exit code */
        const char *help;                 /* one line for the list; NULL: an alias, not listed */
} cli_verb;

typedef struct cli_family {
        const char *name;     /* "image"; NULL for the program itself */
        const char *about;    /* printed after the usage line */
        const char *footer;   /* printed after the list of commands, or NULL */
        const cli_verb *verbs; /* ends with a NULL name */
} cli_family;

/* Run the verb argv[1] names with argv[1..]; "help VERB" is "VERB --help"; -h,
 * --help, help: the family's help. No verb: the help on stderr and a usage
 * error; an unknown one: a usage error (the envelope with --json), exit
 * CLI_EXIT_ERROR. */
int cli_run_family(const cli_family *fam, int argc, char **argv);
void cli_print_family_help(const cli_family *fam, FILE *f);
