/*  approver/deliver.c: libcurl posting with Slack's rules (see deliver.h). A retry waits in
    the outbox, not in a sleep, so the daemon's loop keeps serving clicks and events; only the
    HTTP exchange itself blocks, bounded by the timeout. */
#include "approver/deliver.h"
#include "common/check.h"
#include "common/util.h"
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct _deliver_t {
    state_t *state;
    CURL *curl;                 //  reused, so connections to Slack are kept alive
    int timeout_ms;
    json_t *last_post;          //  webhook URL -> monotonic ms of its last attempt
    deliver_fail_fn *on_fail;
    void *on_fail_arg;
};

deliver_t *
deliver_new (state_t *state, int timeout_ms)
{
    deliver_t *self = (deliver_t *) calloc (1, sizeof (deliver_t));
    if (!self)
        return NULL;
    self->state = state;
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    self->last_post = json_object ();
    self->curl = curl_easy_init ();
    if (!self->curl) {
        log_error ("deliver: curl_easy_init failed");
        deliver_destroy (&self);
    }
    return self;
}

void
deliver_destroy (deliver_t **self_p)
{
    if (*self_p) {
        deliver_t *self = *self_p;
        if (self->curl)
            curl_easy_cleanup (self->curl);
        json_decref (self->last_post);
        free (self);
        *self_p = NULL;
    }
}

void
deliver_on_fail (deliver_t *self, deliver_fail_fn *fn, void *arg)
{
    self->on_fail = fn;
    self->on_fail_arg = arg;
}

void
deliver_redact (const char *url, char *out, size_t size)
{
    const char *scheme = strstr (url, "://");
    const char *path = scheme ? strchr (scheme + 3, '/') : NULL;
    size_t len = strlen (url);
    if (!path)
        snprintf (out, size, "%s", url);
    else
        snprintf (out, size, "%.*s/…%s", (int) (path - url), url, len > 4 ? url + len - 4 : "");
}

static size_t
s_on_body (char *data, size_t size, size_t n, void *arg)
{
    deliver_reply_t *reply = (deliver_reply_t *) arg;
    size_t have = strlen (reply->answer), take = size * n;
    if (have + 1 < sizeof reply->answer) {
        size_t room = sizeof reply->answer - 1 - have;
        memcpy (reply->answer + have, data, take < room ? take : room);
        reply->answer[have + (take < room ? take : room)] = 0;
    }
    return size * n;
}

static size_t
s_on_header (char *data, size_t size, size_t n, void *arg)
{
    deliver_reply_t *reply = (deliver_reply_t *) arg;
    size_t len = size * n;
    if (len > 12 && strncasecmp (data, "Retry-After:", 12) == 0) {
        //  The value without the spaces around it and the line end, as a C string.
        char value[32];
        size_t from = 12, to = len;
        while (from < to && (data[from] == ' ' || data[from] == '\t'))
            from++;
        while (to > from && (data[to - 1] == ' ' || data[to - 1] == '\t' || data[to - 1] == '\r'
                             || data[to - 1] == '\n'))
            to--;
        int64_t s;
        //  Seconds; a wait of more than 115 days is as good as never. An HTTP-date is not
        //  worth parsing: the 1 s default applies, as for anything else.
        if (to - from < sizeof value) {
            memcpy (value, data + from, to - from);
            value[to - from] = 0;
            if (decimal_parse (value, 18, 0, INT64_MAX, &s) == 0)
                reply->retry_after_ms = (s < 9999999 ? s : 9999999) * 1000;
        }
    }
    return len;
}

int
deliver_post (deliver_t *self, const char *url, const char *body, deliver_reply_t *reply)
{
    memset (reply, 0, sizeof *reply);
    reply->retry_after_ms = -1;
    CURL *c = self->curl;
    curl_easy_reset (c);
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = curl_slist_append (NULL, "Content-Type: application/json; charset=utf-8");
    if (!headers) {
        snprintf (reply->answer, sizeof reply->answer, "out of memory");
        reply->transport_error = true;
        return -1;
    }
    CURLcode rc = CURLE_OK;
    //  Only http(s), no redirects: a webhook URL that redirects is misconfigured, and
    //  following it could send the message somewhere else.
    if ((rc = curl_easy_setopt (c, CURLOPT_URL, url)) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https")) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_POSTFIELDS, body)) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE, (long) strlen (body))) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_HTTPHEADER, headers)) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_USERAGENT, "replgate-approver/1")) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L)) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT_MS, (long) (self->timeout_ms / 2))) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, (long) self->timeout_ms)) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_ERRORBUFFER, errbuf)) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_on_body)) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_WRITEDATA, reply)) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, s_on_header)) == CURLE_OK
     && (rc = curl_easy_setopt (c, CURLOPT_HEADERDATA, reply)) == CURLE_OK)
        rc = curl_easy_perform (c);
    curl_slist_free_all (headers);
    if (rc != CURLE_OK) {
        snprintf (reply->answer, sizeof reply->answer, "%.199s", *errbuf ? errbuf : curl_easy_strerror (rc));
        reply->transport_error = true;
        return -1;
    }
    if (curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &reply->status) != CURLE_OK)
        reply->status = 0;
    return 0;
}

