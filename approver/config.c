/*  approver/config.c: loading and checking the approver's JSON configuration. Unknown keys
    are refused, as the broker refuses unknown protocol fields: a typo in "signing_secret"
    must not silently leave the endpoint unprotected. */
#include "approver/config.h"
#include "common/check.h"
#include "common/util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIELD(name) { #name, offsetof (config_t, name) }
static const struct { const char *name; size_t offset; } s_strings[] = {
    FIELD (broker), FIELD (key), FIELD (server_key), FIELD (dir), FIELD (listen),
    FIELD (signing_secret), FIELD (team_id), FIELD (app_id), FIELD (webhook), FIELD (response_url_prefix),
};

static char **
s_field (config_t *self, const char *name)
{
    for (size_t i = 0; i < sizeof s_strings / sizeof s_strings[0]; i++)
        if (strcmp (s_strings[i].name, name) == 0)
            return (char **) ((char *) self + s_strings[i].offset);
    return NULL;
}

int
config_set (config_t *self, const char *name, const char *value)
{
    char **field = s_field (self, name);
    if (!field)
        return -1;
    free (*field);
    *field = value ? strdup (value) : NULL;
    return 0;
}

//  Reads a secret from a file: first line, trailing newline stripped.
static int
s_read_secret (config_t *self, const char *path, char *err, size_t err_size)
{
    FILE *f = fopen (path, "r");
    if (!f) {
        snprintf (err, err_size, "signing_secret_file %s: %s", path, strerror (errno));
        return -1;
    }
    char line[256] = "";
    char *got = fgets (line, sizeof line, f);
    fclose (f);
    line[strcspn (line, "\r\n")] = 0;
    if (!got || !*line) {
        snprintf (err, err_size, "signing_secret_file %s is empty", path);
        return -1;
    }
    return config_set (self, "signing_secret", line);
}

static int
s_apply (config_t *self, json_t *root, char *err, size_t err_size)
{
    const char *key;
    json_t *v;
    json_object_foreach (root, key, v) {
        if (s_field (self, key) && json_is_string (v))
            config_set (self, key, json_string_value (v));
        else if (strcmp (key, "signing_secret_file") == 0 && json_is_string (v)) {
            if (s_read_secret (self, json_string_value (v), err, err_size))
                return -1;
        }
        else if (strcmp (key, "users") == 0 && json_is_object (v)) {
            json_decref (self->users);
            self->users = json_incref (v);
        }
        else if (strcmp (key, "max_body") == 0 && json_is_integer (v) && json_integer_value (v) >= 1024)
            self->max_body = (size_t) json_integer_value (v);
        else if (strcmp (key, "http_timeout_ms") == 0 && json_is_integer (v) && json_integer_value (v) >= 100)
            self->http_timeout_ms = (int) json_integer_value (v);
        else {
            snprintf (err, err_size, "config: unknown key or bad value for \"%s\"", key);
            return -1;
        }
    }
    return 0;
}

config_t *
config_new (const char *path, char *err, size_t err_size)
{
    config_t *self = (config_t *) calloc (1, sizeof (config_t));
    if (!self) {
        snprintf (err, err_size, "out of memory");
        return NULL;
    }
    config_set (self, "broker", "tcp://127.0.0.1:7710");
    config_set (self, "listen", "127.0.0.1:7712");
    config_set (self, "response_url_prefix", "https://hooks.slack.com/");
    self->users = json_object ();
    self->max_body = 1 << 20;           //  a block_actions payload carries the whole message
    self->http_timeout_ms = 10000;
    if (path) {
        json_error_t jerr;
        json_t *root = json_load_file (path, JSON_REJECT_DUPLICATES, &jerr);
        int rc = -1;
        if (!json_is_object (root))
            snprintf (err, err_size, "config %s: %s (line %d)", path, root ? "not an object" : jerr.text, jerr.line);
        else
            rc = s_apply (self, root, err, err_size);
        json_decref (root);
        if (rc) {
            config_destroy (&self);
            return NULL;
        }
    }
    return self;
}

void
config_destroy (config_t **self_p)
{
    if (*self_p) {
        config_t *self = *self_p;
        for (size_t i = 0; i < sizeof s_strings / sizeof s_strings[0]; i++)
            free (*s_field (self, s_strings[i].name));
        json_decref (self->users);
        free (self);
        *self_p = NULL;
    }
}

int
config_check (config_t *self, char *err, size_t err_size)
{
    const char *required[] = { "broker", "key", "server_key", "dir", "listen", "signing_secret",
                               "team_id", "app_id", "response_url_prefix" };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        char **field = s_field (self, required[i]);
        if (!*field || !**field) {
            snprintf (err, err_size, "config: \"%s\" is required", required[i]);
            return -1;
        }
    }
    if (strlen (self->signing_secret) < 16) {
        snprintf (err, err_size, "config: signing_secret is too short to be Slack's");
        return -1;
    }
    const char *user;
    json_t *principal;
    json_object_foreach (self->users, user, principal)
        if (!json_is_string (principal) || !*json_string_value (principal) || !*user) {
            snprintf (err, err_size, "config: users must map Slack user ids to principal names");
            return -1;
        }
    if (!self->webhook)
        log_warn ("config: no default webhook; only requests whose rule names one are posted");
    return 0;
}

const char *
config_principal (config_t *self, const char *slack_user)
{
    return json_string_value (json_object_get (self->users, slack_user));
}

int
config_test (void)
{
    char path[] = "/tmp/approver-config-XXXXXX";
    int fd = mkstemp (path);
    CHECK (fd >= 0);
    if (fd < 0)
        return -1;
    const char *text = "{\"key\":\"k.cert\",\"server_key\":\"b.cert\",\"dir\":\"/tmp\",\"signing_secret\":"
                       "\"0123456789abcdef0123\",\"team_id\":\"T1\",\"app_id\":\"A1\",\"users\":{\"U1\":\"alice\"}}";
    CHECK (write (fd, text, strlen (text)) == (ssize_t) strlen (text));
    close (fd);
    char err[200];
    config_t *c = config_new (path, err, sizeof err);
    CHECK (c && config_check (c, err, sizeof err) == 0);
    CHECK (c && strcmp (config_principal (c, "U1"), "alice") == 0 && config_principal (c, "U2") == NULL);
    CHECK (c && strcmp (c->listen, "127.0.0.1:7712") == 0);
    CHECK (c && config_set (c, "listen", "127.0.0.1:9") == 0 && strcmp (c->listen, "127.0.0.1:9") == 0);
    CHECK (c && config_set (c, "nope", "x") == -1);
    config_destroy (&c);
    CHECK (c == NULL);
    FILE *f = fopen (path, "w");
    if (f) {
        fputs ("{\"signing_secrte\":\"x\"}", f);
        fclose (f);
    }
    CHECK (config_new (path, err, sizeof err) == NULL && strstr (err, "signing_secrte"));
    c = config_new (NULL, err, sizeof err);
    CHECK (c && config_check (c, err, sizeof err) == -1);
    config_destroy (&c);
    unlink (path);
    return 0;
}
