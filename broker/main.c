/*  broker/main.c: replgate-broker. Parses options, starts CURVE authentication before any
    socket binds, opens the store, recovers requests a previous run left behind, and runs the
    one event loop over the client and worker sockets. */
#include "broker/broker.h"
#include "broker/approvals.h"
#include "broker/backlog.h"
#include "broker/clients.h"
#include "broker/decide.h"
#include "broker/dispatch.h"
#include "broker/fleet.h"
#include "broker/launch.h"
#include "broker/notify.h"
#include "broker/outbox.h"
#include "broker/pass.h"
#include "broker/prune.h"
#include "broker/refusals.h"
#include "broker/state.h"
#include "broker/stream.h"
#include "broker/trust.h"
#include "broker/workers.h"
#include "common/keys.h"
#include "common/preflight.h"
#include "common/proto.h"
#include "common/util.h"
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <sodium.h>
#include <signal.h>
#include <sqlite3.h>
#include "default_json.h"

//  Frames above this are cut off by libzmq (the connection drops); below it the protocol
//  answers `too_large` itself, so a client learns why.
//  libzmq checks its limit against the CURVE MESSAGE command that carries a frame: the frame
//  plus "\x07MESSAGE", an 8-byte nonce, a flags byte and a 16-byte tag.
#define CURVE_OVERHEAD 33

static const char *s_usage =
    "usage: replgate-broker [--dir DIR] [--clients EP] [--workers EP] [--db FILE]\n"
    "                       [--policy FILE] [--timeout-ms N] [--max-timeout-ms N] [--output-bytes N]\n"
    "                       [--sync full|normal] [--placement-wait-ms N]\n"
    "  --dir DIR         state directory: keys/ and replgate.db (default ./var)\n"
    "  --clients EP      client endpoint (default tcp://127.0.0.1:7710)\n"
    "  --workers EP      worker endpoint (default tcp://127.0.0.1:7711)\n"
    "  --db FILE         database (default DIR/replgate.db)\n"
    "  --policy FILE     policy (default DIR/policy.json, made from the shipped default if absent)\n"
    "  --timeout-ms N    default wall-clock limit per snippet (default 10000)\n"
    "  --max-timeout-ms N  the most a submit's timeout_ms may ask where its rule sets no\n"
    "                    timeout_ms of its own (default 3600000)\n"
    "  --output-bytes N  default cap per output stream (default 1048576, at most 16 MiB)\n"
    "  --sync MODE       normal (WAL, durable across crashes) or full (also power loss)\n"
    "  --placement-wait-ms N  how long queued requests wait for a live worker with the labels\n"
    "                    their rule's placement asks for, before they are cancelled\n"
    "                    (default 300000)\n";

