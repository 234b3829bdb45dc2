/*  worker/secrets.c: the worker's named secrets (see secrets.h). */
#include "worker/secrets.h"
#include "common/check.h"
#include "policy/mask.h"
#include "policy/redact.h"
#include <czmq.h>
#include <string.h>

#define MAX_SECRETS 64

struct _secrets_t {
    char *env[MAX_SECRETS + 1];
    size_t count;
    mask_t *mask;
};

static bool
s_name_valid (const char *name)
{
    size_t n = strlen (name);
    if (n == 0 || n > 64 || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
            return false;
    return true;
}

secrets_t *
secrets_parse (const char *text, char *err, size_t err_size)
{
    json_error_t jerr;
    json_t *root = json_loads (text, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object (root)) {
        snprintf (err, err_size, "secrets: %s", root ? "must be a JSON object" : jerr.text);
        json_decref (root);
        return NULL;
    }
    secrets_t *self = (secrets_t *) zmalloc (sizeof (secrets_t));
    self->mask = mask_new ();
    const char *name;
    json_t *value;
    json_object_foreach (root, name, value) {
        const char *v = json_string_value (value);
        if (!s_name_valid (name) || !v || !*v || self->count == MAX_SECRETS
        ||  mask_add_secret (self->mask, name, v) != 0) {
            snprintf (err, err_size, "secrets: '%.64s' needs a name of A-Z 0-9 _ and a non-empty "
                      "string value (at most %d secrets)", name, MAX_SECRETS);
            json_decref (root);
            secrets_destroy (&self);
            return NULL;
        }
        self->env[self->count] = (char *) malloc (strlen (name) + strlen (v) + 2);
        sprintf (self->env[self->count++], "%s=%s", name, v);
    }
    json_decref (root);
    return self;
}

secrets_t *
secrets_load (const char *path, char *err, size_t err_size)
{
    if (!path)
        return secrets_parse ("{}", err, err_size);
    zfile_t *file = zfile_new (NULL, path);
    zchunk_t *chunk = file && zfile_input (file) == 0 ? zfile_read (file, zfile_cursize (file), 0) : NULL;
    secrets_t *self = NULL;
    if (!chunk)
        snprintf (err, err_size, "secrets: cannot read %s", path);
    else {
        char *text = zchunk_strdup (chunk);
        self = secrets_parse (text, err, err_size);
        free (text);
    }
    zchunk_destroy (&chunk);
    zfile_destroy (&file);
    return self;
}

void
secrets_destroy (secrets_t **self_p)
{
    secrets_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++) {
        explicit_bzero (self->env[i], strlen (self->env[i]));
        free (self->env[i]);
    }
    mask_destroy (&self->mask);
    free (self);
    *self_p = NULL;
}

char *const *
secrets_env (secrets_t *self)
{
    return self->env;
}

int
secrets_redact (secrets_t *self, json_t *result)
{
    return self->count ? redact_result (self->mask, result) : 0;
}

int
secrets_test (void)
{
    char err[256];
    CHECK (secrets_parse ("[1]", err, sizeof err) == NULL);
    CHECK (secrets_parse ("{\"lower\": \"x\"}", err, sizeof err) == NULL);
    CHECK (secrets_parse ("{\"EMPTY\": \"\"}", err, sizeof err) == NULL);
    CHECK (secrets_parse ("{\"NUM\": 5}", err, sizeof err) == NULL);
    secrets_t *s = secrets_parse ("{\"DB_PASSWORD\": \"pa55-w0rd-xyz\", \"TOKEN\": \"t0k3n\"}", err, sizeof err);
    CHECK (s && strcmp (secrets_env (s)[0], "DB_PASSWORD=pa55-w0rd-xyz") == 0 && secrets_env (s)[2] == NULL);
    json_t *r = json_pack ("{s:s}", "stdout", "pa55-w0rd-xyz and t0k3n");
    CHECK (secrets_redact (s, r) == 2);
    CHECK (strcmp (json_string_value (json_object_get (r, "stdout")),
                   "[MASKED:DB_PASSWORD] and [MASKED:TOKEN]") == 0);
    json_decref (r);
    secrets_destroy (&s);
    CHECK (s == NULL);
    return 0;
}