deliver_verdict_t
deliver_judge (const deliver_reply_t *reply, bool webhook)
{
    if (reply->transport_error || reply->status == 0 || reply->status >= 500)
        return DELIVER_RETRY;
    if (reply->status == 429)
        return DELIVER_LIMITED;
    if (reply->status == 200) {
        //  A 200 HTML page is a captive portal or proxy, not Slack: try again later.
        if (strncasecmp (reply->answer, "<!doctype", 9) == 0 || strncasecmp (reply->answer, "<html", 5) == 0)
            return DELIVER_RETRY;
        if (webhook && strcmp (reply->answer, "ok") != 0)
            log_warn ("deliver: webhook answered 200 with \"%.40s\", not \"ok\"; taken as delivered", reply->answer);
        return DELIVER_OK;
    }
    return DELIVER_PERMANENT;
}

int64_t
deliver_backoff_ms (int attempts)
{
    int64_t ms = 1000;
    for (int i = 1; i < attempts && ms < 60000; i++)
        ms *= 2;
    return ms < 60000 ? ms : 60000;
}

static bool
s_is_webhook (const char *kind)
{
    return strcmp (kind, "post") == 0 || strcmp (kind, "followup") == 0;
}

static void
s_give_up (deliver_t *self, json_t *job, const deliver_reply_t *reply, int attempts)
{
    const char *url = json_string_value (json_object_get (job, "url"));
    char red[96];
    deliver_redact (url, red, sizeof red);
    log_error ("deliver: %s for request %lld to %s given up after %d attempt%s: HTTP %ld \"%s\"",
               json_string_value (json_object_get (job, "kind")),
               (long long) json_integer_value (json_object_get (job, "request_id")), red, attempts,
               attempts == 1 ? "" : "s", reply->status, reply->answer);
    json_object_set_new (job, "attempts", json_integer (attempts));
    if (state_job_failed (self->state, json_integer_value (json_object_get (job, "id")), reply->status, reply->answer))
        log_error ("deliver: could not record the failure; the job stays queued");
    else if (self->on_fail)
        self->on_fail (self->on_fail_arg, job, reply);
}

//  One attempt at a job, and what the outbox does about its answer.
static void
s_attempt (deliver_t *self, json_t *job, int64_t now_ms)
{
    int64_t id = json_integer_value (json_object_get (job, "id"));
    const char *url = json_string_value (json_object_get (job, "url"));
    const char *kind = json_string_value (json_object_get (job, "kind"));
    int attempts = (int) json_integer_value (json_object_get (job, "attempts")) + 1;
    int64_t age = now_ms - json_integer_value (json_object_get (job, "created_ms"));
    deliver_reply_t reply;
    deliver_post (self, url, json_string_value (json_object_get (job, "body")), &reply);
    deliver_verdict_t verdict = deliver_judge (&reply, s_is_webhook (kind));
    char red[96];
    deliver_redact (url, red, sizeof red);
    long long rid = (long long) json_integer_value (json_object_get (job, "request_id"));
    if (verdict == DELIVER_OK) {
        log_info ("deliver: %s for request %lld sent to %s (attempt %d)", kind, rid, red, attempts);
        if (state_job_done (self->state, id))
            log_error ("deliver: sent, but could not clear job %lld; it may be sent again", (long long) id);
        return;
    }
    int64_t wait = verdict == DELIVER_LIMITED ? (reply.retry_after_ms >= 0 ? reply.retry_after_ms : 1000)
                                              : deliver_backoff_ms (attempts);
    if (verdict == DELIVER_PERMANENT || attempts >= DELIVER_MAX_ATTEMPTS || age + wait > DELIVER_MAX_AGE_MS) {
        s_give_up (self, job, &reply, attempts);
        return;
    }
    log_warn ("deliver: %s for request %lld to %s: %s %ld \"%s\"; retry in %lld ms", kind, rid, red,
              verdict == DELIVER_LIMITED ? "rate limited," : "failed,", reply.status, reply.answer,
              (long long) wait);
    if (state_job_retry (self->state, id, attempts, now_ms + wait))
        log_error ("deliver: could not reschedule job %lld", (long long) id);
}

