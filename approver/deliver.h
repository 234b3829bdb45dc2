/*  approver/deliver.h: getting messages to Slack. One libcurl POST per attempt, judged the
    way reference/slack.md section 1 says Slack answers; the outbox (approver/state.c) makes
    queued messages survive restarts, go out in order per URL, and at most one per second per
    webhook. */
#ifndef RG_DELIVER_H
#define RG_DELIVER_H
#include "approver/state.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define DELIVER_MAX_ATTEMPTS    20
#define DELIVER_MAX_AGE_MS      (60 * 60 * 1000)    //  then a retryable failure is given up
#define DELIVER_SPACING_MS      1000                //  Slack: one message per second per webhook

typedef enum {
    DELIVER_OK,                 //  200 (and "ok" from a webhook)
    DELIVER_RETRY,              //  network error, timeout, 5xx, an HTML error page
    DELIVER_LIMITED,            //  429: wait Retry-After
    DELIVER_PERMANENT           //  any other answer: retrying cannot help
} deliver_verdict_t;

typedef struct {
    long status;                //  HTTP status, 0 if none arrived
    char answer[200];           //  start of the body, or curl's error text
    int64_t retry_after_ms;     //  from Retry-After; -1 if absent
    bool transport_error;
} deliver_reply_t;

typedef struct _deliver_t deliver_t;

//  Called when a job is given up (permanent answer, or too many attempts): the job object as
//  state_jobs_due returns it, plus the last reply.
typedef void (deliver_fail_fn) (void *arg, json_t *job, const deliver_reply_t *reply);

deliver_t *deliver_new (state_t *state, int timeout_ms);
void deliver_destroy (deliver_t **self_p);
void deliver_on_fail (deliver_t *self, deliver_fail_fn *fn, void *arg);

//  Attempts the jobs that are due. Returns how many ms the caller may sleep before the next
//  one is due (at most cap_ms).
int deliver_tick (deliver_t *self, int64_t now_ms, int cap_ms);

//  One POST of a JSON body; fills reply. 0, or -1 if no HTTP answer came (reply says why).
int deliver_post (deliver_t *self, const char *url, const char *body, deliver_reply_t *reply);

//  How to treat reply; `webhook` demands the literal "ok" body of an incoming webhook.
deliver_verdict_t deliver_judge (const deliver_reply_t *reply, bool webhook);

//  Wait before retry number `attempts` (1, 2, ...): 1 s doubling to at most 60 s.
int64_t deliver_backoff_ms (int attempts);

//  URL with its secret path hidden, for logs ("https://hooks.slack.com/…Xy9z").
void deliver_redact (const char *url, char *out, size_t size);

int deliver_test (void);
#endif
