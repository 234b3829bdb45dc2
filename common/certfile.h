/*  common/certfile.h: the CURVE keys of czmq's certificate files, read without czmq, for the
    programs that reach the broker through common/zmtp.c (the CLI, the approver, the
    worker): none of them loads czmq or libzmq to read its keys. */
#ifndef RG_CERTFILE_H
#define RG_CERTFILE_H
#include "common/zmtp.h"
#include <stddef.h>

#define CERTFILE_MAX 16384     //  bytes of a cert file read; a cert is a few hundred

//  The Z85 keys in the text of a cert file (size bytes, any bytes), 40 characters and a NUL
//  each. The text is ZPL, as czmq writes it: a `curve` section at the left margin, then
//  indented `public-key = "..."` and `secret-key = "..."` (quotes optional). A key that is
//  absent or not 40 characters is left empty. Pure; tests/fuzz/certfile feeds it anything.
void certfile_parse (const char *text, size_t size, char public_key[41], char secret_key[41]);

//  The same from the file at path (its first CERTFILE_MAX bytes). -1 if it cannot be read.
int certfile_z85 (const char *path, char public_key[41], char secret_key[41]);

//  A client's keys: its pair from key_path's secret file (key_path + "_secret", which holds
//  both halves, as czmq's zcert_load reads it; key_path may also name that file itself) and
//  the broker's public key from server_path. 0, or -1 with the reason in err (which names
//  the file). Nothing is left in *keys on failure.
int certfile_load (const char *key_path, const char *server_path, zmtp_keys_t *keys,
                   char *err, size_t err_size);

int certfile_test (void);
#endif
