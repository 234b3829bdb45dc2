/*  broker/fleet.h: the workers as a fleet (see fleet.c): the admin ops `workers` and
    `drain`, draining a worker to empty, the workers that left, and queued requests whose
    labels no worker has. */
#ifndef RG_FLEET_H
#define RG_FLEET_H
#include "broker/broker.h"
#include "broker/dispatch.h"

#define FLEET_GONE_MAX      100         //  workers that left, kept for `workers`...
#define FLEET_GONE_MS       3600000     //  ...for at most this long

fleet_t *fleet_new (void);
void fleet_destroy (fleet_t **self_p);

//  `workers` (admin): every live worker and the last ones that left, each {name, address,
//  labels, slots, running, memory_mb, sandbox, sessions, last_heartbeat, state: live |
//  draining | lost, drained}; lost ones also {lost_at, why}.
void fleet_workers (broker_t *broker, caller_t *c, json_t *msg);

//  `drain` {name} (admin): the worker is sent `drain` and takes no new session; its idle
//  sessions are closed now, its busy ones once their run ends (each a `session_closed` event
//  with reason "drained"), and once it holds nothing it is sent `drained` (a `worker_drained`
//  event). Every event has the admin as actor. Replies with the worker's entry.
void fleet_drain (broker_t *broker, caller_t *c, json_t *msg);

//  A worker joined (its sessions adopted): the ones that left under its name are forgotten.
//  drain_by: the admin who drained the connection it replaces, or NULL; it goes on draining.
void fleet_joined (broker_t *broker, worker_t *w, const char *drain_by);

//  After anything that may end a session or a run of w: if w drains, its sessions that run
//  nothing are closed, and once it holds nothing it is told so.
void fleet_settle (broker_t *broker, worker_t *w);

//  w is about to be forgotten (lost, or reconnected): kept for `workers` as lost, with why.
void fleet_left (broker_t *broker, worker_t *w, const char *why);

//  Every 100 ms: draining workers settled; queued requests whose labels no live worker that
//  takes new sessions has had for --placement-wait-ms are cancelled by the broker.
void fleet_tick (broker_t *broker);

#endif
