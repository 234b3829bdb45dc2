/*  client/args.h: a subcommand as the command line knows it, and the parsing of its options
    (client/args.c). The table of subcommands is client/main.c's. */
#ifndef RG_ARGS_H
#define RG_ARGS_H
#include "client/cli.h"
#include <stddef.h>

typedef struct {
    const char *name;
    int (*fn) (cli_t *);
    const char *options;        //  the long options it takes, space-separated
    const char *usage;          //  its synopsis, after "replgate "
    const char *help;           //  what it does and what its own options mean (--help)
    const char *exits;          //  the exit codes it returns, space-separated ("0 2 7 9")
} command_t;

//  Parses argv (argv[0] is the command's name) into cli, checking every value: an option
//  the command does not take (one line, with the nearest it does take), a value that is
//  missing or not a number in range, options that contradict each other. 0; 1 if --help
//  was asked for; -1 after printing one line on stderr (the caller exits EXIT_USAGE).
int args_parse (cli_t *cli, const command_t *cmd, int argc, char *argv[]);

//  The word of the space-separated list `words` nearest to `word` by edit distance (a
//  swap of two neighbours counts as one edit), if it is near enough to be a typo of it:
//  written into out (size bytes) and 0; -1 if none is.
int args_nearest (const char *word, const char *words, char *out, size_t size);

int args_test (void);
#endif
