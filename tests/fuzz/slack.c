/*  tests/fuzz/slack.c: libFuzzer target for the reader of Slack's interaction callbacks (the
    form body whose `payload` field holds the JSON): a click that parses names a request and
    an action approve or deny; anything else fails with a message. */
#include "approver/payload.h"
#include "tests/fuzz/common.h"
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    click_t click;
    char err[256] = "";
    if (payload_parse ((const char *) data, size, &click, err, sizeof err) == 0) {
        if (click.request_id <= 0 || (strcmp (click.action_id, "approve") != 0
                                      && strcmp (click.action_id, "deny") != 0))
            abort ();
    }
    else if (!err[0])
        abort ();
    size_t n = 0;
    free (payload_form_field ((const char *) data, size, "payload", &n));
    return 0;
}
