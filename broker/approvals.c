/*  broker/approvals.c: approvals.
    Rules, in the order they are checked: only approver and admin keys decide (agents never);
    `on_behalf_of` is honoured only from a gateway key (an approver whose cert groups include
    `gateway`) and must name a trusted approver or admin; nobody decides on a request they
    submitted; the rule's approver list (principals or groups), when set, must include the
    decider; each decider counts once; a deny needs a reason and is final; the quorum counts
    distinct approvers. A request whose stored code no longer hashes to what was submitted
    is denied instead of run. */
#include "broker/approvals.h"
#include "common/keys.h"
#include "common/proto.h"
#include "common/util.h"

typedef struct {
    int64_t expires;            //  wall-clock ms; 0 = never
    char bind[65];              //  bind_sha256 as first seen by this broker
} parked_t;

struct _approvals_t {
    zhashx_t *parked;           //  id as text -> parked_t
};

approvals_t *
approvals_new (void)
{
    approvals_t *self = (approvals_t *) zmalloc (sizeof (approvals_t));
    self->parked = zhashx_new ();
    zhashx_set_destructor (self->parked, (zhashx_destructor_fn *) zstr_free);
    return self;
}

void
approvals_destroy (approvals_t **self_p)
{
    if (*self_p) {
        zhashx_destroy (&(*self_p)->parked);
        free (*self_p);
        *self_p = NULL;
    }
}

void
approvals_track (broker_t *broker, json_t *row)
{
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) json_integer_value (json_object_get (row, "id")));
    parked_t *p = (parked_t *) zmalloc (sizeof (parked_t));
    const char *expires = json_string_value (json_object_get (json_object_get (row, "review"), "expires_at"));
    p->expires = expires ? time_parse_iso8601 (expires) : 0;
    const char *bind = json_string_value (json_object_get (row, "bind_sha256"));
    snprintf (p->bind, sizeof p->bind, "%s", bind ? bind : "");
    zhashx_update (broker->approvals->parked, key, p);
}

void
approvals_forget (broker_t *broker, int64_t id)
{
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) id);
    zhashx_delete (broker->approvals->parked, key);
}

zlistx_t *
approvals_due (broker_t *broker)
{
    approvals_t *self = broker->approvals;
    int64_t now = clock_wall_ms ();
    zlistx_t *due = zlistx_new ();
    zlistx_set_destructor (due, (zlistx_destructor_fn *) zstr_free);
    zlistx_t *keys = zhashx_keys (self->parked);
    for (char *key = (char *) zlistx_first (keys); key; key = (char *) zlistx_next (keys)) {
        parked_t *p = (parked_t *) zhashx_lookup (self->parked, key);
        if (p->expires && p->expires <= now) {
            zlistx_add_end (due, strdup (key));
            zhashx_delete (self->parked, key);
        }
    }
    zlistx_destroy (&keys);
    return due;
}

void
approvals_pending (broker_t *broker, caller_t *c, json_t *msg)
{
    if (strcmp (c->role, "approver") != 0 && strcmp (c->role, "admin") != 0) {
        broker_refuse (broker, c, PROTO_E_FORBIDDEN,
                       "only approver and admin keys list pending requests");
        return;
    }
    //  A page, oldest first: a reply never carries every parked snippet at once (a 262 MB
    //  reply stalled the loop for seconds).
    json_t *limit = json_object_get (msg, "limit");
    if (limit && json_integer_value (limit) < 1) {
        broker_refuse (broker, c, PROTO_E_BAD_VALUE, "field 'limit' is out of range (1-500)");
        return;
    }
    size_t most = limit ? (size_t) json_integer_value (limit) : 100, bytes = 0;
    json_int_t after = json_integer_value (json_object_get (msg, "after")), last = after;
    const char *session = json_string_value (json_object_get (msg, "session"));
    json_t *ids = NULL, *rows = json_array ();
    bool more = false;
    size_t i;
    json_t *id;
    if (store_ids_in_state (broker->store, "pending_approval", &ids) == 0)
        json_array_foreach (ids, i, id) {
            if (json_integer_value (id) <= after)
                continue;
            if (json_array_size (rows) >= most || bytes >= PROTO_PENDING_BYTES) {
                more = true;
                break;
            }
            json_t *row = store_get (broker->store, json_integer_value (id));
            if (row && (!session || strcmp (session, json_string_value (json_object_get (row, "session"))) == 0)) {
                bytes += json_string_length (json_object_get (row, "code"))
                       + json_string_length (json_object_get (row, "reason")) + 1024;
                json_array_append (rows, row);
            }
            last = json_integer_value (id);
            json_decref (row);
        }
    json_decref (ids);
    broker_send_client (broker, c->routing, proto_reply_ok (c->rid, json_pack ("{s:o, s:b, s:I}",
                        "requests", rows, "more", more, "after", last)));
}

