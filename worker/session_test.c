/*  worker/session_test.c: session_test(), run against real python3 and bash processes. */
#include "worker/session.h"
#include "common/buf.h"
#include "worker/outbuf.h"
#include "worker/spawn.h"
#include "common/check.h"
#include "common/util.h"
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024 * 1024)

//  Runs one snippet to its end the way the worker's loop would, and returns the result.
static json_t *s_drive (session_t *s, int64_t after, buf_t *out);

static json_t *
s_run_limited (session_t *s, const char *code, int64_t timeout_ms, size_t cap)
{
    session_limits_t limits = { timeout_ms, cap, 512, 128, 64, 1000, 256, 1 << 30, false };
    int rc = session_start (s, 7, code, strlen (code), &limits, NULL);
    return rc == 0 ? s_drive (s, -1, NULL) : session_take_result (s);
}

static json_t *
s_run (session_t *s, const char *code)
{
    return s_run_limited (s, code, 10000, MIB);
}

static const char *
s_str (json_t *r, const char *key)
{
    const char *text = json_string_value (json_object_get (r, key));
    return text ? text : "(null)";
}

static bool
s_is (json_t *r, const char *key, const char *want)
{
    bool same = strcmp (s_str (r, key), want) == 0;
    if (!same)
        fprintf (stderr, "  %s is \"%s\", wanted \"%s\"\n", key, s_str (r, key), want);
    return same;
}

static int64_t
s_int (json_t *r, const char *key)
{
    json_t *v = json_object_get (r, key);
    return json_is_integer (v) ? json_integer_value (v) : -999;
}

static bool
s_true (json_t *r, const char *key)
{
    return json_is_true (json_object_get (r, key));
}

static const char *
s_err (json_t *r, const char *key)
{
    const char *text = json_string_value (json_object_get (json_object_get (r, "error"), key));
    return text ? text : "(null)";
}

//  Each test takes the result, checks it and drops it.
#define RUN(s, code) (json_decref (r), r = s_run ((s), (code)))

static void
s_test_python_basics (session_t *py)
{
    json_t *r = NULL;
    RUN (py, "x = 41\nx += 1");
    CHECK (s_is (r, "outcome", "ok"));
    CHECK (json_is_null (json_object_get (r, "value")));
    CHECK (s_int (r, "exit_code") == 0);
    CHECK (s_int (r, "execution_count") == 1);
    CHECK (s_is (r, "sandbox", spawn_sandbox_name ()));
    CHECK (!s_true (r, "session_reset"));
    RUN (py, "print('hello')\nx");
    CHECK (s_is (r, "value", "42"));
    CHECK (s_is (r, "stdout", "hello\n"));
    CHECK (s_int (r, "execution_count") == 2);
    RUN (py, "_ + 1");
    CHECK (s_is (r, "value", "43"));
    RUN (py, "None");
    CHECK (json_is_null (json_object_get (r, "value")));
    RUN (py, "for i in range(3):\n    i");
    CHECK (json_is_null (json_object_get (r, "value")));
    RUN (py, "import os; os.write(1, b'raw\\n'); os.write(2, b'err\\n'); os.system('echo hi')");
    CHECK (s_is (r, "stdout", "raw\nhi\n"));
    CHECK (s_is (r, "stderr", "err\n"));
    CHECK (s_is (r, "value", "0"));
    RUN (py, "'s' * 100000");
    CHECK (strlen (s_str (r, "value")) < 70000);
    RUN (py, "b = bytearray(50_000_000); del b");  //  the peak is per snippet
    CHECK (s_int (r, "max_rss_kb") > 50000);
    RUN (py, "1");
    CHECK (s_int (r, "max_rss_kb") > 1000 && s_int (r, "max_rss_kb") < 50000);
    RUN (py, "sum(i * i for i in range(3_000_000))");
    CHECK (json_real_value (json_object_get (r, "cpu_ms")) >= 10);
    RUN (py, "import pickle\nclass P: pass\nlen(pickle.dumps(P())) > 0");
    CHECK (s_is (r, "value", "True"));
    json_decref (r);
}

