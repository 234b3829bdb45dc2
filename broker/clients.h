/*  broker/clients.h: the client protocol's operations (submit, status, await, ...). */
#ifndef RG_CLIENTS_H
#define RG_CLIENTS_H
#include "broker/broker.h"

//  Handles one message from the client socket (takes ownership of msg). Every request gets
//  exactly one reply (now or, for long polls, later); bad input gets an error reply and a
//  `rejected` event, and changes nothing else.
void clients_message (broker_t *broker, zmsg_t **msg_p);

//  Policy decision for a new request. Until the policy engine lands every request is allowed.
//  Moves the request out of `received` and queues it when allowed.
void clients_decide (broker_t *broker, int64_t id, json_t *req);

#endif
