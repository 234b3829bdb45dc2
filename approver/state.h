/*  approver/state.h: the approver's own small SQLite file (approver.db in its directory):
    which request got which Slack message and response_url, the last broker event handled,
    clicks already seen, decisions taken, and the outbox of Slack deliveries. The broker's
    database stays the record of decisions; this file only stops double posts and double
    clicks across restarts. */
#ifndef RG_APPROVER_STATE_H
#define RG_APPROVER_STATE_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _state_t state_t;

//  Opens (creating if needed) the state file. NULL with a logged error on failure.
state_t *state_new (const char *path);
void state_destroy (state_t **self_p);

//  Groups the calls that follow into one transaction (all or nothing across a crash).
int state_begin (state_t *self);
int state_commit (state_t *self);
void state_rollback (state_t *self);

int64_t state_last_seq (state_t *self);
int state_set_last_seq (state_t *self, int64_t seq);

//  A request the approver posted (or is posting). Record fields: id, webhook, response_url,
//  url_seen_ms, url_uses, rendered, final, rev. NULL if unknown (caller owns the result).
json_t *state_request (state_t *self, int64_t id);
int state_add_request (state_t *self, int64_t id, const char *webhook, const char *rendered);
//  Remembers the freshest response_url for a request (each click brings a new one).
int state_set_response_url (state_t *self, int64_t id, const char *url, int64_t now_ms);
int state_use_response_url (state_t *self, int64_t id);
int state_set_rendered (state_t *self, int64_t id, const char *rendered, bool final, int rev);

//  Records key; returns 1 if it was seen before, 0 if new, -1 on error.
int state_seen (state_t *self, const char *key, int64_t now_ms);

//  Decisions the broker accepted from Slack users (shown as <@U..> mentions).
int state_add_decision (state_t *self, int64_t id, const char *slack_user, const char *principal,
                        const char *action);
bool state_has_decision (state_t *self, int64_t id, const char *slack_user, const char *action);
//  {principal: slack_user} for request id (caller owns).
json_t *state_slack_ids (state_t *self, int64_t id);

//  The outbox. kind: "post" (first message), "followup", "update", "ephemeral".
int state_job_add (state_t *self, int64_t request_id, const char *kind, const char *url,
                   const char *body, int64_t now_ms);
//  Jobs due at now_ms that are first in line for their URL (oldest first), as an array of
//  {id, request_id, kind, url, body, attempts, created_at}. Caller owns.
json_t *state_jobs_due (state_t *self, int64_t now_ms);
int64_t state_jobs_count (state_t *self);
int state_job_done (state_t *self, int64_t job_id);
int state_job_retry (state_t *self, int64_t job_id, int attempts, int64_t next_at_ms);
//  Moves a job to the failures table with what Slack answered.
int state_job_failed (state_t *self, int64_t job_id, long status, const char *answer);

int state_test (void);
#endif
