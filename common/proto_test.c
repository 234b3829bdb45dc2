/*  common/proto_test.c: the self-test of common/proto.c: every message shape, both
    directions, and the builders' messages passing the other end's reader. */
#include "common/proto.h"
#include "common/check.h"
#include "common/util.h"
#include <string.h>

static const char *
s_code_of (const char *text)
{
    static proto_error_t err;
    json_t *msg, *rid;
    if (proto_parse_client (text, strlen (text), &msg, &rid, &err) == 0) {
        json_decref (msg);
        json_decref (rid);
        return "ok";
    }
    json_decref (rid);
    return err.code;
}

//  0 if msg (consumed), serialized, passes the reader (the broker's for a worker's message,
//  the worker's for the broker's); the reader's code otherwise.
static const char *
s_round_trip (json_t *msg, bool to_worker)
{
    char *text = json_dumps (msg, JSON_COMPACT);
    json_decref (msg);
    json_t *back = NULL;
    proto_error_t err = { "ok", "" };
    int rc = to_worker ? proto_parse_broker (text, strlen (text), &back, &err)
                       : proto_parse_worker (text, strlen (text), &back, &err);
    json_decref (back);
    free (text);
    return rc == 0 ? "ok" : err.code;
}

//  A ready's labels and memory pass the broker's reader; bad labels are refused by name.
static void
s_test_capacity (void)
{
    json_t *labels = json_pack ("[s, s]", "gpu", "big-mem.2_x");
    json_t *ready = proto_ready ("w1", 2, "none", json_array (), json_array ());
    CHECK (proto_ready_capacity (ready, labels, 65536) == 0);
    CHECK (strcmp (s_round_trip (json_incref (ready), false), "ok") == 0);
    const char *bad[] = { "", "a b", "a,b", "\u00e9", NULL };
    for (size_t i = 0; bad[i]; i++) {
        char text[128];
        snprintf (text, sizeof text, "{\"op\":\"ready\",\"name\":\"w\",\"slots\":1,"
                  "\"labels\":[\"ok\",\"%s\"]}", bad[i]);
        json_t *msg = NULL;
        proto_error_t err;
        CHECK (proto_parse_worker (text, strlen (text), &msg, &err) == -1
               && strcmp (err.code, PROTO_E_BAD_VALUE) == 0 && strstr (err.message, "labels"));
    }
    json_array_clear (labels);
    for (int i = 0; i < PROTO_MAX_LABELS + 1; i++)
        json_array_append_new (labels, json_sprintf ("l%d", i));
    json_object_set (ready, "labels", labels);
    CHECK (strcmp (s_round_trip (json_incref (ready), false), PROTO_E_BAD_VALUE) == 0);
    json_object_set_new (ready, "labels", json_pack ("[i]", 7));
    CHECK (strcmp (s_round_trip (json_incref (ready), false), PROTO_E_BAD_VALUE) == 0);
    json_object_set_new (ready, "labels", json_string ("gpu"));
    CHECK (strcmp (s_round_trip (json_incref (ready), false), PROTO_E_BAD_TYPE) == 0);
    json_object_del (ready, "labels");
    json_object_set_new (ready, "memory_mb", json_integer (-1));
    CHECK (strcmp (s_round_trip (ready, false), PROTO_E_BAD_VALUE) == 0);
    json_decref (labels);
    CHECK (proto_label_valid ("gpu") && !proto_label_valid ("g:pu") && !proto_label_valid (NULL));
}

