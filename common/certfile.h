/*  common/certfile.h: the CURVE keys of czmq's certificate files, read without czmq, for the
    programs that reach the broker through common/zmtp.c (the CLI, the approver, the
    worker): none of them loads czmq or libzmq to read its keys. */
#ifndef RG_CERTFILE_H
#define RG_CERTFILE_H
#include "common/zmtp.h"
#include <stddef.h>

//  The Z85 keys of the cert file at path (40 characters and a NUL each). The file is ZPL, as
//  czmq writes it: a `curve` section at the left margin, then indented `public-key = "..."`
//  and `secret-key = "..."` (quotes optional). A key that is absent or not 40 characters is
//  left empty. -1 if the file cannot be read.
int certfile_z85 (const char *path, char public_key[41], char secret_key[41]);

//  A client's keys: its pair from key_path's secret file (key_path + "_secret", which holds
//  both halves, as czmq's zcert_load reads it; key_path may also name that file itself) and
//  the broker's public key from server_path. 0, or -1 with the reason in err (which names
//  the file). Nothing is left in *keys on failure.
int certfile_load (const char *key_path, const char *server_path, zmtp_keys_t *keys,
                   char *err, size_t err_size);

int certfile_test (void);
#endif
