/*  common/certfile.c: CURVE keys from czmq's certificate files, without czmq (see
    certfile.h). */
#include "common/certfile.h"
#include "common/zmtp_wire.h"
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int
certfile_z85 (const char *path, char public_key[41], char secret_key[41])
{
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    char line[512];
    bool curve = false;
    public_key[0] = secret_key[0] = 0;
    while (fgets (line, sizeof line, f)) {
        char *p = line + strspn (line, " \t");
        if (*p == '#' || *p == '\r' || *p == '\n' || *p == 0)
            continue;
        if (p == line) {            //  a section
            curve = strncmp (p, "curve", 5) == 0 && strchr (" \t\r\n#", p[5]);
            continue;
        }
        char *key = !curve ? NULL : strncmp (p, "public-key", 10) == 0 ? public_key
                  : strncmp (p, "secret-key", 10) == 0 ? secret_key : NULL;
        if (!key)
            continue;
        p += 10;
        p += strspn (p, " \t");
        if (*p++ != '=')
            continue;
        p += strspn (p, " \t");
        char quote = *p == '"' || *p == '\'' ? *p++ : 0;
        size_t n = strcspn (p, quote == '"' ? "\"" : quote ? "'" : " \t\r\n");
        if (n == 40 && (!quote || p[n] == quote)) {
            memcpy (key, p, 40);
            key[40] = 0;
        }
    }
    sodium_memzero (line, sizeof line);
    fclose (f);
    return 0;
}

static bool
s_all_zero (const uint8_t key[32])
{
    uint8_t any = 0;
    for (int i = 0; i < 32; i++)
        any |= key[i];
    return any == 0;
}

//  The pair in path_secret, decoded; -1 with err.
static int
s_pair (const char *key_path, zmtp_keys_t *keys, char *err, size_t err_size)
{
    char secret_path[1100], public_z85[41], secret_z85[41];
    size_t n = strlen (key_path);
    bool named = n > 7 && strcmp (key_path + n - 7, "_secret") == 0;
    snprintf (secret_path, sizeof secret_path, "%s%s", key_path, named ? "" : "_secret");
    if (access (secret_path, F_OK) != 0) {
        snprintf (err, err_size, "no key file: %s", secret_path);
        return -1;
    }
    int rc = certfile_z85 (secret_path, public_z85, secret_z85) == 0
             && zmtp_z85_decode (public_z85, keys->public_key) == 0
             && zmtp_z85_decode (secret_z85, keys->secret_key) == 0
             && !s_all_zero (keys->secret_key) ? 0 : -1;
    sodium_memzero (secret_z85, sizeof secret_z85);
    if (rc != 0)
        snprintf (err, err_size, "cannot read a key pair from %s", secret_path);
    return rc;
}

int
certfile_load (const char *key_path, const char *server_path, zmtp_keys_t *keys, char *err,
               size_t err_size)
{
    char server_z85[41], unused[41];
    int rc = s_pair (key_path, keys, err, err_size);
    if (rc == 0 && access (server_path, F_OK) != 0) {
        snprintf (err, err_size, "no key file: %s", server_path);
        rc = -1;
    }
    else
    if (rc == 0 && (certfile_z85 (server_path, server_z85, unused) != 0
                    || zmtp_z85_decode (server_z85, keys->server_key) != 0)) {
        snprintf (err, err_size, "cannot read a public key from %s", server_path);
        rc = -1;
    }
    sodium_memzero (unused, sizeof unused);     //  a secret file given as the server's
    if (rc != 0)
        sodium_memzero (keys, sizeof *keys);
    return rc;
}
