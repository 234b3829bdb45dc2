/*  common/certfile.c: CURVE keys from czmq's certificate files, without czmq (see
    certfile.h). */
#include "common/certfile.h"
#include "common/zmtp_wire.h"
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

//  One line of a `curve` section (from p, n bytes, no newline): sets the key it names.
static void
s_key_line (const char *p, size_t n, char public_key[41], char secret_key[41])
{
    char *key = n >= 10 && memcmp (p, "public-key", 10) == 0 ? public_key
              : n >= 10 && memcmp (p, "secret-key", 10) == 0 ? secret_key : NULL;
    const char *end = p + n;
    if (!key)
        return;
    p += 10;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end || *p++ != '=')
        return;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    char quote = p < end && (*p == '"' || *p == '\'') ? *p++ : 0;
    size_t k = 0;           //  a key's characters are Z85's, all printable ASCII
    while (p + k < end && p[k] != quote && p[k] > ' ' && p[k] < 0x7f)
        k++;
    if (k == 40 && (quote ? p + k < end && p[k] == quote : p + k == end || strchr (" \t\r", p[k]))) {
        memcpy (key, p, 40);
        key[40] = 0;
    }
}

void
certfile_parse (const char *text, size_t size, char public_key[41], char secret_key[41])
{
    const char *end = text + size;
    bool curve = false;
    public_key[0] = secret_key[0] = 0;
    for (const char *line = text; line < end; ) {
        const char *nl = memchr (line, '\n', (size_t) (end - line));
        const char *stop = nl ? nl : end, *p = line;
        while (p < stop && (*p == ' ' || *p == '\t'))
            p++;
        if (p < stop && *p != '#' && *p != '\r' && *p != 0) {
            if (p == line)          //  a section
                curve = stop - p >= 5 && memcmp (p, "curve", 5) == 0
                        && (stop - p == 5 || strchr (" \t\r#", p[5]));
            else
            if (curve)
                s_key_line (p, (size_t) (stop - p), public_key, secret_key);
        }
        line = nl ? nl + 1 : end;
    }
}

int
certfile_z85 (const char *path, char public_key[41], char secret_key[41])
{
    //  A cert is a few hundred bytes: what does not fit here is not one.
    char text[CERTFILE_MAX];
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    size_t n = fread (text, 1, sizeof text, f);
    int rc = ferror (f) ? -1 : 0;
    fclose (f);
    certfile_parse (text, n, public_key, secret_key);
    sodium_memzero (text, sizeof text);
    return rc;
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
