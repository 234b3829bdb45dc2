/*  approver/slack.h: the Slack messages the approver sends, as Block Kit JSON (jansson).
    Everything an agent controls (code, reason, session, names) is escaped for mrkdwn, so a
    snippet cannot ping a channel, fake a link or close the code block. */
#ifndef RG_SLACK_H
#define RG_SLACK_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SLACK_SECTION_MAX   3000    //  section text limit, in characters
#define SLACK_FIELD_MAX     2000    //  one section field
#define SLACK_HEADER_MAX    150

//  Escapes & < > as &amp; &lt; &gt;; bytes that are not UTF-8 become U+FFFD and control
//  characters other than newline and tab become U+FFFD too. Stops adding characters before
//  the output would exceed max_chars (counted as Slack does, in UTF-16 units) and adds "…"
//  when it cut. Returns a fresh string (caller frees), never NULL.
char *slack_escape (const char *text, size_t size, size_t max_chars);

//  The code as a ``` block whose whole text is at most max_chars: escaped, any run of three
//  backticks inside broken with a zero-width space so it cannot close the fence, cut at a
//  character boundary. Sets *shown and *total (characters of the code) and *hidden_lines.
//  Caller frees.
char *slack_code_block (const char *code, size_t size, size_t max_chars,
                        size_t *shown, size_t *total, size_t *hidden_lines);

//  The request message for `row` (a broker request object, see docs/approvals-protocol.md):
//  {text, blocks}. While the request is pending it carries Approve/Deny buttons in an actions
//  block `approval:<id>:<rev>`; otherwise the buttons give way to the state. `slack_ids` maps
//  principals to Slack user ids for "<@U..>" mentions (may be NULL). now_ms renders time left.
json_t *slack_message (json_t *row, json_t *slack_ids, int64_t now_ms, int rev);

//  A short new message telling the channel how a request ended (used when no response_url
//  can update the original, e.g. it expired without a click).
json_t *slack_followup (json_t *row, json_t *slack_ids);

//  An ephemeral reply for the clicking user via response_url; never replaces the original.
json_t *slack_ephemeral (const char *text);

//  The one-line state summary ("Approved by <@U1> (1 of 2)", "Denied by ...: reason", ...);
//  caller frees. Exposed for the flow's logs and the self-test.
char *slack_status_line (json_t *row, json_t *slack_ids);

int slack_test (void);
#endif