//  Who decides: the caller, or the human a gateway speaks for. Fills principal and groups
//  (strings owned by the caller's buffers); NULL and *why on refusal.
static const char *
s_decider (broker_t *broker, caller_t *c, json_t *msg, char *groups, size_t size, const char **why)
{
    const char *behalf = json_string_value (json_object_get (msg, "on_behalf_of"));
    if (strcmp (c->role, "approver") != 0 && strcmp (c->role, "admin") != 0) {
        *why = "only approver and admin keys decide; agent keys never approve";
        return NULL;
    }
    if (!behalf) {
        snprintf (groups, size, "%s", c->groups ? c->groups : "");
        return c->principal;
    }
    if (strcmp (c->role, "approver") != 0 || !csv_has (c->groups, "gateway", 7)) {
        *why = "on_behalf_of is accepted only from a gateway key";
        return NULL;
    }
    char path[1024];
    snprintf (path, sizeof path, "%s/keys/trusted/%s.cert", broker->cfg.dir, behalf);
    zcert_t *cert = strchr (behalf, '/') || behalf[0] == '.' ? NULL
                  : (zsys_file_exists (path) ? zcert_load (path) : NULL);
    const char *role = cert ? zcert_meta (cert, "role") : NULL;
    bool ok = role && (strcmp (role, "approver") == 0 || strcmp (role, "admin") == 0);
    snprintf (groups, size, "%s", cert && zcert_meta (cert, "groups") ? zcert_meta (cert, "groups") : "");
    zcert_destroy (&cert);
    if (!ok) {
        *why = "on_behalf_of must name a trusted approver or admin key";
        return NULL;
    }
    return behalf;
}

//  True if the rule that parked the request lets this principal (with groups) decide.
static bool
s_allowed (json_t *row, const char *who, const char *groups)
{
    json_t *approvers = json_object_get (json_object_get (row, "review"), "approvers");
    json_t *principals = json_object_get (approvers, "principals");
    json_t *wanted = json_object_get (approvers, "groups");
    if (json_array_size (principals) == 0 && json_array_size (wanted) == 0)
        return true;
    size_t i;
    json_t *v;
    json_array_foreach (principals, i, v)
        if (json_is_string (v) && strcmp (json_string_value (v), who) == 0)
            return true;
    json_array_foreach (wanted, i, v)
        if (json_is_string (v) && csv_has (groups, json_string_value (v), json_string_length (v)))
            return true;
    return false;
}

//  Approvals so far (distinct approvers), and whether `who` already decided.
static int
s_count (json_t *row, const char *who, bool *decided)
{
    int n = 0;
    size_t i;
    json_t *a;
    *decided = false;
    json_array_foreach (json_object_get (row, "approvals"), i, a) {
        const char *approver = json_string_value (json_object_get (a, "approver"));
        if (approver && strcmp (approver, who) == 0)
            *decided = true;
        if (strcmp (json_string_value (json_object_get (a, "decision")), "approve") == 0)
            n++;
    }
    return n;
}

//  The stored bytes must still hash to what was submitted (and parked), or nothing runs.
static bool
s_intact (broker_t *broker, json_t *row)
{
    const char *lang = json_string_value (json_object_get (row, "lang"));
    const char *session = json_string_value (json_object_get (row, "session"));
    const char *code = json_string_value (json_object_get (row, "code"));
    const char *bind = json_string_value (json_object_get (row, "bind_sha256"));
    if (!lang || !session || !code || !bind)
        return false;
    char hash[65];
    bind_sha256 (lang, session, code, json_string_length (json_object_get (row, "code")), hash);
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) json_integer_value (json_object_get (row, "id")));
    parked_t *p = (parked_t *) zhashx_lookup (broker->approvals->parked, key);
    return strcmp (hash, bind) == 0 && (!p || strcmp (p->bind, hash) == 0);
}

int
approvals_vet (broker_t *broker, caller_t *c, json_t *msg, bool approve, verdict_t *v,
               const char **code, const char **why)
{
    memset (v, 0, sizeof *v);
    char groups[512];
    *why = NULL;
    *code = PROTO_E_FORBIDDEN;
    const char *who = s_decider (broker, c, msg, groups, sizeof groups, why);
    if (!who)
        return -1;
    const char *reason = json_string_value (json_object_get (msg, "reason"));
    if (!approve && (!reason || !*reason)) {
        *code = PROTO_E_MISSING;
        *why = "a deny needs a reason";
        return -1;
    }
    json_t *row = store_get (broker->store, json_integer_value (json_object_get (msg, "id")));
    bool decided = false;
    int approvals = row ? s_count (row, who, &decided) : 0;
    json_int_t quorum = row ? json_integer_value (json_object_get (json_object_get (row, "review"), "quorum")) : 0;
    if (!row) {
        *why = "no such request";
        *code = PROTO_E_NOT_FOUND;
    }
    else if (strcmp (json_string_value (json_object_get (row, "state")), "pending_approval") != 0) {
        *why = "the request is not pending approval";
        *code = PROTO_E_BAD_STATE;
    }
    else if (strcmp (json_string_value (json_object_get (row, "principal")), who) == 0)
        *why = "nobody approves or denies what they submitted";
    else if (!s_allowed (row, who, groups))
        *why = "the rule does not list you among its approvers";
    else if (decided) {
        *why = "you already decided on this request";
        *code = PROTO_E_DUPLICATE;
    }
    else if (!s_intact (broker, row)) {
        v->tampered = v->deny = true;
        v->message = "stored code no longer matches what was submitted";
    }
    json_decref (row);
    if (*why)
        return -1;
    if (v->tampered)
        return 0;
    v->approval = json_pack ("{s:s, s:s, s:s}", "approver", who,
                             "via", json_object_get (msg, "slack_user") ? "slack" : "cli",
                             "decision", approve ? "approve" : "deny");
    if (reason)
        json_object_set_new (v->approval, "reason", json_string (reason));
    if (json_object_get (msg, "on_behalf_of"))
        json_object_set_new (v->approval, "on_behalf_of", json_string (c->principal));
    if (json_object_get (msg, "slack_user"))
        json_object_set (v->approval, "slack_user", json_object_get (msg, "slack_user"));
    v->deny = !approve;
    v->message = reason;
    v->quorum = approve && approvals + 1 >= (quorum > 0 ? quorum : 1);
    return 0;
}
