/*  common/states.h: the request states and the edges between them, in one table that the
    store, verify, the broker, the approver and the CLI all read. The broker's table of
    events (broker/state.c) says which event drives each edge; this one says which edges
    exist. The diagram is in README.md, Request states. */
#ifndef RG_STATES_H
#define RG_STATES_H
#include <stdbool.h>
#include <stddef.h>

//  True if name is a request state. NULL is not.
bool states_is_known (const char *name);

//  True for the states a request never leaves (done, denied, expired, cancelled, lost).
bool states_is_terminal (const char *name);

//  True if from -> to is an edge of the request state machine.
bool states_edge_legal (const char *from, const char *to);

//  True if `to` can follow `from` through one or more edges (not `from` itself).
bool states_follows (const char *from, const char *to);

//  The states in table order (the order of the requests.state CHECK): i < states_count ().
size_t states_count (void);
const char *states_name (size_t i);

//  The edges, i < states_edge_count (): 0 and sets *from, *to, or -1 past the end.
size_t states_edge_count (void);
int states_edge (size_t i, const char **from, const char **to);

int states_test (void);

#endif
