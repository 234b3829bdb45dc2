/*  common/states.c: owns the request states and the edges between them (see states.h).
    Every state name is spelled once, here; the edges name states by their index so the
    table cannot list an edge to a state that does not exist. */
#include "common/states.h"
#include "common/check.h"
#include <string.h>

typedef enum {
    S_RECEIVED, S_PENDING_APPROVAL, S_QUEUED, S_RUNNING,
    S_DONE, S_DENIED, S_EXPIRED, S_CANCELLED, S_LOST, S_COUNT
} state_id_t;

static const struct {
    const char *name;
    bool terminal;
} s_states[S_COUNT] = {
    [S_RECEIVED]         = { "received", false },           //  recorded, not yet decided
    [S_PENDING_APPROVAL] = { "pending_approval", false },   //  parked for approvers
    [S_QUEUED]           = { "queued", false },             //  waiting for a worker slot
    [S_RUNNING]          = { "running", false },            //  sent to a worker
    [S_DONE]             = { "done", true },                //  the worker answered
    [S_DENIED]           = { "denied", true },              //  the policy or an approver said no
    [S_EXPIRED]          = { "expired", true },             //  no quorum within the ttl
    [S_CANCELLED]        = { "cancelled", true },           //  by its owner or an admin
    [S_LOST]             = { "lost", true },                //  its worker or the broker died
};

static const state_id_t s_edges[][2] = {
    { S_RECEIVED, S_PENDING_APPROVAL }, { S_RECEIVED, S_QUEUED }, { S_RECEIVED, S_DENIED },
    { S_PENDING_APPROVAL, S_QUEUED }, { S_PENDING_APPROVAL, S_DENIED },
    { S_PENDING_APPROVAL, S_EXPIRED }, { S_PENDING_APPROVAL, S_CANCELLED },
    { S_QUEUED, S_RUNNING }, { S_QUEUED, S_CANCELLED },
    { S_RUNNING, S_DONE }, { S_RUNNING, S_LOST },
};
#define EDGES (sizeof s_edges / sizeof s_edges[0])

//  The index of a state, or S_COUNT if name is not one.
static state_id_t
s_find (const char *name)
{
    for (int i = 0; name && i < S_COUNT; i++)
        if (strcmp (name, s_states[i].name) == 0)
            return (state_id_t) i;
    return S_COUNT;
}

bool
states_is_known (const char *name)
{
    return s_find (name) < S_COUNT;
}

bool
states_is_terminal (const char *name)
{
    state_id_t i = s_find (name);
    return i < S_COUNT && s_states[i].terminal;
}

static bool
s_edge (state_id_t from, state_id_t to)
{
    for (size_t i = 0; i < EDGES; i++)
        if (s_edges[i][0] == from && s_edges[i][1] == to)
            return true;
    return false;
}

bool
states_edge_legal (const char *from, const char *to)
{
    state_id_t f = s_find (from), t = s_find (to);
    return f < S_COUNT && t < S_COUNT && s_edge (f, t);
}

bool
states_follows (const char *from, const char *to)
{
    state_id_t f = s_find (from), t = s_find (to);
    bool seen[S_COUNT] = { false };
    if (f < S_COUNT)
        seen[f] = true;
    //  Marks what one more edge reaches until nothing changes: S_COUNT passes at most.
    for (bool grew = true; grew; ) {
        grew = false;
        for (size_t i = 0; i < EDGES; i++)
            if (seen[s_edges[i][0]] && !seen[s_edges[i][1]])
                seen[s_edges[i][1]] = grew = true;
    }
    return t < S_COUNT && t != f && seen[t];
}

size_t
states_count (void)
{
    return S_COUNT;
}

const char *
states_name (size_t i)
{
    return i < S_COUNT ? s_states[i].name : NULL;
}

size_t
states_edge_count (void)
{
    return EDGES;
}

int
states_edge (size_t i, const char **from, const char **to)
{
    if (i >= EDGES)
        return -1;
    *from = s_states[s_edges[i][0]].name;
    *to = s_states[s_edges[i][1]].name;
    return 0;
}

//  --------------------------------------------------------------------------------------
//  Self-test.

//  The shape every part relies on: received is the one start, terminal states have no way
//  out and every other state has one, every state is reachable, names are distinct.
static void
s_test_shape (void)
{
    for (int i = 0; i < S_COUNT; i++) {
        bool in = false, out = false;
        for (size_t e = 0; e < EDGES; e++) {
            in |= s_edges[e][1] == (state_id_t) i;
            out |= s_edges[e][0] == (state_id_t) i;
        }
        CHECK (in == (i != S_RECEIVED));
        CHECK (out == !s_states[i].terminal);
        CHECK (i == S_RECEIVED || states_follows ("received", s_states[i].name));
        CHECK (s_find (s_states[i].name) == (state_id_t) i);
    }
    for (size_t e = 0; e < EDGES; e++)
        for (size_t d = 0; d < e; d++)
            CHECK (s_edges[e][0] != s_edges[d][0] || s_edges[e][1] != s_edges[d][1]);
}

int
states_test (void)
{
    CHECK (states_is_known ("pending_approval") && !states_is_known ("approval"));
    CHECK (!states_is_known (NULL) && !states_is_known (""));
    CHECK (states_is_terminal ("lost") && states_is_terminal ("done"));
    CHECK (!states_is_terminal ("running") && !states_is_terminal (NULL));
    CHECK (!states_is_terminal ("bogus"));
    CHECK (states_edge_legal ("received", "queued") && states_edge_legal ("running", "lost"));
    CHECK (!states_edge_legal ("received", "running") && !states_edge_legal ("done", "lost"));
    CHECK (!states_edge_legal (NULL, "queued") && !states_edge_legal ("queued", NULL));
    CHECK (states_follows ("pending_approval", "done"));
    CHECK (!states_follows ("pending_approval", "received"));
    CHECK (!states_follows ("queued", "queued") && !states_follows ("queued", "expired"));
    CHECK (!states_follows (NULL, "queued") && !states_follows ("queued", NULL));
    CHECK (states_count () == 9 && states_name (9) == NULL);
    CHECK (strcmp (states_name (0), "received") == 0);
    const char *from = NULL, *to = NULL;
    CHECK (states_edge (0, &from, &to) == 0 && strcmp (from, "received") == 0);
    CHECK (states_edge (states_edge_count (), &from, &to) == -1);
    s_test_shape ();
    return 0;
}