//  Each end sends what the other end's reader takes, and the worker's reader refuses what
//  the broker never sends.
static void
s_test_link (void)
{
    json_t *limits = json_pack ("{s:i, s:i}", "timeout_ms", 1000, "output_bytes", 4096);
    CHECK (strcmp (s_round_trip (proto_run (7, "alice", "s1", "python", "1", limits, NULL), true), "ok") == 0);
    json_t *network = json_pack ("{s:[s], s:[s]}", "allow", "files.example.com:443", "methods", "GET");
    json_t *run = proto_run (7, "alice", "s1", "python", "1", limits, network);
    CHECK (run && json_equal (json_object_get (run, "network"), network));
    CHECK (strcmp (s_round_trip (run, true), "ok") == 0);
    run = proto_run (7, "alice", "s1", "python", "1", limits, NULL);
    CHECK (run && !json_object_get (run, "network"));
    json_object_set_new (run, "network", json_pack ("[s]", "files.example.com:443"));
    CHECK (strcmp (s_round_trip (run, true), PROTO_E_BAD_TYPE) == 0);
    json_decref (network);
    json_decref (limits);
    CHECK (strcmp (s_round_trip (proto_close ("alice", "s1", "shell"), true), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_heartbeat (), true), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_announce (), true), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_heartbeat (), false), "ok") == 0);
    json_t *held = json_pack ("[o]", proto_held ("alice", "s1", "python", 0));
    json_t *running = json_pack ("[o]", proto_held ("alice", "s2", "shell", 9));
    CHECK (strcmp (s_round_trip (proto_ready ("w1", 4, "namespaces", held, running), false), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_session_closed ("alice", "s1", "python", "exited", 1, 0),
                                 false), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_session_closed ("alice", "s1", "python", "exited", -1, 9),
                                 false), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_interrupt (7, "alice", "s1", "python"), true), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_output (7, "stdout", 0, "hi\n", 3), false), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_output (7, "stderr", 1, "a\0b", 3), false), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_drain (), true), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_drained (), true), "ok") == 0);
    s_test_capacity ();
    CHECK (strcmp (s_round_trip (json_pack ("{s:s}", "op", "exec"), true), PROTO_E_UNKNOWN_OP) == 0);
    CHECK (strcmp (s_round_trip (json_pack ("{s:s, s:i}", "op", "heartbeat", "x", 1), true),
                   PROTO_E_UNKNOWN_KEY) == 0);
    CHECK (strcmp (s_round_trip (json_pack ("{s:s, s:i, s:s, s:s, s:s, s:{}}", "op", "run", "id", 1,
                                            "owner", "a", "session", "s", "lang", "python", "limits"),
                                 true), PROTO_E_MISSING) == 0);
}

