/*  worker/secrets.c: the worker's named secrets (see secrets.h). */
#include "worker/secrets.h"
#include "common/check.h"
#include "policy/mask.h"
#include "policy/redact.h"
#include "common/buf.h"
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
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
    if (err_size)
        *err = 0;
    json_t *root = json_loads (text, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object (root)) {
        snprintf (err, err_size, "secrets: %s", root ? "must be a JSON object" : jerr.text);
        json_decref (root);
        return NULL;
    }
    //  Only the exact values (and their encodings): the broker's detectors mask the rest,
    //  once, after this.
    secrets_t *self = (secrets_t *) calloc (1, sizeof (secrets_t));
    if (self && !(self->mask = mask_new_empty ()))
        secrets_destroy (&self);
    const char *name;
    json_t *value;
    json_object_foreach (root, name, value) {
        if (!self)
            break;
        const char *v = json_string_value (value);
        if (!s_name_valid (name) || !v || !*v || self->count == MAX_SECRETS) {
            snprintf (err, err_size, "secrets: '%.64s' needs a name of A-Z 0-9 _ and a non-empty "
                      "string value (at most %d secrets)", name, MAX_SECRETS);
            secrets_destroy (&self);
            break;
        }
        char *env = (char *) malloc (strlen (name) + strlen (v) + 2);
        if (env)
            sprintf (env, "%s=%s", name, v);
        if (!env || mask_add_secret (self->mask, name, v) != 0) {
            free (env);
            secrets_destroy (&self);
            break;
        }
        self->env[self->count++] = env;
    }
    if (!self && err_size && !*err)
        snprintf (err, err_size, "secrets: out of memory");
    json_decref (root);
    return self;
}

secrets_t *
secrets_load (const char *path, char *err, size_t err_size)
{
    if (!path)
        return secrets_parse ("{}", err, err_size);
    FILE *f = fopen (path, "r");
    buf_t text = { 0 };
    secrets_t *self = NULL;
    if (!f || buf_read_file (&text, f) != 0)
        snprintf (err, err_size, "secrets: cannot read %s: %s", path, strerror (errno));
    else
        self = secrets_parse (text.data ? text.data : "", err, err_size);
    if (f)
        fclose (f);
    if (text.data)
        sodium_memzero (text.data, text.alloc);
    buf_free (&text);
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

mask_t *
secrets_mask (secrets_t *self)
{
    return self->mask;
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

    //  Every text field, the exception's type name too; the built-in detectors are the
    //  broker's job, so the worker leaves everything but its secrets alone.
    s = secrets_parse ("{\"DB_PASSWORD\": \"pa\\\"ss\\\\w\\u00f6rd\"}", err, sizeof err);
    CHECK (s && strcmp (secrets_env (s)[0], "DB_PASSWORD=pa\"ss\\w\xc3\xb6rd") == 0);
    r = json_pack ("{s:s, s:s, s:n, s:{s:s, s:s, s:s}, s:s}",
                   "stdout", "password=hunter2 AKIAIOSFODNN7EXAMPLE\n",
                   "stderr", "\"pa\\\"ss\\\\w\\u00f6rd\" 'pa\"ss\\\\w\\xf6rd'\n",
                   "value", "error", "name", "pa\"ss\\w\xc3\xb6rd", "value", "",
                   "traceback", "__main__.pa\"ss\\w\xc3\xb6rd\n", "outcome", "error");
    CHECK (s && secrets_redact (s, r) == 4);
    CHECK (strcmp (json_string_value (json_object_get (r, "stdout")),
                   "password=hunter2 AKIAIOSFODNN7EXAMPLE\n") == 0);
    CHECK (strcmp (json_string_value (json_object_get (r, "stderr")),
                   "\"[MASKED:DB_PASSWORD]\" '[MASKED:DB_PASSWORD]'\n") == 0);
    json_t *error = json_object_get (r, "error");
    CHECK (strcmp (json_string_value (json_object_get (error, "name")), "[MASKED:DB_PASSWORD]") == 0);
    CHECK (strcmp (json_string_value (json_object_get (error, "traceback")),
                   "__main__.[MASKED:DB_PASSWORD]\n") == 0);
    json_decref (r);
    secrets_destroy (&s);
    s = secrets_load (NULL, err, sizeof err);
    r = json_pack ("{s:s}", "stdout", "password=hunter2");
    CHECK (s && secrets_env (s)[0] == NULL && secrets_redact (s, r) == 0);
    json_decref (r);
    secrets_destroy (&s);
    return 0;
}