static void
s_test_python_errors (session_t *py)
{
    json_t *r = NULL;
    RUN (py, "def f():\n    return 1 / 0\nf()");
    CHECK (s_is (r, "outcome", "error"));
    CHECK (s_int (r, "exit_code") == 1);
    CHECK (strcmp (s_err (r, "name"), "ZeroDivisionError") == 0);
    CHECK (strcmp (s_err (r, "value"), "division by zero") == 0);
    const char *tb = s_err (r, "traceback");
    CHECK (strstr (tb, "Traceback (most recent call last)") != NULL);
    CHECK (strstr (tb, "return 1 / 0") != NULL);
    CHECK (strstr (tb, "<snippet-") != NULL);
    CHECK (strstr (tb, "<string>") == NULL);        //  no driver frames
    CHECK (!s_true (r, "session_reset"));
    RUN (py, "x = (");
    CHECK (s_is (r, "outcome", "error"));
    CHECK (strcmp (s_err (r, "name"), "SyntaxError") == 0);
    RUN (py, "import sys; sys.stdout.write('\\xff'); sys.stdout.flush(); "
             "os.write(1, b'a\\xffb\\xe2\\x82')");
    //  Bytes that are not text travel byte for byte, in base64.
    CHECK (s_is (r, "stdout_base64", "w79h/2Ligg=="));     //  c3 bf 61 ff 62 e2 82
    CHECK (json_object_get (r, "stdout") == NULL);
    RUN (py, "x");
    CHECK (s_is (r, "value", "42"));                //  state survived the errors
    RUN (py, "raise SystemExit(3)");
    CHECK (s_is (r, "outcome", "error"));
    CHECK (s_int (r, "exit_code") == 3);
    CHECK (s_true (r, "session_reset"));
    RUN (py, "'x' in dir()");
    CHECK (s_is (r, "value", "False"));             //  a fresh interpreter
    CHECK (s_int (r, "execution_count") == 1);
    RUN (py, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)");
    CHECK (s_is (r, "outcome", "killed"));
    CHECK (s_int (r, "signal") == SIGSEGV);
    CHECK (s_true (r, "session_reset"));
    json_decref (r);
}

static void
s_test_shell (session_t *sh)
{
    json_t *r = NULL;
    RUN (sh, "cd /usr; V=hello; greet () { echo \"$V from $(pwd)\"; }");
    CHECK (s_is (r, "outcome", "ok"));
    CHECK (s_int (r, "exit_code") == 0);
    RUN (sh, "greet; echo oops >&2");
    CHECK (s_is (r, "stdout", "hello from /usr\n"));
    CHECK (s_is (r, "stderr", "oops\n"));
    CHECK (s_int (r, "execution_count") == 2);
    RUN (sh, "false");
    CHECK (s_is (r, "outcome", "error"));
    CHECK (s_int (r, "exit_code") == 1);
    RUN (sh, "cat; (exit 7)");                      //  stdin is /dev/null: cat ends at once
    CHECK (s_int (r, "exit_code") == 7);
    RUN (sh, "break; continue; return 5; echo not-reached");    //  ends the snippet only
    CHECK (s_int (r, "exit_code") == 5);
    CHECK (s_is (r, "stdout", ""));
    //  Forgery: fd 4 is closed for the snippet and stdout is not the status channel.
    RUN (sh, "echo 'anything 0' >&4; printf '%032d 0\\n' 0; for i in 1 2 3; do echo \"$i 0\"; done;"
             " read() { :; }; printf() { :; }; false");
    CHECK (s_is (r, "outcome", "error"));
    CHECK (s_int (r, "exit_code") == 1);
    RUN (sh, "echo still $V");
    CHECK (s_is (r, "stdout", "still hello\n"));
    RUN (sh, "unset -f read printf; printf 'a\\377b\\n'");
    CHECK (s_is (r, "stdout_base64", "Yf9iCg=="));         //  61 ff 62 0a
    RUN (sh, "exit 3");
    CHECK (s_is (r, "outcome", "error"));
    CHECK (s_int (r, "exit_code") == 3);
    CHECK (s_true (r, "session_reset"));
    RUN (sh, "echo \"[$V]\" $((1+1))");             //  a fresh shell
    CHECK (s_is (r, "stdout", "[] 2\n"));
    CHECK (!s_true (r, "session_reset"));
    RUN (sh, "kill -9 $$");
    CHECK (s_is (r, "outcome", "killed"));
    CHECK (s_int (r, "signal") == SIGKILL);
    CHECK (s_true (r, "session_reset"));
    json_decref (r);
}

