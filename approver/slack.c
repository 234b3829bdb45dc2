/*  approver/slack.c: Block Kit messages for approval requests (reference/slack.md section 2).
    Limits enforced here, so Slack never answers invalid_blocks: section text <= 3000
    characters, fields <= 2000, header <= 150, button text <= 75, confirm text <= 300. */
#include "approver/slack.h"
#include "common/buf.h"
#include "common/check.h"
#include "common/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------------------
//  Text is built in a buf_t. Out of memory in a message builder there is nothing sensible
//  to do but stop.

#define s_put(b, s, n)  do { if (buf_append ((b), (s), (n))) abort (); } while (0)
#define s_putf(b, ...)  do { if (buf_appendf ((b), __VA_ARGS__)) abort (); } while (0)

static char *
s_take (buf_t *b)
{
    char *text = buf_take (b);
    if (!text)
        abort ();
    return text;
}

//  --------------------------------------------------------------------------------------
//  Characters: decoding one UTF-8 code point, escaping it.

//  Decodes the code point at s[0..n): returns its byte length (>= 1), sets *cp; an invalid
//  sequence consumes one byte and yields U+FFFD.
static size_t
s_decode (const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len = utf8_decode ((const char *) s, n, cp);
    if (len == 0)
        *cp = 0xFFFD;
    return len ? len : 1;
}

//  Appends the escaped form of cp; returns its width in UTF-16 units (Slack's counting).
static size_t
s_emit (buf_t *b, uint32_t cp)
{
    if (cp == '&') { s_put (b, "&amp;", 5); return 5; }
    if (cp == '<') { s_put (b, "&lt;", 4); return 4; }
    if (cp == '>') { s_put (b, "&gt;", 4); return 4; }
    if ((cp < 0x20 && cp != '\n' && cp != '\t') || cp == 0x7F)
        cp = 0xFFFD;
    char out[4];
    s_put (b, out, utf8_encode (cp, out));
    return cp >= 0x10000 ? 2 : 1;
}

static size_t
s_width (uint32_t cp)
{
    return cp == '&' ? 5 : cp == '<' || cp == '>' ? 4 : cp >= 0x10000 ? 2 : 1;
}

char *
slack_escape (const char *text, size_t size, size_t max_chars)
{
    const unsigned char *s = (const unsigned char *) (text ? text : "");
    if (!text)
        size = 0;
    //  First pass: does it all fit? If not, keep room for the "…" that says it was cut.
    size_t need = 0;
    for (size_t i = 0; i < size;) {
        uint32_t cp;
        i += s_decode (s + i, size - i, &cp);
        need += s_width (cp);
    }
    size_t limit = need <= max_chars ? max_chars : (max_chars ? max_chars - 1 : 0);
    buf_t b = { 0 };
    size_t used = 0;
    for (size_t i = 0; i < size;) {
        uint32_t cp;
        size_t len = s_decode (s + i, size - i, &cp);
        if (used + s_width (cp) > limit) {
            if (max_chars)
                s_emit (&b, 0x2026);
            break;
        }
        used += s_emit (&b, cp);
        i += len;
    }
    return s_take (&b);
}

char *
slack_code_block (const char *code, size_t size, size_t max_chars,
                  size_t *shown, size_t *total, size_t *hidden_lines)
{
    buf_t b = { 0 };
    s_put (&b, "```\n", 4);
    size_t budget = max_chars > 8 ? max_chars - 8 : 0;     //  the two fences and newlines
    size_t used = 0, i = 0, ticks = 0;
    const unsigned char *s = (const unsigned char *) (code ? code : "");
    *shown = *total = *hidden_lines = 0;
    bool cut = false;
    while (i < size) {
        uint32_t cp;
        size_t len = s_decode (s + i, size - i, &cp);
        size_t w = s_width (cp) + (cp == '`' && ticks == 2 ? 1 : 0);
        if (!cut && used + w > budget)
            cut = true;
        if (cut) {
            *hidden_lines += cp == '\n';
        } else {
            if (cp == '`' && ticks == 2) {
                s_put (&b, "\xE2\x80\x8B", 3);      //  U+200B breaks the ``` run
                used++;
                ticks = 0;
            }
            ticks = cp == '`' ? ticks + 1 : 0;
            used += s_emit (&b, cp);
            (*shown)++;
        }
        (*total)++;
        i += len;
    }
    //  The last partial line counts as a line too.
    if (cut && size && code[size - 1] != '\n')
        (*hidden_lines)++;
    s_put (&b, "\n```", 4);
    return s_take (&b);
}

