/*  common/keys.c: generation and loading of CURVE certs (Debian ships no key tool). */
#include "common/keys.h"
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static int
s_mkdir (const char *path, mode_t mode, char *err, size_t err_size)
{
    if (mkdir (path, mode) == 0 || errno == EEXIST)
        return 0;
    snprintf (err, err_size, "cannot create %s: %s", path, strerror (errno));
    return -1;
}

void
keys_path_private (const char *dir, const char *name, char *buf, size_t size)
{
    snprintf (buf, size, "%s/keys/private/%s.cert", dir, name);
}

void
keys_path_broker (const char *dir, char *buf, size_t size)
{
    snprintf (buf, size, "%s/keys/broker.cert", dir);
}

void
keys_path_trusted (const char *dir, char *buf, size_t size)
{
    snprintf (buf, size, "%s/keys/trusted", dir);
}

static int
s_name_valid (const char *name)
{
    size_t n = strlen (name);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        ||  c == '.' || c == '_' || c == '-') || (i == 0 && c == '.'))
            return 0;
    }
    return 1;
}

int
keys_name_valid (const char *name)
{
    return s_name_valid (name);
}

static int
s_role_valid (const char *role)
{
    const char *roles[] = { "agent", "approver", "worker", "admin", "broker" };
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp (role, roles[i]) == 0)
            return 1;
    return 0;
}

int
keys_generate (const char *dir, const char *name, const char *role, const char *groups,
               char *err, size_t err_size)
{
    if (!s_name_valid (name)) {
        snprintf (err, err_size, "bad key name '%s': use 1-64 of A-Z a-z 0-9 . _ -", name);
        return -1;
    }
    if (!s_role_valid (role)) {
        snprintf (err, err_size, "bad role '%s': use one of " KEYS_ROLES, role);
        return -1;
    }
    char path[1024], sub[1024];
    snprintf (sub, sizeof sub, "%s/keys", dir);
    if (s_mkdir (dir, 0700, err, err_size) || s_mkdir (sub, 0700, err, err_size))
        return -1;
    bool broker = strcmp (role, "broker") == 0;
    if (broker)
        keys_path_broker (dir, path, sizeof path);
    else {
        snprintf (sub, sizeof sub, "%s/keys/private", dir);
        if (s_mkdir (sub, 0700, err, err_size))
            return -1;
        keys_path_trusted (dir, sub, sizeof sub);
        if (s_mkdir (sub, 0700, err, err_size))
            return -1;
        keys_path_private (dir, name, path, sizeof path);
    }
    struct stat st;
    if (stat (path, &st) == 0) {
        snprintf (err, err_size, "%s already exists; delete it first to replace the key", path);
        return -1;
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        snprintf (err, err_size, "cannot make a key pair");
        return -1;
    }
    zcert_set_meta (cert, "name", "%s", name);
    zcert_set_meta (cert, "role", "%s", role);
    if (groups && *groups)
        zcert_set_meta (cert, "groups", "%s", groups);
    int rc = zcert_save (cert, path);
    if (rc == 0 && !broker) {
        char trusted[1100];
        snprintf (trusted, sizeof trusted, "%s/keys/trusted/%s.cert", dir, name);
        rc = zcert_save_public (cert, trusted);
    }
    zcert_destroy (&cert);
    if (rc) {
        snprintf (err, err_size, "cannot write %s: %s", path, strerror (errno));
        return -1;
    }
    return 0;
}

int
keys_ensure_local (const char *dir, char *err, size_t err_size)
{
    static const char *pairs[][2] = {
        { "broker", "broker" }, { "worker", "worker" }, { "agent", "agent" }, { "admin", "admin" } };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char path[1024];
        if (strcmp (pairs[i][1], "broker") == 0)
            keys_path_broker (dir, path, sizeof path);
        else
            keys_path_private (dir, pairs[i][0], path, sizeof path);
        if (zsys_file_exists (path))
            continue;
        if (keys_generate (dir, pairs[i][0], pairs[i][1], NULL, err, err_size))
            return -1;
    }
    return 0;
}

zcert_t *
keys_load_pair (const char *path, char *err, size_t err_size)
{
    char secret[1100];
    snprintf (secret, sizeof secret, "%s_secret", path);
    if (!zsys_file_exists (secret)) {
        snprintf (err, err_size, "no secret key at %s", secret);
        return NULL;
    }
    zcert_t *cert = zcert_load (path);
    if (!cert || zcert_secret_txt (cert) == NULL
    ||  strcmp (zcert_secret_txt (cert), "0000000000000000000000000000000000000000") == 0) {
        snprintf (err, err_size, "cannot read a key pair from %s", path);
        zcert_destroy (&cert);
        return NULL;
    }
    return cert;
}