static void
s_test_timeouts (session_t *py, session_t *sh)
{
    json_t *r = NULL;
    //  The last two ignore SIGINT and must be killed at the end of the grace period.
    const char *code [] = { "x = 5\nwhile True: pass", "sleep 100",
                            "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                            "while True: pass", "trap '' INT; sleep 100" };
    session_t *sessions [] = { py, sh, py, sh };
    for (int i = 0; i < 4; i++) {
        int64_t start = clock_mono_ms ();
        json_decref (r);
        r = s_run_limited (sessions [i], code [i], 1000, MIB);
        int64_t took = clock_mono_ms () - start;
        CHECK (s_is (r, "outcome", "timeout"));
        CHECK (s_true (r, "session_reset"));
        CHECK (took >= 1000 && took < 5000);      //  ended by the deadline, not by the 100 s
        CHECK (json_real_value (json_object_get (r, "wall_ms")) >= 1000);
    }
    RUN (py, "'x' in dir()");
    CHECK (s_is (r, "value", "False"));
    RUN (sh, "echo back");
    CHECK (s_is (r, "stdout", "back\n"));
    json_decref (r);
}

static void
s_test_output_caps (session_t *py, session_t *sh)
{
    json_t *r = NULL;
    int64_t start = clock_mono_ms ();
    r = s_run_limited (py, "import sys; sys.stdout.write('x' * 100_000_000); 5", 10000, 2 * MIB);
    CHECK (s_is (r, "outcome", "ok"));
    CHECK (s_true (r, "stdout_truncated"));
    CHECK (!s_true (r, "stderr_truncated"));
    CHECK (strlen (s_str (r, "stdout")) == 2 * MIB);
    CHECK (s_is (r, "value", "5"));
    log_info ("session_test: 100 MB print with a 2 MiB cap took %lld ms",
              (long long) (clock_mono_ms () - start));
    RUN (py, "1 + 1");
    CHECK (s_is (r, "value", "2"));
    //  A multi-byte character split by the cap is dropped whole.
    json_decref (r);
    r = s_run_limited (py, "print('ab' + '\\u20ac' * 10)", 10000, 4);
    CHECK (s_is (r, "stdout", "ab"));
    CHECK (s_true (r, "stdout_truncated"));
    json_decref (r);
    r = s_run_limited (sh, "yes", 10000, 1000);
    CHECK (s_is (r, "outcome", "output_limit"));
    CHECK (s_true (r, "session_reset"));
    CHECK (strlen (s_str (r, "stdout")) == 1000);
    RUN (sh, "echo ok");
    CHECK (s_is (r, "stdout", "ok\n"));
    json_decref (r);
}

static void
s_test_utf8_repair (void)
{
    struct { const char *in; bool cut_tail; size_t cap; const char *out; bool lost; } cases [] = {
        { "plain", false, 100, "plain", false },
        { "a\xff" "b", false, 100, "a\xef\xbf\xbd" "b", false },
        { "\xc0\xaf", false, 100, "\xef\xbf\xbd\xef\xbf\xbd", false },     //  overlong
        { "\xed\xa0\x80", false, 100, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", false },
        { "ok\xe2\x82", true, 100, "ok", false },                           //  cut by the cap
        { "ok\xe2\x82", false, 100, "ok\xef\xbf\xbd", false },
        { "\xe2\x82\xac\xe2\x82\xac", false, 4, "\xe2\x82\xac", true },
        { "\xf0\x9f\x98\x80!", false, 100, "\xf0\x9f\x98\x80!", false },
        { "\xf4\x90\x80\x80", false, 100,
          "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", false },      //  > U+10FFFF
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        char out [128];
        bool lost;
        size_t n = utf8_repair (cases [i].in, strlen (cases [i].in), out, cases [i].cap,
                                cases [i].cut_tail, &lost);
        CHECK (n == strlen (cases [i].out) && memcmp (out, cases [i].out, n) == 0);
        CHECK (lost == cases [i].lost);
        CHECK (utf8_valid (out, n));
    }
}

//  An interpreter that dies between snippets is noticed and reported once.
static void
s_test_idle_exit (session_t *sh)
{
    //  $$ is the snippet's own bash; its parent, the shell host, is the session.
    json_t *r = s_run (sh, "(sleep 0.2; kill -9 $PPID) >/dev/null 2>&1 &");
    CHECK (s_is (r, "outcome", "ok"));
    json_decref (r);
    session_event_t event = SESSION_NOTHING;
    int64_t until = clock_mono_ms () + 3000;
    while (event == SESSION_NOTHING && clock_mono_ms () < until) {
        int fds [8];
        short events [8];
        struct pollfd items [8];
        int n = session_fds (sh, fds, events, 8);
        for (int i = 0; i < n; i++)
            items [i] = (struct pollfd) { fds [i], events [i], 0 };
        poll (items, (nfds_t) n, 100);
        event = session_step (sh);
    }
    CHECK (event == SESSION_EXITED);
    CHECK (!session_alive (sh));
    CHECK (waitpid (-1, NULL, WNOHANG) <= 0);       //  nothing left to reap
    r = s_run (sh, "echo again");
    CHECK (s_is (r, "stdout", "again\n"));
    CHECK (!s_true (r, "session_reset"));           //  the exit was reported on its own
    //  Died and not yet noticed: the next snippet still runs, in a new shell, and says so.
    json_decref (s_run (sh, "V=1; (sleep 0.1; kill -9 $PPID) >/dev/null 2>&1 &"));
    usleep (300 * 1000);
    RUN (sh, "echo \"again${V:-}\"");
    CHECK (s_is (r, "stdout", "again\n"));
    CHECK (s_true (r, "session_reset"));
    RUN (sh, "true");
    CHECK (!s_true (r, "session_reset"));
    json_decref (r);
}

//  Big snippets go through the command pipe in pieces; late background output is dropped.
static void
s_test_big_and_late (session_t *py, session_t *sh)
{
    size_t size = 3 * MIB;
    char *code = malloc (size + 32);
    CHECK (code != NULL);
    if (!code)
        return;
    memcpy (code, "len('", 5);
    memset (code + 5, 'a', size);
    strcpy (code + 5 + size, "')");
    json_t *r = s_run (py, code);
    CHECK (s_is (r, "value", "3145728"));
    json_decref (r);
    memcpy (code, "X='", 3);
    memset (code + 3, 'b', size);
    strcpy (code + 3 + size, "'; echo ${#X}");
    r = s_run (sh, code);
    CHECK (s_is (r, "stdout", "3145728\n"));
    free (code);
    //  Unset: the session carries its variables from one snippet's bash to the next.
    RUN (sh, "unset X; (sleep 0.2; echo late; echo late >&2) &");
    CHECK (s_is (r, "stdout", ""));
    usleep (400 * 1000);
    CHECK (session_step (sh) == SESSION_NOTHING);   //  reads and drops the late lines
    RUN (sh, "echo now");
    CHECK (s_is (r, "stdout", "now\n"));
    CHECK (s_is (r, "stderr", ""));
    json_decref (r);
}

//  Warm latency of `x += 1`, session_start to result, for the report.
static void
s_measure_warm (session_t *py, session_t *sh)
{
    session_t *sessions [] = { py, sh };
    const char *code [] = { "x = 0", "x=0" };
    const char *step [] = { "x += 1", "x=$((x+1))" };
    for (int i = 0; i < 2; i++) {
        json_decref (s_run (sessions [i], code [i]));
        double start = clock_mono_us ();
        int runs = 200, ok = 0;
        for (int k = 0; k < runs; k++) {
            json_t *r = s_run (sessions [i], step [i]);
            ok += s_is (r, "outcome", "ok");
            json_decref (r);
        }
        CHECK (ok == runs);
        log_info ("session_test: warm %s `%s`: %.3f ms per snippet", session_lang (sessions [i]),
                  step [i], (clock_mono_us () - start) / 1000.0 / runs);
    }
}

//  Steps session s until its result is ready, calling session_interrupt (id 7) once `after`
//  ms went by (-1: never), and gathering what session_output hands out into out (if not NULL).
static json_t *
s_drive (session_t *s, int64_t after, buf_t *out)
{
    int64_t at = after < 0 ? -1 : clock_mono_ms () + after;
    for (bool done = false; !done; ) {
        int fds [8];
        short events [8];
        struct pollfd items [8];
        int n = session_fds (s, fds, events, 8);
        for (int i = 0; i < n; i++)
            items [i] = (struct pollfd) { fds [i], events [i], 0 };
        poll (items, (nfds_t) n, 20);
        done = session_step (s) == SESSION_RESULT;
        const char *data;
        size_t got;
        while (out && (got = session_output (s, 0, &data)) > 0)
            buf_append (out, data, got);
        if (at >= 0 && clock_mono_ms () >= at) {
            CHECK (session_interrupt (s, 7) == 0);
            CHECK (session_interrupt (s, 7) == -1);     //  once; it is interrupting now
            at = -1;
        }
    }
    return session_take_result (s);
}

//  An interrupt stops the snippet, not the session: its state stays.
static void
s_test_interrupt (session_t *py, session_t *sh)
{
    session_limits_t limits = { 20000, MIB, 512, 128, 64, 1000, 256, 1 << 30, false };
    CHECK (session_interrupt (py, 7) == -1);            //  nothing runs
    const char *code = "kept = 41\nimport time\ntime.sleep(30)";
    CHECK (session_start (py, 7, code, strlen (code), &limits, NULL) == 0);
    CHECK (session_interrupt (py, 8) == -1);            //  another id
    double t0 = clock_mono_us ();
    json_t *r = s_drive (py, 200, NULL);
    CHECK (s_is (r, "outcome", "interrupted") && !s_true (r, "session_reset"));
    CHECK (strcmp (json_string_value (json_object_get (json_object_get (r, "error"), "name")),
                   "KeyboardInterrupt") == 0);
    CHECK (clock_mono_us () - t0 < 5e6);
    json_decref (r);
    r = s_run (py, "kept + 1");
    CHECK (s_is (r, "value", "42"));
    json_decref (r);
    code = "there=here; sleep 30; echo not-reached";
    CHECK (session_start (sh, 7, code, strlen (code), &limits, NULL) == 0);
    r = s_drive (sh, 200, NULL);
    CHECK (s_is (r, "outcome", "interrupted") && !s_true (r, "session_reset"));
    CHECK (json_integer_value (json_object_get (r, "exit_code")) == 130);
    CHECK (!strstr (s_str (r, "stdout"), "not-reached"));
    json_decref (r);
    r = s_run (sh, "echo $there");
    CHECK (s_is (r, "stdout", "here\n"));
    json_decref (r);
    //  An interrupt the moment the run is sent (before the driver began it) still stops it,
    //  and never the driver: the session keeps its state.
    code = "import time\ntime.sleep(30)";
    for (int i = 0; i < 5; i++) {
        CHECK (session_start (py, 7, code, strlen (code), &limits, NULL) == 0);
        r = s_drive (py, 0, NULL);
        CHECK (s_is (r, "outcome", "interrupted") && !s_true (r, "session_reset"));
        json_decref (r);
    }
    r = s_run (py, "kept");
    CHECK (s_is (r, "value", "41"));
    json_decref (r);
    //  A snippet that will not stop for SIGINT loses its interpreter after the grace.
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(30)";
    CHECK (session_start (py, 7, code, strlen (code), &limits, NULL) == 0);
    t0 = clock_mono_us ();
    r = s_drive (py, 100, NULL);
    CHECK (s_is (r, "outcome", "interrupted") && s_true (r, "session_reset"));
    CHECK (clock_mono_us () - t0 < 6e6);
    json_decref (r);
}

//  A streamed snippet's output is handed out as it comes, all of it, in order, the last
//  bytes after its end too; an unstreamed one hands out nothing.
static void
s_test_stream (session_t *py)
{
    session_limits_t limits = { 20000, MIB, 512, 128, 64, 1000, 256, 1 << 30, true };
    const char *code = "import time\nfor i in range(5):\n    print('line', i, flush=True)\n"
                       "    time.sleep(0.05)\nprint('end', end='')";
    CHECK (session_start (py, 7, code, strlen (code), &limits, NULL) == 0);
    buf_t out = { 0 };
    json_t *r = s_drive (py, -1, &out);
    CHECK (out.data && strcmp (out.data, "line 0\nline 1\nline 2\nline 3\nline 4\nend") == 0);
    CHECK (s_is (r, "stdout", "line 0\nline 1\nline 2\nline 3\nline 4\nend"));
    json_decref (r);
    limits.stream = false;
    out.len = 0;
    CHECK (session_start (py, 7, code, strlen (code), &limits, NULL) == 0);
    r = s_drive (py, -1, &out);
    CHECK (out.len == 0 && s_is (r, "outcome", "ok"));
    json_decref (r);
    buf_free (&out);
}

int
session_test (void)
{
    CHECK (session_new ("ruby", "t", "x") == NULL);
    s_test_utf8_repair ();
    //  Sandboxed where we may (root); the same tests must pass either way.
    spawn_config_t config = { geteuid () == 0, 220000, 4, 0, 1, 512, 128, 64, NULL, CGROUP_NONE, NULL, NULL,
                              1000 };
    if (spawn_setup (&config) < 0) {
        config.sandbox = false;
        CHECK (spawn_setup (&config) == 0);
    }
    session_t *py = session_new ("python", "t", "t-py");
    session_t *sh = session_new ("shell", "t", "t-sh");
    CHECK (py && sh);
    if (!py || !sh)
        return -1;
    CHECK (!session_alive (py) && !session_busy (py));
    s_test_python_basics (py);
    s_test_python_errors (py);
    s_test_shell (sh);
    s_test_timeouts (py, sh);
    s_test_output_caps (py, sh);
    s_test_idle_exit (sh);
    s_test_big_and_late (py, sh);
    s_measure_warm (py, sh);
    s_test_interrupt (py, sh);
    s_test_stream (py);
    //  session_kill() of a running snippet ends it as killed.
    session_limits_t limits = { 10000, MIB, 512, 128, 64, 1000, 256, 1 << 30, false };
    CHECK (session_start (sh, 9, "sleep 50", 8, &limits, NULL) == 0);
    CHECK (session_busy (sh));
    CHECK (session_start (sh, 10, "true", 4, &limits, NULL) == -1);
    session_kill (sh);
    json_t *r = session_take_result (sh);
    CHECK (s_is (r, "outcome", "killed") && s_true (r, "session_reset"));
    json_decref (r);
    session_destroy (&py);
    session_destroy (&sh);
    CHECK (py == NULL && sh == NULL);
    CHECK (waitpid (-1, NULL, WNOHANG) <= 0);
    spawn_shutdown ();
    return 0;
}