//  --------------------------------------------------------------------------------------
//  Reading the request row.

static const char *
s_str (json_t *obj, const char *key)
{
    const char *v = json_string_value (json_object_get (obj, key));
    return v ? v : "";
}

//  A short escaped copy of string member `key` (caller frees).
static char *
s_esc (json_t *obj, const char *key, size_t max)
{
    const char *v = s_str (obj, key);
    return slack_escape (v, strlen (v), max);
}

//  Who made approval `a`, as a mention when the Slack user is known ("<@U1>"), else the
//  principal's escaped name with how it decided ("bob (cli)").
static void
s_put_who (buf_t *b, json_t *a, json_t *slack_ids)
{
    //  The broker records the human as `approver` and the gateway key as `on_behalf_of`.
    const char *who = s_str (a, "approver");
    const char *uid = s_str (a, "slack_user");
    if (!*uid && slack_ids)
        uid = s_str (slack_ids, who);
    if (*uid && strspn (uid, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == strlen (uid)) {
        s_putf (b, "<@%s>", uid);
        return;
    }
    char *name = slack_escape (who, strlen (who), 64);
    s_putf (b, "%s (%s)", name, *s_str (a, "via") ? s_str (a, "via") : "cli");
    free (name);
}

//  "Approved by <@U1>, <@U2> (2 of 2)"; *count set to the number of approvals.
static void
s_put_approvals (buf_t *b, json_t *row, json_t *slack_ids, int *count)
{
    json_t *approvals = json_object_get (row, "approvals");
    int quorum = (int) json_integer_value (json_object_get (json_object_get (row, "review"), "quorum"));
    size_t i;
    json_t *a;
    int listed = 0;
    *count = 0;
    json_array_foreach (approvals, i, a) {
        if (strcmp (s_str (a, "decision"), "approve") != 0 && strcmp (s_str (a, "decision"), "approved") != 0)
            continue;
        (*count)++;
        //  With a quorum of up to 100 the names could outgrow the section the status goes
        //  in: they stop after about 1000 bytes (no fewer than as many Slack characters).
        if (b->len >= 1000)
            continue;
        s_putf (b, "%s", listed++ ? ", " : "Approved by ");
        s_put_who (b, a, slack_ids);
    }
    if (*count > listed)
        s_putf (b, " and %d more", *count - listed);
    if (*count)
        s_putf (b, " (%d of %d)", *count, quorum > 0 ? quorum : *count);
}

//  The deny entry's author and reason: "Denied by <@U1>: reason".
static void
s_put_denied (buf_t *b, json_t *row, json_t *slack_ids)
{
    json_t *approvals = json_object_get (row, "approvals");
    size_t i;
    json_t *a;
    json_array_foreach (approvals, i, a) {
        const char *d = s_str (a, "decision");
        if (strcmp (d, "deny") == 0 || strcmp (d, "denied") == 0) {
            s_putf (b, "%s", ":no_entry: *Denied* by ");
            s_put_who (b, a, slack_ids);
            char *reason = s_esc (a, "reason", 500);
            s_putf (b, ": %s", reason);
            free (reason);
            return;
        }
    }
    char *why = s_esc (row, "decision_message", 500);
    s_putf (b, ":no_entry: *Denied*: %s", *why ? why : "by policy");
    free (why);
}

char *
slack_status_line (json_t *row, json_t *slack_ids)
{
    buf_t b = { 0 };
    const char *state = s_str (row, "state");
    int count = 0;
    int quorum = (int) json_integer_value (json_object_get (json_object_get (row, "review"), "quorum"));
    if (strcmp (state, "denied") == 0)
        s_put_denied (&b, row, slack_ids);
    else if (strcmp (state, "expired") == 0)
        s_putf (&b, ":hourglass: *Expired*: no decision in time (%d of %d approvals); it will not run",
                (int) json_array_size (json_object_get (row, "approvals")), quorum);
    else if (strcmp (state, "cancelled") == 0)
        s_putf (&b, "%s", ":heavy_multiplication_x: *Cancelled* by its owner or an admin; it will not run");
    else {
        buf_t who = { 0 };
        s_put_approvals (&who, row, slack_ids, &count);
        const char *icon = strcmp (state, "pending_approval") == 0 ? ":ballot_box_with_check:"
                         : strcmp (state, "lost") == 0 ? ":warning:" : ":white_check_mark:";
        if (count)
            s_putf (&b, "%s %s", icon, who.data);
        buf_free (&who);
        if (strcmp (state, "queued") == 0 || strcmp (state, "running") == 0)
            s_putf (&b, "%s*%s*", b.len ? ": " : "", strcmp (state, "queued") == 0 ? "queued to run" : "running");
        else if (strcmp (state, "done") == 0) {
            char *outcome = s_esc (row, "outcome", 40);
            s_putf (&b, "%s*ran*: outcome `%s`", b.len ? ": " : "", outcome);
            free (outcome);
            json_t *exit_code = json_object_get (row, "exit_code");
            if (json_is_integer (exit_code))
                s_putf (&b, ", exit code %lld", (long long) json_integer_value (exit_code));
        }
        else if (strcmp (state, "lost") == 0)
            s_putf (&b, "%s*lost*: the worker or broker went away while it ran", b.len ? ": " : "");
    }
    return s_take (&b);
}

//  --------------------------------------------------------------------------------------
//  Blocks.

static json_t *
s_text (const char *type, const char *text)
{
    return json_pack ("{s:s, s:s}", "type", type, "text", text);
}

static json_t *
s_section (const char *mrkdwn)
{
    return json_pack ("{s:s, s:o}", "type", "section", "text", s_text ("mrkdwn", mrkdwn));
}

static json_t *
s_context (const char *mrkdwn)
{
    return json_pack ("{s:s, s:[o]}", "type", "context", "elements", s_text ("mrkdwn", mrkdwn));
}

static json_t *
s_button (int64_t id, bool approve, int quorum)
{
    char value[32], text[300];
    snprintf (value, sizeof value, "%lld", (long long) id);
    if (approve)
        snprintf (text, sizeof text, "Approve request %lld? It runs once %d approver%s agreed; "
                  "your approval is recorded under your name.", (long long) id, quorum, quorum == 1 ? " has" : "s have");
    else
        snprintf (text, sizeof text, "Deny request %lld? It will not run. The reason recorded is "
                  "\"denied from Slack by\" you, with your Slack user id.", (long long) id);
    json_t *confirm = json_pack ("{s:o, s:o, s:o, s:o}",
        "title", s_text ("plain_text", approve ? "Approve this snippet?" : "Deny this snippet?"),
        "text", s_text ("plain_text", text),
        "confirm", s_text ("plain_text", approve ? "Approve" : "Deny"),
        "deny", s_text ("plain_text", "Cancel"));
    if (!approve)
        json_object_set_new (confirm, "style", json_string ("danger"));
    return json_pack ("{s:s, s:s, s:o, s:s, s:s, s:o}", "type", "button",
        "action_id", approve ? "approve" : "deny",
        "text", s_text ("plain_text", approve ? "Approve" : "Deny"),
        "value", value, "style", approve ? "primary" : "danger", "confirm", confirm);
}

//  Agent, session, rule, approvals, expiry as section fields.
static json_t *
s_fields (json_t *row, int64_t now_ms)
{
    json_t *review = json_object_get (row, "review");
    char *who = s_esc (row, "principal", 200), *session = s_esc (row, "session", 200);
    char *lang = s_esc (row, "lang", 20), *rule = s_esc (row, "rule", 200);
    buf_t f[5] = { { 0 } };
    s_putf (&f[0], "*Agent*\n%s", who);
    s_putf (&f[1], "*Session*\n%s (%s)", session, lang);
    s_putf (&f[2], "*Rule*\n%s", *rule ? rule : "(none)");
    s_putf (&f[3], "*Approvals needed*\n%lld", (long long) json_integer_value (json_object_get (review, "quorum")));
    int64_t expires = time_parse_iso8601 (json_string_value (json_object_get (review, "expires_at")));
    if (expires > 0) {
        int64_t left_s = (expires - now_ms) / 1000;
        char at[32];
        time_iso8601 (expires, at, sizeof at);
        at[19] = 0;
        s_putf (&f[4], "*Expires*\n%s%lld min %lld s (%s UTC)", left_s < 0 ? "-" : "in ",
                (long long) (llabs (left_s) / 60), (long long) (llabs (left_s) % 60), at + 11);
    }
    else
        s_putf (&f[4], "%s", "*Expires*\nunknown");
    json_t *fields = json_array ();
    for (int i = 0; i < 5; i++) {
        json_array_append_new (fields, s_text ("mrkdwn", f[i].data));
        buf_free (&f[i]);
    }
    free (who); free (session); free (lang); free (rule);
    return json_pack ("{s:s, s:o}", "type", "section", "fields", fields);
}

//  Appends the strings of list as `code` spans joined with ", " while b stays under about
//  budget bytes, then "and N more". Each span is escaped and cannot hold a backtick (the
//  policy's grant never does), so no entry can close its span or turn into markup.
static void
s_put_spans (buf_t *b, json_t *list, size_t budget)
{
    size_t i, listed = 0;
    json_t *item;
    json_array_foreach (list, i, item) {
        const char *text = json_string_value (item);
        if (b->len >= budget)
            continue;
        char *shown = text && !strchr (text, '`') ? slack_escape (text, strlen (text), 300) : NULL;
        s_putf (b, "%s`%s`", listed++ ? ", " : "", shown ? shown : "?");
        free (shown);
    }
    if (json_array_size (list) > listed)
        s_putf (b, " and %zu more", json_array_size (list) - listed);
}

//  "Network: `files.example.com:443`, `*.internal.example:80` (methods `GET`)": what the
//  rule grants the run if approved (issue 15), from the request's limits; nothing without.
static void
s_add_network (json_t *blocks, json_t *row)
{
    json_t *network = json_object_get (json_object_get (row, "limits"), "network");
    json_t *allow = json_object_get (network, "allow"), *methods = json_object_get (network, "methods");
    if (!json_is_array (allow))
        return;
    buf_t b = { 0 };
    s_putf (&b, "%s", "*Network*: ");
    s_put_spans (&b, allow, 2400);          //  64 entries of 260 would not fit a section
    if (json_is_array (methods)) {
        s_putf (&b, "%s", " (methods ");
        s_put_spans (&b, methods, 2800);
        s_putf (&b, "%s", ")");
    }
    else
        s_putf (&b, "%s", " (any method)");
    json_array_append_new (blocks, s_section (b.data));
    buf_free (&b);
}

//  The code section and the context line under it (truncation note, sha256 prefix).
static void
s_add_code (json_t *blocks, json_t *row)
{
    const char *code = s_str (row, "code");
    size_t shown, total, hidden_lines;
    char *block = slack_code_block (code, strlen (code), SLACK_SECTION_MAX, &shown, &total, &hidden_lines);
    json_array_append_new (blocks, s_section (block));
    free (block);
    char sha[13];
    snprintf (sha, sizeof sha, "%s", *s_str (row, "code_sha256") ? s_str (row, "code_sha256") : "unknown");
    buf_t note = { 0 };
    if (shown < total)
        s_putf (&note, ":scissors: %zu of %zu characters (%zu line%s) hidden; ", total - shown, total,
                hidden_lines, hidden_lines == 1 ? "" : "s");
    s_putf (&note, "request %lld, code sha256 `%s…`", (long long) json_integer_value (json_object_get (row, "id")), sha);
    if (shown < total)
        s_putf (&note, "; `replgate status %lld` shows it all",
                (long long) json_integer_value (json_object_get (row, "id")));
    json_array_append_new (blocks, s_context (note.data));
    buf_free (&note);
}

json_t *
slack_message (json_t *row, json_t *slack_ids, int64_t now_ms, int rev)
{
    long long id = (long long) json_integer_value (json_object_get (row, "id"));
    const char *state = s_str (row, "state");
    bool pending = strcmp (state, "pending_approval") == 0;
    char *who = s_esc (row, "principal", 200);
    buf_t text = { 0 };
    s_putf (&text, "%s: request %lld from %s", pending ? "Approval needed" : "Approval request", id, who);
    free (who);
    char header[SLACK_HEADER_MAX];
    snprintf (header, sizeof header, "%s: request %lld", pending ? "Approval needed" : "Approval request", id);

    json_t *blocks = json_array ();
    json_array_append_new (blocks, json_pack ("{s:s, s:o}", "type", "header", "text", s_text ("plain_text", header)));
    json_array_append_new (blocks, s_fields (row, now_ms));
    if (*s_str (row, "reason")) {
        char *reason = s_esc (row, "reason", 1500);
        buf_t r = { 0 };
        s_putf (&r, "*Reason given by the agent*\n%s", reason);
        json_array_append_new (blocks, s_section (r.data));
        buf_free (&r);
        free (reason);
    }
    s_add_network (blocks, row);
    s_add_code (blocks, row);
    char *status = slack_status_line (row, slack_ids);
    if (*status) {
        json_array_append_new (blocks, s_section (status));
        s_putf (&text, " (%s)", state);
    }
    free (status);
    if (pending) {
        int quorum = (int) json_integer_value (json_object_get (json_object_get (row, "review"), "quorum"));
        char block_id[64];
        snprintf (block_id, sizeof block_id, "approval:%lld:%d", id, rev);
        json_array_append_new (blocks, json_pack ("{s:s, s:s, s:[o,o]}", "type", "actions", "block_id", block_id,
                                                  "elements", s_button (id, true, quorum), s_button (id, false, quorum)));
    }
    json_t *msg = json_pack ("{s:s, s:o}", "text", text.data, "blocks", blocks);
    buf_free (&text);
    return msg;
}

json_t *
slack_followup (json_t *row, json_t *slack_ids)
{
    long long id = (long long) json_integer_value (json_object_get (row, "id"));
    char *who = s_esc (row, "principal", 200), *session = s_esc (row, "session", 200);
    char *status = slack_status_line (row, slack_ids);
    buf_t text = { 0 }, ctx = { 0 };
    s_putf (&text, "Request %lld from %s (session %s): %s", id, who, session, s_str (row, "state"));
    s_putf (&ctx, "Follow-up to the approval message for request %lld; code sha256 `%.12s…`", id,
            *s_str (row, "code_sha256") ? s_str (row, "code_sha256") : "unknown");
    buf_t head = { 0 };
    s_putf (&head, "*Request %lld* from %s (session %s)\n%s", id, who, session,
            *status ? status : s_str (row, "state"));
    json_t *msg = json_pack ("{s:s, s:[o,o]}", "text", text.data, "blocks", s_section (head.data), s_context (ctx.data));
    free (who); free (session); free (status);
    buf_free (&text); buf_free (&ctx); buf_free (&head);
    return msg;
}

json_t *
slack_ephemeral (const char *text)
{
    return json_pack ("{s:s, s:b, s:s}", "response_type", "ephemeral", "replace_original", 0, "text", text);
}

//  --------------------------------------------------------------------------------------

//  Length of text in Slack's characters (UTF-16 units).
static size_t
s_chars (const char *text)
{
    size_t n = 0, size = strlen (text);
    for (size_t i = 0; i < size;) {
        uint32_t cp;
        i += s_decode ((const unsigned char *) text + i, size - i, &cp);
        n += cp >= 0x10000 ? 2 : 1;
    }
    return n;
}

static json_t *
s_test_row (const char *state, const char *code)
{
    return json_pack ("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:i, s:s}, s:[]}",
        "id", 42, "principal", "agent <!channel>", "session", "s&1", "lang", "python", "code", code,
        "code_sha256", "0123456789abcdef0123", "reason", "because <https://evil|click>", "rule", "review-net",
        "state", state, "review", "quorum", 2, "expires_at", "2026-11-28T12:10:00.000Z", "approvals");
}

//  Every section text of msg fits Slack's limit and no agent-controlled "<" survives.
static bool
s_within_limits (json_t *msg)
{
    size_t i;
    json_t *block;
    json_array_foreach (json_object_get (msg, "blocks"), i, block) {
        json_t *t = json_object_get (json_object_get (block, "text"), "text");
        if (t && (s_chars (json_string_value (t)) > SLACK_SECTION_MAX || strstr (json_string_value (t), "<!")))
            return false;
    }
    return true;
}

static void
s_test_escape (void)
{
    char *e = slack_escape ("a<b>&c", 6, 100);
    CHECK (strcmp (e, "a&lt;b&gt;&amp;c") == 0);
    free (e);
    e = slack_escape ("<!channel>", 10, 100);
    CHECK (strstr (e, "<") == NULL);
    free (e);
    e = slack_escape ("abcdef", 6, 4);
    CHECK (strcmp (e, "abc\xE2\x80\xA6") == 0);
    free (e);
    e = slack_escape ("abcd", 4, 4);
    CHECK (strcmp (e, "abcd") == 0);
    free (e);
    e = slack_escape ("x\xFF\x01y", 4, 100);
    CHECK (strcmp (e, "x\xEF\xBF\xBD\xEF\xBF\xBDy") == 0);
    free (e);
    size_t shown, total, lines;
    char *c = slack_code_block ("a```b", 5, 3000, &shown, &total, &lines);
    CHECK (strstr (c + 4, "```") == c + strlen (c) - 3);        //  only the closing fence
    CHECK (shown == 5 && total == 5);
    free (c);
    c = slack_code_block ("``````", 6, 3000, &shown, &total, &lines);
    CHECK (strstr (c + 4, "```") == c + strlen (c) - 3);
    free (c);
}

static void
s_test_truncate (void)
{
    //  10,000 characters, many of which escape to 5: cut to 3000 with the count and the sha.
    size_t size = 10000;
    char *code = (char *) malloc (size + 1);
    for (size_t i = 0; i < size; i++)
        code[i] = i % 50 == 49 ? '\n' : i % 7 == 0 ? '&' : 'x';
    code[size] = 0;
    size_t shown, total, lines;
    char *c = slack_code_block (code, size, 3000, &shown, &total, &lines);
    CHECK (s_chars (c) <= 3000 && s_chars (c) > 2990);
    CHECK (total == 10000 && shown < total && lines > 0);
    CHECK (strncmp (c + strlen (c) - 4, "\n```", 4) == 0);
    free (c);
    json_t *row = s_test_row ("pending_approval", code);
    json_t *msg = slack_message (row, NULL, time_parse_iso8601 ("2026-11-28T12:00:00.000Z"), 1);
    CHECK (s_within_limits (msg));
    char *dump = json_dumps (msg, 0);
    CHECK (strstr (dump, "characters") && strstr (dump, "0123456789ab") && strstr (dump, "in 10 min 0 s"));
    CHECK (strstr (dump, "approval:42:1") && strstr (dump, "\"approve\"") && strstr (dump, "\"deny\""));
    free (dump);
    json_decref (msg);
    json_decref (row);
    //  Multibyte: astral characters count double and are never split.
    char emoji[4 * 2000 + 1];
    for (int i = 0; i < 2000; i++)
        memcpy (emoji + 4 * i, "\xF0\x9F\x98\x80", 4);
    emoji[8000] = 0;
    c = slack_code_block (emoji, 8000, 3000, &shown, &total, &lines);
    CHECK (s_chars (c) <= 3000 && utf8_valid (c, strlen (c)) && shown == 1496);
    free (c);
    //  Fences everywhere: every third backtick costs a zero-width space, still within the limit.
    char ticks[5001];
    memset (ticks, '`', 5000);
    ticks[5000] = 0;
    c = slack_code_block (ticks, 5000, 3000, &shown, &total, &lines);
    CHECK (s_chars (c) <= 3000 && s_chars (c) >= 2998 && strstr (c + 4, "```") == c + strlen (c) - 3);
    free (c);
    free (code);
}

static void
s_test_states (void)
{
    json_t *row = s_test_row ("pending_approval", "print(1)");
    json_t *ids = json_pack ("{s:s}", "alice", "U1");
    json_array_append_new (json_object_get (row, "approvals"),
        json_pack ("{s:s, s:s, s:s, s:s}", "approver", "alice", "on_behalf_of", "slack-gw", "via", "slack", "decision", "approve"));
    char *line = slack_status_line (row, ids);
    CHECK (strstr (line, "Approved by <@U1> (1 of 2)") != NULL);
    free (line);
    json_array_append_new (json_object_get (row, "approvals"),
        json_pack ("{s:s, s:s, s:s}", "approver", "bob", "via", "cli", "decision", "approve"));
    json_object_set_new (row, "state", json_string ("done"));
    json_object_set_new (row, "outcome", json_string ("ok"));
    json_object_set_new (row, "exit_code", json_integer (0));
    line = slack_status_line (row, ids);
    CHECK (strstr (line, "<@U1>, bob (cli) (2 of 2)") && strstr (line, "outcome `ok`, exit code 0"));
    free (line);
    json_t *msg = slack_message (row, ids, 0, 2);
    char *dump = json_dumps (msg, 0);
    CHECK (strstr (dump, "\"actions\"") == NULL);            //  buttons gave way to the state
    free (dump);
    json_decref (msg);
    json_object_set_new (row, "state", json_string ("denied"));
    json_array_append_new (json_object_get (row, "approvals"),
        json_pack ("{s:s, s:s, s:s, s:s}", "approver", "carol", "via", "cli", "decision", "deny", "reason", "no <way>"));
    line = slack_status_line (row, ids);
    CHECK (strstr (line, "Denied* by carol (cli): no &lt;way&gt;") != NULL);
    free (line);
    json_object_set_new (row, "state", json_string ("expired"));
    msg = slack_followup (row, ids);
    CHECK (s_within_limits (msg) && strstr (json_string_value (json_object_get (msg, "text")), "expired"));
    json_decref (msg);
    msg = slack_ephemeral ("hi");
    CHECK (json_is_false (json_object_get (msg, "replace_original")));
    json_decref (msg);
    json_decref (ids);
    json_decref (row);
}

//  Long agent-controlled text reaches Slack whole (up to its own cap) and still valid, and
//  however many approvers there are the status stays within a section.
static void
s_test_long (void)
{
    char reason[2 * 1400 + 1];
    for (int i = 0; i < 1400; i++)
        memcpy (reason + 2 * i, "\xC3\xA9", 2);                //  é: 2 bytes, 1 character
    reason[2 * 1400] = 0;
    json_t *row = s_test_row ("pending_approval", "print(1)");
    json_object_set_new (row, "reason", json_string (reason));
    json_t *msg = slack_message (row, NULL, 0, 1);
    char *dump = msg ? json_dumps (msg, 0) : NULL;
    CHECK (msg && s_within_limits (msg) && dump && strstr (dump, reason));
    free (dump);
    json_decref (msg);
    json_t *approvals = json_object_get (row, "approvals");
    char name[80];              //  60 bytes used: room for what gcc cannot prove of %02d
    for (int i = 0; i < 100; i++) {
        snprintf (name, sizeof name, "%02d%s", i, "-approver-with-a-name-as-long-as-a-key-name-may-be-0123456");
        json_array_append_new (approvals, json_pack ("{s:s, s:s, s:s}", "approver", name, "via", "cli",
                                                     "decision", "approve"));
    }
    json_object_set_new (json_object_get (row, "review"), "quorum", json_integer (100));
    char *line = slack_status_line (row, NULL);
    CHECK (line && s_chars (line) <= SLACK_SECTION_MAX && utf8_valid (line, strlen (line)));
    CHECK (line && strstr (line, "00-approver") && strstr (line, "more (100 of 100)"));
    free (line);
    msg = slack_message (row, NULL, 0, 1);
    CHECK (msg && s_within_limits (msg));
    json_decref (msg);
    msg = slack_followup (row, NULL);
    CHECK (msg && s_within_limits (msg));
    json_decref (msg);
    json_decref (row);
}

//  The grant an approval opens is in the message, as code spans; a long one is cut to fit.
static void
s_test_network (void)
{
    json_t *row = s_test_row ("pending_approval", "print(1)");
    json_t *msg = slack_message (row, NULL, 0, 1);
    char *dump = json_dumps (msg, 0);
    CHECK (dump && !strstr (dump, "*Network*"));
    free (dump);
    json_decref (msg);
    json_object_set_new (row, "limits", json_pack ("{s:i, s:{s:[s,s], s:[s]}}", "timeout_ms", 5,
                         "network", "allow", "files.example.com:443", "*.internal.example:80",
                         "methods", "GET"));
    msg = slack_message (row, NULL, 0, 1);
    dump = json_dumps (msg, 0);
    CHECK (msg && s_within_limits (msg) && dump);
    CHECK (dump && strstr (dump, "*Network*: `files.example.com:443`, `*.internal.example:80` "
                                 "(methods `GET`)"));
    free (dump);
    json_decref (msg);
    json_t *allow = json_array ();
    char name[300];
    for (int i = 0; i < 64; i++) {
        snprintf (name, sizeof name, "%02d.%0240d.example:443", i, 0);
        json_array_append_new (allow, json_string (name));
    }
    json_object_set_new (row, "limits", json_pack ("{s:{s:o}}", "network", "allow", allow));
    msg = slack_message (row, NULL, 0, 1);
    dump = json_dumps (msg, 0);
    CHECK (msg && s_within_limits (msg) && dump && strstr (dump, "`00.0000"));
    CHECK (dump && strstr (dump, " more (any method)") && !strstr (dump, "`63.0000"));
    free (dump);
    json_decref (msg);
    //  Not what a policy grants: shown as "?", never as markup.
    json_object_set_new (row, "limits", json_pack ("{s:{s:[s,s,i]}}", "network", "allow", "a:1",
                                                   "`<!here>`", 7));
    msg = slack_message (row, NULL, 0, 1);
    dump = json_dumps (msg, 0);
    CHECK (msg && s_within_limits (msg) && dump && strstr (dump, "*Network*: `a:1`, `?`, `?` (any"));
    free (dump);
    json_decref (msg);
    json_decref (row);
}

int
slack_test (void)
{
    s_test_escape ();
    s_test_truncate ();
    s_test_states ();
    s_test_long ();
    s_test_network ();
    return 0;
}