static int
s_parse_args (broker_config_t *cfg, int argc, char *argv[])
{
    static struct option opts[] = {
        { "dir", required_argument, 0, 'd' }, { "clients", required_argument, 0, 'c' },
        { "workers", required_argument, 0, 'w' }, { "db", required_argument, 0, 'b' },
        { "timeout-ms", required_argument, 0, 't' }, { "output-bytes", required_argument, 0, 'o' },
        { "max-timeout-ms", required_argument, 0, 'm' },
        { "placement-wait-ms", required_argument, 0, 'P' },
        { "sync", required_argument, 0, 's' }, { "policy", required_argument, 0, 'p' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    cfg->dir = strdup ("var");
    cfg->client_ep = strdup ("tcp://127.0.0.1:7710");
    cfg->worker_ep = strdup ("tcp://127.0.0.1:7711");
    cfg->timeout_ms = 10000;
    cfg->max_timeout_ms = 3600000;
    cfg->output_bytes = 1048576;
    cfg->placement_wait_ms = 300000;
    int c;
    while ((c = getopt_long (argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'd': free (cfg->dir); cfg->dir = strdup (optarg); break;
            case 'c': free (cfg->client_ep); cfg->client_ep = strdup (optarg); break;
            case 'w': free (cfg->worker_ep); cfg->worker_ep = strdup (optarg); break;
            case 'b': free (cfg->db_path); cfg->db_path = strdup (optarg); break;
            case 'p': free (cfg->policy_path); cfg->policy_path = strdup (optarg); break;
            case 't': cfg->timeout_ms = atoi (optarg); break;
            case 'm': cfg->max_timeout_ms = atoi (optarg); break;
            case 'o': cfg->output_bytes = atoi (optarg); break;
            case 'P': cfg->placement_wait_ms = atoi (optarg); break;
            case 's': cfg->sync_full = strcmp (optarg, "full") == 0;
                      if (!cfg->sync_full && strcmp (optarg, "normal") != 0) goto usage;
                      break;
            case 'h': fputs (s_usage, stdout); exit (0);
            default: goto usage;
        }
    }
    if (optind != argc || cfg->timeout_ms <= 0 || cfg->output_bytes <= 0
    ||  cfg->max_timeout_ms <= 0 || cfg->max_timeout_ms > PROTO_MAX_TIMEOUT_MS
    ||  cfg->placement_wait_ms <= 0
    ||  cfg->output_bytes > 16 * 1024 * 1024)
        goto usage;
    if (!cfg->db_path) {
        cfg->db_path = (char *) malloc (strlen (cfg->dir) + 16);
        sprintf (cfg->db_path, "%s/replgate.db", cfg->dir);
    }
    if (!cfg->policy_path) {
        cfg->policy_path = (char *) malloc (strlen (cfg->dir) + 16);
        sprintf (cfg->policy_path, "%s/policy.json", cfg->dir);
    }
    return 0;
usage:
    fputs (s_usage, stderr);
    return -1;
}

static zsock_t *
s_bind (const char *endpoint, zcert_t *cert)
{
    zsock_t *sock = zsock_new (ZMQ_ROUTER);
    if (!sock)
        return NULL;
    zsock_set_router_mandatory (sock, 1);
    zsock_set_maxmsgsize (sock, PROTO_MAX_WIRE + CURVE_OVERHEAD);
    zsock_set_sndtimeo (sock, 0);
    zsock_set_rcvtimeo (sock, 0);        //  the loop polls; a read never waits
    zsock_set_linger (sock, 0);
    zcert_apply (cert, sock);
    zsock_set_curve_server (sock, 1);
    zsock_set_zap_domain (sock, "replgate");
    if (zsock_bind (sock, "%s", endpoint) == -1) {
        log_error ("cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
    }
    return sock;
}

//  Every request in `state` back in memory, as its row says. -1 if one cannot be read: a
//  broker that could not see all it must run or track does not start.
static int
s_reenter_all (broker_t *self, const char *state)
{
    json_t *ids = NULL, *id;
    size_t i;
    int rc = store_ids_in_state (self->store, state, &ids);
    json_array_foreach (ids, i, id)
        if (rc == 0 && state_reenter (self, json_integer_value (id)) != 0) {
            log_error ("recovery: request %lld (%s) cannot be read",
                       (long long) json_integer_value (id), state);
            rc = -1;
        }
    json_decref (ids);
    return rc;
}

//  Requests a previous run left `running` can no longer be answered; `queued` ones run again,
//  before the `received` ones are decided: those were the last submitted (the broker died
//  deciding them), so each session keeps its order.
static int
s_recover (broker_t *self)
{
    json_t *ids = NULL;
    size_t i;
    json_t *id;
    if (store_ids_in_state (self->store, "running", &ids) != 0)
        return -1;
    json_t *why = json_pack ("{s:s}", "message", "broker restarted while it ran");
    json_array_foreach (ids, i, id)
        backlog_fire (self, json_integer_value (id), "running", EV_LOSE, "broker", why);
    json_decref (why);
    json_decref (ids);
    //  Parked ones keep their approvals and expiry.
    if (s_reenter_all (self, "queued") != 0 || s_reenter_all (self, "pending_approval") != 0)
        return -1;
    if (store_ids_in_state (self->store, "received", &ids) != 0)
        return -1;
    json_array_foreach (ids, i, id) {     //  submitted but not yet decided when we stopped
        json_t *row = store_get (self->store, json_integer_value (id));
        json_t *received = store_received_data (self->store, json_integer_value (id));
        if (row && json_object_get (received, "timeout_ms"))    //  and the run timeout it asked
            json_object_set (row, "timeout_ms", json_object_get (received, "timeout_ms"));
        if (row) {                        //  with the groups the submitter's cert had
            const char *groups = json_string_value (json_object_get (received, "groups"));
            json_t *fields = NULL;
            state_event_t ev = decide_policy (self, row, groups, &fields, NULL);
            backlog_decide (self, row, groups, ev, fields);
            json_decref (fields);
        }
        json_decref (received);
        json_decref (row);
    }
    json_decref (ids);
    return 0;
}

//  A first start gets the shipped default policy as DIR/policy.json, to edit from there.
static int
s_ensure_policy (broker_t *self)
{
    if (zsys_file_exists (self->cfg.policy_path))
        return 0;
    FILE *f = fopen (self->cfg.policy_path, "wx");
    if (!f || fputs (default_source, f) < 0 || fclose (f) != 0) {
        log_error ("cannot write the default policy to %s: %s", self->cfg.policy_path, strerror (errno));
        return -1;
    }
    log_info ("wrote the shipped default policy to %s", self->cfg.policy_path);
    return 0;
}

static int
s_start (broker_t *self)
{
    char err[512], path[1024];
    if (keys_ensure_local (self->cfg.dir, err, sizeof err) != 0) {
        log_error ("%s", err);
        return -1;
    }
    keys_path_broker (self->cfg.dir, path, sizeof path);
    zcert_t *cert = keys_load_pair (path, err, sizeof err);
    if (!cert) {
        log_error ("%s", err);
        return -1;
    }
    if (s_ensure_policy (self) != 0 || decide_start (self) != 0)
        return -1;
    //  zauth must run before the first bind: CURVE without a ZAP handler accepts any key.
    self->auth = zactor_new (zauth, NULL);
    keys_path_trusted (self->cfg.dir, path, sizeof path);
    zstr_sendx (self->auth, "CURVE", path, NULL);
    zsock_wait (self->auth);
    //  SQLite would open unwritable storage read-only and fail later, request by request.
    if (preflight_storage (self->cfg.db_path, err, sizeof err) != 0) {
        zcert_destroy (&cert);
        log_error ("%s", err);
        return -1;
    }
    self->store = store_new (self->cfg.db_path, STORE_MANUAL_CHECKPOINT
                             | (self->cfg.sync_full ? STORE_SYNC_FULL : 0));
    if (self->store) {
        self->clients = s_bind (self->cfg.client_ep, cert);
        self->workers = s_bind (self->cfg.worker_ep, cert);
    }
    zcert_destroy (&cert);
    if (self->store)
        self->checkpointer = checkpointer_new (self->cfg.db_path, 1000);
    if (!self->store || !self->checkpointer || !self->clients || !self->workers)
        return -1;
    self->backlog = backlog_new ();
    self->dispatch = dispatch_new ();
    self->notify = notify_new ();
    self->outbox = outbox_new ();
    self->approvals = approvals_new ();
    self->refusals = refusals_new ();
    self->prune = prune_new ();
    self->stream = stream_new ();
    self->fleet = fleet_new ();
    self->pass = pass_new ();
    self->trust = trust_new (path);             //  path: DIR/keys/trusted, as zauth reads it
    if (!self->trust || s_recover (self) != 0)
        return -1;
    //  From here on a locked database costs the loop at most this per write: the write is
    //  kept (backlog.c) and tried again, instead of the loop waiting for the lock's holder.
    store_busy_timeout (self->store, BACKLOG_BUSY_MS);
    //  The CLI finds a local broker through this file (`replgate --dir DIR ...`).
    char endpoint[1100];
    snprintf (endpoint, sizeof endpoint, "%s/endpoint", self->cfg.dir);
    FILE *f = fopen (endpoint, "w");
    if (!f || fprintf (f, "%s\n", self->cfg.client_ep) < 0 || fclose (f) != 0)
        log_warn ("cannot write %s: %s", endpoint, strerror (errno));
    log_info ("listening for clients on %s and workers on %s (CURVE, keys in %s)",
              self->cfg.client_ep, self->cfg.worker_ep, path);
    return 0;
}

//  Workers speak only while their key is trusted: a revoked worker's messages (heartbeats
//  included) are dropped, and the worker is declared lost at once: its running requests
//  become lost and no run goes to it any more.
static bool
s_worker_trusted (broker_t *self, zmsg_t *msg)
{
    zframe_t *body = zmsg_last (msg);
    if (body && trust_check (self, zframe_meta (body, "User-Id")))
        return true;
    const char *name = body ? zframe_meta (body, "name") : NULL;
    if (zmsg_first (msg))       //  no runs go to it while it waits to be found silent
        workers_drop (self, zmsg_first (msg), "key revoked");
    if (refusals_note (self, zmsg_first (msg), name, PROTO_E_FORBIDDEN, body ? zframe_size (body) : 0))
        log_warn ("worker socket: key %s is not trusted (revoked?), its messages are dropped",
                  name ? name : "?");
    return false;
}

//  Parked requests whose time to live ran out expire (kept in order if the store is down).
static void
s_expire_approvals (broker_t *self)
{
    zlistx_t *due = approvals_due (self);
    if (zlistx_size (due) == 0) {               //  the common case, ten times a second
        zlistx_destroy (&due);
        return;
    }
    json_t *fields = json_pack ("{s:s}", "message", "no quorum within the time to live");
    for (char *id = (char *) zlistx_first (due); id; id = (char *) zlistx_next (due))
        if (backlog_fire (self, atoll (id), "pending_approval", EV_EXPIRE, "broker", fields) != 0)
            log_warn ("request %s: could not expire (no longer pending?)", id);
    json_decref (fields);
    zlistx_destroy (&due);
}

static volatile sig_atomic_t s_reload = 0;
static void s_on_hup (int sig) { (void) sig; s_reload = 1; }

static void
s_loop (broker_t *self)
{
    struct sigaction sa = { .sa_handler = s_on_hup };
    sigemptyset (&sa.sa_mask);
    if (sigaction (SIGHUP, &sa, NULL) != 0)
        log_warn ("cannot catch SIGHUP, policy reload disabled: %s", strerror (errno));
    zmq_pollitem_t items[] = {
        { zsock_resolve (self->clients), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (self->workers), 0, ZMQ_POLLIN, 0 } };
    int64_t last_tick = 0, checkpoints = 0;
    while (!zsys_interrupted) {
        if (s_reload) {
            s_reload = 0;
            decide_reload (self);
        }
        //  Replies waiting for a full pipe are retried every 10 ms.
        int timeout = prune_busy (self) ? 0
                    : backlog_timeout (self, notify_timeout (self, outbox_size (self) ? 10 : 100));
        if (zmq_poll (items, 2, timeout) == -1) {
            if (zmq_errno () == EINTR)
                continue;
            log_error ("poll failed: %s", zmq_strerror (zmq_errno ()));
            break;
        }
        //  One pass, one commit (pass.c): what the workers and the clients bring, and the
        //  starts that frees, are written together; nobody hears of any, and no worker gets
        //  its `run`, before it committed. Workers first: results free the slots that queued
        //  requests wait for.
        pass_begin (self);
        for (int n = 0; n < 64 && (items[1].revents & ZMQ_POLLIN); n++) {
            zmsg_t *msg = zmsg_recv (self->workers);
            if (!msg)
                break;
            if (s_worker_trusted (self, msg))
                workers_message (self, &msg);
            else
                zmsg_destroy (&msg);
        }
        for (int n = 0; n < 64 && (items[0].revents & ZMQ_POLLIN); n++) {
            zmsg_t *msg = zmsg_recv (self->clients);
            if (!msg)
                break;
            clients_message (self, &msg);
        }
        zlistx_t *starts = launch_fire (self);
        launch_send (self, &starts, pass_end (self));
        backlog_tick (self);
        prune_step (self);
        int64_t now = clock_mono_ms ();
        if (now - last_tick >= 100) {
            last_tick = now;
            workers_tick (self);
            s_expire_approvals (self);
            trust_tick (self);
            refusals_tick (self);
        }
        //  What the timers freed (runs ended at their deadline, workers lost) or a store
        //  that takes writes again lets start, starts now.
        launch_ready (self);
        //  The checkpointer copied the WAL back off this loop; a short pass here catches up
        //  with what we wrote meanwhile, so that our next write starts the WAL over instead
        //  of growing it (a checkpoint that never catches up with the writer never ends).
        char why[160];
        backlog_hold (self, checkpointer_failing (self->checkpointer, why, sizeof why) ? why : NULL);
        int64_t done = checkpointer_count (self->checkpointer);
        if (done != checkpoints) {
            checkpoints = done;
            store_checkpoint (self->store);
        }
        notify_tick (self);
        outbox_flush (self);
    }
}

static void
s_stop (broker_t *self)
{
    if (self->store)
        refusals_flush (self);          //  counts still in their window are recorded too
    refusals_destroy (&self->refusals);
    prune_destroy (&self->prune);
    stream_destroy (&self->stream);
    fleet_destroy (&self->fleet);
    pass_destroy (&self->pass);
    trust_destroy (&self->trust);
    notify_destroy (&self->notify);
    outbox_destroy (&self->outbox);
    approvals_destroy (&self->approvals);
    dispatch_destroy (&self->dispatch);
    backlog_destroy (&self->backlog);
    zsock_destroy (&self->clients);
    zsock_destroy (&self->workers);
    checkpointer_destroy (&self->checkpointer);
    store_destroy (&self->store);
    zactor_destroy (&self->auth);
    free (self->cfg.dir);
    free (self->cfg.client_ep);
    free (self->cfg.worker_ep);
    free (self->cfg.db_path);
    free (self->cfg.policy_path);
    decide_stop (self);
}

int
main (int argc, char *argv[])
{
    log_set_name ("replgate-broker");
    broker_t self = { 0 };
    if (s_parse_args (&self.cfg, argc, argv) != 0)
        return 2;
    if (sodium_init () < 0) {
        log_error ("libsodium failed to start");
        return 1;
    }
    zsys_set_logstream (stderr);
    //  Each request frees what it allocated; without this glibc hands the heap top back to the
    //  kernel after every request and page-faults it in again on the next (TLB shootdowns
    //  measured at a third of the broker's time on the warm path).
    mallopt (M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    mallopt (M_TOP_PAD, 16 * 1024 * 1024);
    //  Nothing reads SQLite's memory statistics; kept, they take a global mutex at every
    //  allocation SQLite makes (a few hundred a request). Before SQLite starts, or it fails.
    if (sqlite3_config (SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK)
        log_warn ("SQLite's memory statistics stay on");
    int rc = 0;
    if (s_start (&self) == 0)
        s_loop (&self);
    else
        rc = 1;
    log_info ("stopping");
    s_stop (&self);
    return rc;
}
