/*  approver/config.h: the approver's configuration, a JSON file (see README "Slack approvals")
    whose values command-line flags may override. */
#ifndef RG_APPROVER_CONFIG_H
#define RG_APPROVER_CONFIG_H
#include <jansson.h>
#include <stddef.h>

typedef struct {
    char *broker;               //  client endpoint of the broker
    char *key;                  //  the gateway's cert (secret half in key + "_secret")
    char *server_key;           //  the broker's public cert
    char *dir;                  //  the approver's own directory (approver.db)
    char *listen;               //  interaction endpoint, IPv4:PORT
    char *signing_secret;       //  Slack app's signing secret (or read from signing_secret_file)
    char *team_id, *app_id;     //  callbacks from other workspaces or apps are refused
    char *webhook;              //  default incoming webhook (a rule's review.webhook wins)
    char *response_url_prefix;  //  response_url must start with this (https://hooks.slack.com/)
    json_t *users;              //  Slack user id -> approver principal
    size_t max_body;
    int http_timeout_ms;
} config_t;

//  Defaults, then `path` (if not NULL). NULL with a message in err on failure.
config_t *config_new (const char *path, char *err, size_t err_size);
void config_destroy (config_t **self_p);

//  Replaces a string field by name (for flags); -1 if there is no such field.
int config_set (config_t *self, const char *name, const char *value);

//  Checks that everything needed is set and sane. 0, or -1 with a message in err.
int config_check (config_t *self, char *err, size_t err_size);

//  The principal a Slack user acts as, or NULL if unmapped.
const char *config_principal (config_t *self, const char *slack_user);

int config_test (void);
#endif
