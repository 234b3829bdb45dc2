/*  tests/fuzz/egress.c: libFuzzer target for what the worker's back reads from a run's proxy
    (worker/egress.c: its report lines) and from its front (worker/grant.c: the grant text).
    The proxy parses a sandbox's HTTP, so the back trusts its lines no more than the front's
    messages: an entry it accepts must pass the broker's own checks of a result. */
#include "worker/egress.h"
#include "worker/grant.h"
#include "common/egress_check.h"
#include "tests/fuzz/common.h"
#include <stdlib.h>
#include <string.h>

static void
s_report_line (const char *line)
{
    json_t *entry = egress_entry (line);
    if (!entry)
        return;
    json_t *list = json_pack ("[O]", entry);
    char why [256];
    if (!list || egress_check_entries (list, why, sizeof why) != NULL)
        abort ();
    json_decref (list);
    json_decref (entry);
}

static void
s_grant (char *text, size_t size)
{
    bool valid = grant_valid (text, size);
    const char *allow [GRANT_MAX_ALLOW], *methods [GRANT_MAX_METHODS];
    size_t na = 0, nm = 0;
    if (memchr (text, 0, size))
        return;
    if ((grant_split (text, allow, &na, methods, &nm) == 0) != valid)
        abort ();
    for (size_t i = 0; valid && i < na + nm; i++) {
        const char *item = i < na ? allow [i] : methods [i - na];
        if (item < text || item >= text + size || strchr (item, ' ') || strchr (item, '\n'))
            abort ();
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *text = malloc (size + 1);
    if (!text)
        return 0;
    memcpy (text, data, size);
    text [size] = 0;
    s_report_line (text);
    s_grant (text, size);
    free (text);
    return 0;
}