int
deliver_tick (deliver_t *self, int64_t now_ms, int cap_ms)
{
    json_t *due = state_jobs_due (self->state, now_ms);
    int sleep_ms = cap_ms;
    size_t i;
    json_t *job;
    json_array_foreach (due, i, job) {
        const char *url = json_string_value (json_object_get (job, "url"));
        const char *kind = json_string_value (json_object_get (job, "kind"));
        int64_t mono = clock_mono_ms ();
        if (s_is_webhook (kind)) {
            json_t *last = json_object_get (self->last_post, url);
            if (last && mono - json_integer_value (last) < DELIVER_SPACING_MS) {
                int64_t left = DELIVER_SPACING_MS - (mono - json_integer_value (last));
                sleep_ms = left < sleep_ms ? (int) left : sleep_ms;
                continue;
            }
            json_object_set_new (self->last_post, url, json_integer (mono));
        }
        s_attempt (self, job, now_ms);
    }
    json_decref (due);
    //  Retries wait in the outbox: look again soon while anything is queued.
    if (state_jobs_count (self->state) > 0 && sleep_ms > 100)
        sleep_ms = 100;
    return sleep_ms;
}

int
deliver_test (void)
{
    deliver_reply_t r = { .status = 200, .answer = "ok", .retry_after_ms = -1 };
    CHECK (deliver_judge (&r, true) == DELIVER_OK);
    snprintf (r.answer, sizeof r.answer, "<html><body>proxy</body></html>");
    CHECK (deliver_judge (&r, true) == DELIVER_RETRY);
    snprintf (r.answer, sizeof r.answer, "{\"ok\":true}");
    CHECK (deliver_judge (&r, false) == DELIVER_OK);
    r.status = 429;
    CHECK (deliver_judge (&r, true) == DELIVER_LIMITED);
    r.status = 500;
    CHECK (deliver_judge (&r, true) == DELIVER_RETRY);
    r.status = 503;
    CHECK (deliver_judge (&r, false) == DELIVER_RETRY);
    long permanent[] = { 400, 403, 404, 410, 301 };
    for (size_t i = 0; i < sizeof permanent / sizeof permanent[0]; i++) {
        r.status = permanent[i];
        CHECK (deliver_judge (&r, true) == DELIVER_PERMANENT);
    }
    r.status = 0;
    r.transport_error = true;
    CHECK (deliver_judge (&r, true) == DELIVER_RETRY);
    CHECK (deliver_backoff_ms (1) == 1000 && deliver_backoff_ms (2) == 2000 && deliver_backoff_ms (3) == 4000);
    CHECK (deliver_backoff_ms (50) == 60000);
    char red[96];
    deliver_redact ("https://hooks.slack.com/services/T1/B2/secretXy9z", red, sizeof red);
    CHECK (strcmp (red, "https://hooks.slack.com/…Xy9z") == 0);
    //  Parsing of Retry-After, and a real refused connection judged as retryable.
    deliver_reply_t h = { .retry_after_ms = -1 };
    const struct { const char *line; int64_t ms; } retry[] = {
        { "Retry-After: 7\r\n", 7000 }, { "retry-after:\t30 \r\n", 30000 }, { "Retry-After:0\r\n", 0 },
        { "Retry-After: 99999999999\r\n", 9999999000 }, { "Retry-After: 9999999999999999999\r\n", -1 },
        { "Retry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\n", -1 }, { "Retry-After: -5\r\n", -1 },
        { "Retry-After: 5s\r\n", -1 }, { "Retry-After: 1 2\r\n", -1 }, { "Retry-After: \r\n", -1 },
        { "Retry-After: 000000000000000000000000000000000001\r\n", -1 }, { "Retry-Afterwards: 7\r\n", -1 },
    };
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++) {
        deliver_reply_t one = { .retry_after_ms = -1 };
        char line[64];
        size_t n = strlen (retry[i].line);
        memcpy (line, retry[i].line, n);            //  not NUL-terminated, as curl hands it
        memset (line + n, '9', sizeof line - n);
        s_on_header (line, 1, n, &one);
        CHECK (one.retry_after_ms == retry[i].ms);
    }
    deliver_t *d = deliver_new (NULL, 2000);
    CHECK (d && deliver_post (d, "http://127.0.0.1:1/x", "{}", &h) == -1 && deliver_judge (&h, true) == DELIVER_RETRY);
    CHECK (deliver_post (d, "file:///etc/passwd", "{}", &h) == -1);
    deliver_destroy (&d);
    CHECK (d == NULL);
    return 0;
}
