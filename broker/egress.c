/*  broker/egress.c: a run's egress record, from the worker's result to the store. Each
    connection the run's proxy saw becomes an `egress` event of the request, written just
    before the run's `done` (the result's own transition), and the totals become columns of
    the request that `history` shows. The entries were checked in full when the frame was
    read (common/egress_check.c, through proto_parse_worker): a result with one bad entry never
    gets here, it is refused and its request ends as any refused result does. */
#include "broker/egress.h"
#include "broker/backlog.h"
#include "common/check.h"

//  egress_totals key -> the field store_transition takes for `done`.
static const char *s_totals[][2] = {
    { "connections", "egress_connections" }, { "denied", "egress_denied" },
    { "bytes_out", "egress_bytes_out" }, { "bytes_in", "egress_bytes_in" },
    { "dropped", "egress_dropped" },
};

int
egress_fields (json_t *result, json_t *fields)
{
    json_t *totals = json_object_get (result, "egress_totals");
    if (!json_is_object (totals))
        return 0;
    for (size_t i = 0; i < sizeof s_totals / sizeof s_totals[0]; i++) {
        json_t *v = json_object_get (totals, s_totals[i][0]);
        if (v && json_object_set (fields, s_totals[i][1], v) != 0)
            return -1;
    }
    return 0;
}

void
egress_record (broker_t *broker, int64_t id, const char *worker, json_t *result)
{
    size_t i;
    json_t *entry;
    //  The backlog keeps a reference to each entry: nothing changes the result afterwards.
    json_array_foreach (json_object_get (result, "egress"), i, entry)
        backlog_event (broker, id, "egress", worker, entry);
}

//  --------------------------------------------------------------------------------------
//  Self-test

int
egress_record_test (void)
{
    json_t *result = json_pack ("{s:s, s:{s:i, s:i, s:i, s:i, s:i}}", "outcome", "ok",
                                "egress_totals", "connections", 3, "denied", 1, "bytes_out",
                                517, "bytes_in", 4096, "dropped", 0);
    json_t *fields = json_object ();
    CHECK (egress_fields (result, fields) == 0);
    CHECK (json_integer_value (json_object_get (fields, "egress_connections")) == 3);
    CHECK (json_integer_value (json_object_get (fields, "egress_denied")) == 1);
    CHECK (json_integer_value (json_object_get (fields, "egress_bytes_out")) == 517);
    CHECK (json_integer_value (json_object_get (fields, "egress_bytes_in")) == 4096);
    CHECK (json_integer_value (json_object_get (fields, "egress_dropped")) == 0
           && json_object_get (fields, "egress_dropped"));
    CHECK (json_object_size (fields) == 5);
    json_decref (fields);
    //  No grant, no totals: the columns stay NULL.
    json_object_del (result, "egress_totals");
    fields = json_object ();
    CHECK (egress_fields (result, fields) == 0 && json_object_size (fields) == 0);
    json_decref (fields);
    json_decref (result);
    return 0;
}
