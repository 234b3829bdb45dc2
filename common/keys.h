/*  common/keys.h: CURVE key sets on disk. Layout under a state directory DIR:
      DIR/keys/broker.cert[_secret]        the broker's own pair; clients need broker.cert
      DIR/keys/private/NAME.cert[_secret]  pairs made by keygen, for local clients and workers
      DIR/keys/trusted/NAME.cert           public certs the broker's zauth accepts; delete = revoke
      DIR/keys/revoked/NAME.cert           certs `replgate revoke` moved out of trusted/
    Certs are czmq ZPL files whose metadata carries `name`, `role` and optional `groups`. */
#ifndef RG_KEYS_H
#define RG_KEYS_H
#include <czmq.h>

#define KEYS_ROLES "agent|approver|worker|admin"

//  Makes a key pair NAME with ROLE (one of KEYS_ROLES, or "broker" for the broker's own pair)
//  and optional comma-separated groups. Writes it as described above; refuses to overwrite an
//  existing pair. Returns 0, or -1 with a message in err.
int keys_generate (const char *dir, const char *name, const char *role, const char *groups,
                   char *err, size_t err_size);

//  True if name may name a key: 1-64 of A-Z a-z 0-9 . _ -, not starting with a dot (so
//  DIR/keys/trusted/NAME.cert never leaves its directory).
int keys_name_valid (const char *name);

//  Creates broker, worker, agent and admin pairs under DIR if they do not exist yet.
int keys_ensure_local (const char *dir, char *err, size_t err_size);

//  Loads a cert with its secret half (path and path_secret), for the broker (its clients read
//  theirs with common/certfile.h). NULL with err filled on failure.
zcert_t *keys_load_pair (const char *path, char *err, size_t err_size);

//  Paths of the standard files under DIR (into buf).
void keys_path_private (const char *dir, const char *name, char *buf, size_t size);
void keys_path_broker (const char *dir, char *buf, size_t size);
void keys_path_trusted (const char *dir, char *buf, size_t size);

#endif
