/*  worker/result.c: how a snippet ended, as result fields (see result.h). */
#include "worker/result.h"
#include "common/util.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void
result_set_outcome (json_t *r, const result_cause_t *cause)
{
    result_end_t end = cause->end;
    const char *outcome = "error";
    json_t *exit_code = json_null (), *sig = json_null (), *error = json_null ();
    json_t *value = json_null ();
    json_t *reply_error = cause->reply ? json_object_get (cause->reply, "error") : NULL;
    if (end == END_REPLY && cause->python) {
        bool ok = json_is_string (json_object_get (cause->reply, "status"))
               && strcmp (json_string_value (json_object_get (cause->reply, "status")), "ok") == 0;
        outcome = ok ? "ok" : "error";
        exit_code = json_integer (ok ? 0 : 1);
        if (json_is_string (json_object_get (cause->reply, "value")))
            value = json_incref (json_object_get (cause->reply, "value"));
        if (json_is_object (reply_error))
            error = json_copy (reply_error);
    }
    else
    if (end == END_REPLY) {
        outcome = cause->shell_status == 0 ? "ok" : "error";
        exit_code = json_integer (cause->shell_status);
    }
    else
    if (end == END_EXIT && WIFEXITED (cause->wstatus)) {
        outcome = WEXITSTATUS (cause->wstatus) == 0 ? "ok" : "error";
        exit_code = json_integer (WEXITSTATUS (cause->wstatus));
    }
    else
    if (end == END_EXIT || end == END_KILLED) {
        outcome = "killed";
        sig = json_integer (end == END_KILLED ? SIGKILL : WTERMSIG (cause->wstatus));
    }
    else
    if (end == END_INTERRUPTED) {
        outcome = "interrupted";
        if (!cause->python && cause->shell_status >= 0)
            exit_code = json_integer (cause->shell_status);
        if (json_is_object (reply_error))   //  KeyboardInterrupt, and where it hit
            error = json_copy (reply_error);
    }
    else
    if (end == END_TIMEOUT || end == END_OUTPUT) {
        outcome = end == END_TIMEOUT ? "timeout" : "output_limit";
        if (json_is_object (reply_error))   //  where the interrupt found the snippet
            error = json_copy (reply_error);
    }
    else
    if (end == END_EGRESS) {
        outcome = "egress_limit";
        error = json_pack ("{s:s, s:s, s:s}", "name", "EgressLimit", "value",
                           "the run passed its egress_connections or egress_bytes limit; "
                           "the session was ended", "traceback", "");
    }
    else
        error = json_pack ("{s:s, s:s, s:s}", "name", "WorkerError",
                           "value", cause->why ? cause->why : "", "traceback", "");
    //  Whatever else happened, an OOM kill in the session is what ended or broke the snippet.
    if (cause->oom && end != END_REJECTED)
        outcome = "oom";
    json_object_set_new (r, "outcome", json_string (outcome));
    json_object_set_new (r, "exit_code", exit_code);
    json_object_set_new (r, "signal", sig);
    json_object_set_new (r, "value", value);
    json_object_set_new (r, "error", error);
}

void
result_set_output (json_t *r, outbuf_t *buf, const char *key, const char *flag)
{
    bool cut = false;
    char *base64 = NULL;
    json_t *text = outbuf_text (buf, &cut, &base64);
    if (base64) {               //  binary: the broker stores these bytes as they are
        char name [32];
        snprintf (name, sizeof name, "%s_base64", key);
        json_object_set_new (r, name, json_string (base64));
        free (base64);
    }
    else
        json_object_set_new (r, key, text ? text : json_string (""));
    json_object_set_new (r, flag, json_boolean (cut));
}

//  Cuts *text (a string member of obj at key) to cap bytes; true if it was cut.
static bool
s_cap (json_t *obj, const char *key, size_t cap)
{
    json_t *text = json_object_get (obj, key);
    if (!json_is_string (text) || json_string_length (text) <= cap)
        return false;
    char *cut = malloc (cap + 1);
    bool lost = true;
    size_t n = cut ? utf8_repair (json_string_value (text), cap, cut, cap, true, &lost) : 0;
    json_object_set_new (obj, key, json_stringn (cut ? cut : "", n));
    free (cut);
    return true;
}

static bool
s_flag (json_t *obj, const char *key)
{
    return json_is_true (json_object_get (obj, key));
}

void
result_cap_texts (json_t *r, json_t *reply, size_t cap)
{
    json_t *error = json_object_get (r, "error");
    json_t *said = json_object_get (reply, "error");
    bool value = s_cap (r, "value", cap) || s_flag (reply, "value_cut");
    bool name = json_is_object (error) && (s_cap (error, "name", cap) || s_flag (said, "name_cut"));
    bool text = json_is_object (error) && (s_cap (error, "value", cap) || s_flag (said, "value_cut"));
    bool tb = json_is_object (error)
           && (s_cap (error, "traceback", cap) || s_flag (said, "traceback_cut"));
    if (json_is_object (error)) {       //  the driver's own flags are not part of the protocol
        json_object_del (error, "name_cut");
        json_object_del (error, "value_cut");
        json_object_del (error, "traceback_cut");
    }
    json_object_set_new (r, "value_truncated", json_boolean (value));
    json_object_set_new (r, "error_name_truncated", json_boolean (name));
    json_object_set_new (r, "error_value_truncated", json_boolean (text));
    json_object_set_new (r, "traceback_truncated", json_boolean (tb));
}

//  A dead interpreter's rusage covers its whole life; CPU has clock-tick resolution (10 ms).
void
result_set_usage (json_t *r, double wall_ms, long long cpu_start, long long ticks, long rss_kb,
                  const struct rusage *reaped)
{
    static long hz = 0;
    if (!hz && (hz = sysconf (_SC_CLK_TCK)) <= 0)
        hz = 100;
    double cpu_ms = 0;
    if (ticks >= 0 && cpu_start >= 0)
        cpu_ms = (double) (ticks - cpu_start) * 1000.0 / (double) hz;
    else {
        cpu_ms = (reaped->ru_utime.tv_sec + reaped->ru_stime.tv_sec) * 1e3
               + (reaped->ru_utime.tv_usec + reaped->ru_stime.tv_usec) / 1e3;
        if (cpu_start > 0)
            cpu_ms -= (double) cpu_start * 1000.0 / (double) hz;
    }
    if (rss_kb < 0)
        rss_kb = reaped->ru_maxrss;
    json_object_set_new (r, "wall_ms", json_real (wall_ms));
    json_object_set_new (r, "cpu_ms", json_real (cpu_ms > 0 ? cpu_ms : 0));
    if (rss_kb > 0)             //  absent when unknown (the broker's codec refuses null)
        json_object_set_new (r, "max_rss_kb", json_integer (rss_kb));
}

void
result_set_box_usage (json_t *r, double wall_ms, const spawn_usage_t *u)
{
    json_object_set_new (r, "wall_ms", json_real (wall_ms));
    json_object_set_new (r, "cpu_ms", json_real (u->cpu_ms));
    json_object_set_new (r, "session_cpu_ms", json_real (u->session_cpu_ms));
    if (u->peak_kb > 0)         //  absent when unknown (the broker's codec refuses null)
        json_object_set_new (r, "max_rss_kb", json_integer (u->peak_kb));
}
