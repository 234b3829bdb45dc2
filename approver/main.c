/*  approver/main.c: replgate-approver, the Slack gateway. An approver-role client of the
    broker (a gateway key) that posts every request awaiting approval to Slack and turns
    signed button clicks into approve/deny calls on behalf of the mapped principal. One loop:
    broker events, queued clicks from the HTTP thread, and the Slack outbox. */
#include "approver/config.h"
#include "approver/deliver.h"
#include "approver/flow.h"
#include "approver/http.h"
#include "approver/bridge.h"
#include "approver/state.h"
#include "common/certfile.h"
#include "common/util.h"
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>

#define BATCH_MAX 256

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: replgate-approver --config FILE [options]\n"
        "  --config FILE       JSON configuration (see README, \"Slack approvals\")\n"
        "  --broker EP         broker client endpoint (default tcp://127.0.0.1:7710)\n"
        "  --key FILE          the gateway's cert (replgate keygen slack-gw --role approver --groups gateway)\n"
        "  --server-key FILE   the broker's public cert\n"
        "  --dir DIR           the approver's own directory (approver.db)\n"
        "  --listen HOST:PORT  interaction endpoint (default 127.0.0.1:7712)\n"
        "  --webhook URL       default incoming webhook\n");
}

//  Flags override the file; returns the config or NULL (message printed).
static config_t *
s_load_config (int argc, char *argv[])
{
    const char *path = NULL;
    for (int i = 1; i < argc - 1; i++)
        if (strcmp (argv[i], "--config") == 0)
            path = argv[i + 1];
    char err[300];
    config_t *config = config_new (path, err, sizeof err);
    if (!config) {
        fprintf (stderr, "replgate-approver: %s\n", err);
        return NULL;
    }
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp (flag, "--help") == 0 || strcmp (flag, "-h") == 0) {
            s_usage (stdout);
            exit (0);
        }
        char name[32];
        snprintf (name, sizeof name, "%s", strncmp (flag, "--", 2) == 0 ? flag + 2 : "");
        for (char *p = name; *p; p++)
            *p = *p == '-' ? '_' : *p;
        if (i + 1 >= argc || (strcmp (name, "config") != 0 && config_set (config, name, argv[i + 1]))) {
            fprintf (stderr, "replgate-approver: unknown or incomplete option %s\n", flag);
            s_usage (stderr);
            config_destroy (&config);
            return NULL;
        }
        i++;
    }
    if (config_check (config, err, sizeof err)) {
        fprintf (stderr, "replgate-approver: %s\n", err);
        config_destroy (&config);
    }
    return config;
}

typedef struct {
    config_t *config;
    state_t *state;
    deliver_t *deliver;
    bridge_t *bridge;
    http_t *http;
    flow_t *flow;
} app_t;

static void
s_app_destroy (app_t *app)
{
    http_destroy (&app->http);          //  first: no click arrives after the flow is gone
    flow_destroy (&app->flow);
    bridge_destroy (&app->bridge);
    deliver_destroy (&app->deliver);
    state_destroy (&app->state);
    config_destroy (&app->config);
}

static int
s_app_open (app_t *app)
{
    config_t *c = app->config;
    char err[300], path[1100];
    if (mkdir (c->dir, 0700) != 0 && errno != EEXIST) {
        log_error ("cannot create %s: %s", c->dir, strerror (errno));
        return -1;
    }
    zmtp_keys_t keys;
    if (certfile_load (c->key, c->server_key, &keys, err, sizeof err) != 0) {
        log_error ("%s", err);
        return -1;
    }
    snprintf (path, sizeof path, "%s/approver.db", c->dir);
    app->state = state_new (path);
    app->deliver = app->state ? deliver_new (app->state, c->http_timeout_ms) : NULL;
    app->bridge = app->deliver ? bridge_new (c->broker, &keys) : NULL;
    sodium_memzero (&keys, sizeof keys);
    app->flow = app->bridge ? flow_new (c, app->state, app->bridge) : NULL;
    if (!app->flow)
        return -1;
    deliver_on_fail (app->deliver, flow_delivery_failed, app->flow);
    http_config_t hc = { c->listen, c->signing_secret, c->team_id, c->app_id, c->max_body };
    app->http = http_new (&hc);
    return app->http ? 0 : -1;
}

//  Reads what the broker pushed and hands it to the flow as one batch. False if the flow
//  could not handle it (the broker did not answer): re-subscribe from the last seq later.
static bool
s_pump_events (app_t *app)
{
    json_t *batch = json_array ();
    json_t *event;
    while (json_array_size (batch) < BATCH_MAX && (event = bridge_next_event (app->bridge)))
        json_array_append_new (batch, event);
    bool ok = json_array_size (batch) == 0 || flow_events (app->flow, batch) == 0;
    if (!ok)
        log_warn ("events not handled (broker unreachable?); re-subscribing shortly");
    json_decref (batch);
    return ok;
}

//  SIGINT and SIGTERM end the loop (stop_signals_catch; within its longest wait, 500 ms, if
//  a thread of libmicrohttpd's takes the signal rather than the poll).
static void
s_run (app_t *app)
{
    bool subscribe = true, catch_up = true;
    int64_t subscribe_at = 0, catch_up_at = 0;
    while (!stop_signalled) {
        int64_t now = clock_mono_ms ();
        if (subscribe && now >= subscribe_at) {
            subscribe = bridge_subscribe (app->bridge, state_last_seq (app->state)) != 0;
            subscribe_at = now + 1000;
            catch_up = true;
        }
        if (catch_up && now >= catch_up_at) {
            catch_up = flow_catch_up (app->flow) != 0;
            catch_up_at = clock_mono_ms () + 2000;
        }
        int timeout = deliver_tick (app->deliver, clock_wall_ms (), subscribe || catch_up ? 200 : 500);
        struct pollfd items[2] = { { .fd = http_fd (app->http), .events = POLLIN } };
        int wait = bridge_poll_item (app->bridge, &items[1]);
        if (wait >= 0 && (timeout < 0 || wait < timeout))
            timeout = wait;
        if (poll (items, 2, timeout) < 0 && errno != EINTR) {
            log_error ("poll: %s", strerror (errno));
            break;
        }
        bridge_handle (app->bridge, items[1].revents);
        if (bridge_needs_resubscribe (app->bridge))
            subscribe = true, subscribe_at = 0;
        if (!s_pump_events (app))
            subscribe = true, subscribe_at = clock_mono_ms () + 1000;
        click_t click;
        while (http_next_click (app->http, &click))
            flow_click (app->flow, &click);
    }
}

int
main (int argc, char *argv[])
{
    log_set_name ("replgate-approver");
    app_t app = { 0 };
    app.config = s_load_config (argc, argv);
    if (!app.config)
        return 2;
    if (sodium_init () < 0 || curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error ("cannot initialise libsodium or libcurl");
        config_destroy (&app.config);
        return 1;
    }
    stop_signals_catch ();
    int rc = s_app_open (&app);
    if (rc == 0) {
        log_info ("up: broker %s, state %s/approver.db, %zu Slack user%s mapped", app.config->broker,
                  app.config->dir, json_object_size (app.config->users),
                  json_object_size (app.config->users) == 1 ? "" : "s");
        s_run (&app);
        log_info ("stopping");
    }
    s_app_destroy (&app);
    curl_global_cleanup ();
    return rc ? 1 : 0;
}
