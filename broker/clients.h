/*  broker/clients.h: the client protocol's operations (submit, status, await, ...). */
#ifndef RG_CLIENTS_H
#define RG_CLIENTS_H
#include "broker/broker.h"

//  Handles one message from the client socket (takes ownership of msg). Every request gets
//  exactly one reply (now or, for long polls, later); bad input gets an error reply and a
//  `rejected` event, and changes nothing else.
void clients_message (broker_t *broker, zmsg_t **msg_p);

#endif