int
proto_test (void)
{
    s_test_link ();
    CHECK (strcmp (s_code_of ("{\"op\":\"ping\"}"), "ok") == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"submit\",\"rid\":\"a\",\"lang\":\"python\",\"code\":\"1\","
                              "\"session\":\"s1\"}"), "ok") == 0);
    CHECK (strcmp (s_code_of ("not json"), PROTO_E_BAD_JSON) == 0);
    CHECK (strcmp (s_code_of ("[1,2]"), PROTO_E_NOT_OBJECT) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"fly\"}"), PROTO_E_UNKNOWN_OP) == 0);
    CHECK (strcmp (s_code_of ("{\"rid\":1}"), PROTO_E_MISSING) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"ping\",\"evil\":1}"), PROTO_E_UNKNOWN_KEY) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"status\",\"id\":\"7\"}"), PROTO_E_BAD_TYPE) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"status\",\"id\":-7}"), PROTO_E_BAD_VALUE) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"status\"}"), PROTO_E_MISSING) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"submit\",\"lang\":\"perl\",\"code\":\"1\",\"session\":\"s\"}"),
                   PROTO_E_BAD_VALUE) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"submit\",\"lang\":\"shell\",\"code\":\"1\",\"session\":\"a b\"}"),
                   PROTO_E_BAD_VALUE) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"ping\",\"op\":\"ping\"}"), PROTO_E_BAD_JSON) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"ping\",\"rid\":\"\xff\"}"), PROTO_E_BAD_UTF8) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"ping\",\"rid\":\"\\u0000\"}"), PROTO_E_BAD_JSON) == 0);
    CHECK (strcmp (s_code_of (""), PROTO_E_BAD_JSON) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"revoke\",\"name\":\"bob\"}"), "ok") == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"revoke\",\"name\":5}"), PROTO_E_BAD_TYPE) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"revoke\"}"), PROTO_E_MISSING) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"prune\",\"before\":\"2026-11-28T00:00:00.000Z\"}"), "ok") == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"prune\",\"before\":1}"), PROTO_E_BAD_TYPE) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"prune\",\"before\":\"x\",\"actor\":\"me\"}"), PROTO_E_UNKNOWN_KEY) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"workers\"}"), "ok") == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"workers\",\"name\":\"w\"}"), PROTO_E_UNKNOWN_KEY) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"drain\",\"name\":\"w1\"}"), "ok") == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"drain\"}"), PROTO_E_MISSING) == 0);

    //  The rid survives a failed parse so the error reply can echo it.
    proto_error_t err;
    json_t *msg, *rid;
    const char *bad = "{\"op\":\"status\",\"rid\":\"r9\"}";
    CHECK (proto_parse_client (bad, strlen (bad), &msg, &rid, &err) == -1);
    CHECK (rid && strcmp (json_string_value (rid), "r9") == 0);
    char *reply = proto_reply_error (rid, err.code, err.message);
    CHECK (strstr (reply, "\"rid\":\"r9\"") && strstr (reply, "\"missing_field\""));
    free (reply);
    json_decref (rid);

    //  Frames above the limit are refused before they are parsed.
    size_t big = PROTO_MAX_FRAME + 1;
    char *huge = calloc (1, big);
    memset (huge, ' ', big);
    CHECK (proto_parse_client (huge, big, &msg, &rid, &err) == -1
           && strcmp (err.code, PROTO_E_TOO_LARGE) == 0);
    free (huge);

    //  Every prefix of a valid message is refused cleanly: the parser never asserts.
    const char *good = "{\"op\":\"submit\",\"lang\":\"python\",\"code\":\"x\",\"session\":\"s\"}";
    int refused = 0;
    for (size_t n = 0; n < strlen (good); n++)
        if (proto_parse_client (good, n, &msg, &rid, &err) == -1) {
            refused++;
            json_decref (rid);
        }
    CHECK (refused == (int) strlen (good));

    const char *w = "{\"op\":\"result\",\"id\":3,\"session\":\"s\",\"lang\":\"python\",\"outcome\":\"ok\"}";
    CHECK (proto_parse_worker (w, strlen (w), &msg, &err) == 0);
    json_decref (msg);
    //  A worker result may carry NUL (a snippet printed it); a client frame may not.
    const char *nul = "{\"op\":\"result\",\"id\":3,\"session\":\"s\",\"lang\":\"shell\","
                      "\"outcome\":\"ok\",\"stdout\":\"a\\u0000b\"}";
    CHECK (proto_parse_worker (nul, strlen (nul), &msg, &err) == 0
           && json_string_length (json_object_get (msg, "stdout")) == 3);
    json_decref (msg);
    //  A result with an egress record, and the outcome egress_limit; one bad entry refuses it.
    const char *eg = "{\"op\":\"result\",\"id\":3,\"session\":\"s\",\"lang\":\"python\","
                     "\"outcome\":\"egress_limit\",\"egress\":[{\"host\":\"h.example\",\"port\":443,"
                     "\"method\":\"CONNECT\",\"bytes_out\":1,\"bytes_in\":2,\"ms\":0.5,"
                     "\"outcome\":\"allowed\"}],\"egress_totals\":{\"connections\":1,\"denied\":0,"
                     "\"bytes_out\":1,\"bytes_in\":2,\"dropped\":0}}";
    CHECK (proto_parse_worker (eg, strlen (eg), &msg, &err) == 0);
    json_decref (msg);
    const char *eg_bad = "{\"op\":\"result\",\"id\":3,\"session\":\"s\",\"lang\":\"python\","
                         "\"outcome\":\"ok\",\"egress\":[{\"host\":\"h\",\"port\":443,"
                         "\"method\":\"GET\",\"bytes_out\":-1,\"bytes_in\":2,\"ms\":0.5,"
                         "\"outcome\":\"allowed\"}]}";
    CHECK (proto_parse_worker (eg_bad, strlen (eg_bad), &msg, &err) == -1
           && strcmp (err.code, PROTO_E_BAD_VALUE) == 0 && strstr (err.message, "bytes_out"));
    const char *eg_totals = "{\"op\":\"result\",\"id\":3,\"session\":\"s\",\"lang\":\"python\","
                            "\"outcome\":\"ok\",\"egress_totals\":{\"connections\":1}}";
    CHECK (proto_parse_worker (eg_totals, strlen (eg_totals), &msg, &err) == -1
           && strcmp (err.code, PROTO_E_MISSING) == 0);
    const char *closed = "{\"op\":\"session_closed\",\"session\":\"s\",\"lang\":\"shell\"}";
    CHECK (proto_parse_worker (closed, strlen (closed), &msg, &err) == -1
           && strcmp (err.code, PROTO_E_MISSING) == 0);
    //  An unknown key cut inside a character still gives a valid UTF-8 message.
    char split[128];
    snprintf (split, sizeof split, "{\"op\":\"ping\",\"%s\":1}",
              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9");
    CHECK (proto_parse_client (split, strlen (split), &msg, &rid, &err) == -1
           && strcmp (err.code, PROTO_E_UNKNOWN_KEY) == 0 && utf8_valid (err.message, strlen (err.message)));
    json_decref (rid);
    char *reply2 = proto_reply_error (NULL, err.code, err.message);
    CHECK (reply2 && strstr (reply2, "\"unknown_key\""));
    free (reply2);
    CHECK (proto_session_valid ("agent-1.work:main_2"));
    CHECK (!proto_session_valid (""));
    CHECK (!proto_session_valid ("../etc"  "/x"));
    return 0;
}
