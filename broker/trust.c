/*  broker/trust.c: the set of trusted public keys, kept in step with DIR/keys/trusted.
    zauth decides who may connect; this set decides whether an open connection may still
    speak. It is a hash of z85 keys, so the check on every message is one lookup. */
#include "broker/trust.h"
#include "broker/backlog.h"
#include "broker/notify.h"
#include "common/check.h"
#include "common/keys.h"
#include "common/proto.h"
#include "common/util.h"
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RESCAN_MS  1000
//  File times come from a coarse clock; a directory changed this recently may change again
//  with the same mtime, so a scan that close to a change is not trusted to be the last word.
#define RACY_MS    50

typedef struct {
    char *name;                 //  the cert's `name` (else its file name without .cert)
    char *role;                 //  the cert's `role`, or ""
} cert_t;

struct _trust_t {
    char *dir;
    zhashx_t *keys;             //  z85 public key -> cert_t
    uint64_t signature;         //  of the directory's entries (names, inodes, sizes, times)
    struct timespec dir_mtime;  //  the directory's own mtime at the last scan
    bool racy;                  //  that scan came within RACY_MS of a change
    int64_t last_scan;          //  monotonic ms
};

static void
s_cert_destroy (void **item)
{
    cert_t *cert = (cert_t *) *item;
    if (cert) {
        free (cert->name);
        free (cert->role);
        free (cert);
        *item = NULL;
    }
}

//  What zauth's certstore reads (czmq's zdir): every file under the directory, in
//  subdirectories too, except hidden ones and secret halves.
typedef void (walk_fn) (const char *path, const char *file, const struct stat *st, void *arg);
#define WALK_DEPTH 8            //  zdir follows symlinks; a loop must not hang the broker

static int
s_walk (const char *dir, int depth, walk_fn *fn, void *arg)
{
    DIR *d = opendir (dir);
    if (!d) {
        log_warn ("cannot read %s: %s", dir, strerror (errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir (d))) {
        char path[4096];
        struct stat st;
        size_t n = strlen (e->d_name);
        snprintf (path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || stat (path, &st) != 0)
            continue;
        if (S_ISDIR (st.st_mode) && depth < WALK_DEPTH)
            s_walk (path, depth + 1, fn, arg);
        else
        if (S_ISREG (st.st_mode) && !(n >= 7 && strcmp (e->d_name + n - 7, "_secret") == 0))
            fn (path, e->d_name, &st, arg);
    }
    closedir (d);
    return 0;
}

static uint64_t
s_fnv (uint64_t h, const void *data, size_t size)
{
    const unsigned char *p = (const unsigned char *) data;
    for (size_t i = 0; i < size; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static void
s_fold (const char *path, const char *file, const struct stat *st, void *arg)
{
    uint64_t *h = (uint64_t *) arg;
    uint64_t facts[] = { st->st_ino, (uint64_t) st->st_size, (uint64_t) st->st_mtim.tv_sec,
                         (uint64_t) st->st_mtim.tv_nsec };
    *h = s_fnv (*h, path, strlen (path) + 1);
    *h = s_fnv (*h, facts, sizeof facts);
}

//  A cheap fingerprint of what zauth would read: any cert added, removed, replaced or
//  rewritten changes it. *ok is false if the directory cannot be read.
static uint64_t
s_signature (const char *dir, bool *ok)
{
    uint64_t h = 14695981039346656037ULL;
    *ok = s_walk (dir, 0, s_fold, &h) == 0;
    return h;
}

static void
s_insert (const char *path, const char *file, const struct stat *st, void *arg)
{
    zhashx_t *keys = (zhashx_t *) arg;
    zcert_t *zc = zcert_load (path);
    if (!zc)
        return;                 //  not a cert: zauth skips it too
    cert_t *cert = (cert_t *) zmalloc (sizeof (cert_t));
    const char *name = zcert_meta (zc, "name");
    const char *role = zcert_meta (zc, "role");
    size_t n = strlen (file);
    cert->name = name ? strdup (name)
               : strndup (file, n > 5 && strcmp (file + n - 5, ".cert") == 0 ? n - 5 : n);
    cert->role = strdup (role ? role : "");
    zhashx_update (keys, zcert_public_txt (zc), cert);
    zcert_destroy (&zc);
}

//  Every cert under the directory, keyed by public key. NULL if it cannot be read.
static zhashx_t *
s_load (const char *dir)
{
    zhashx_t *keys = zhashx_new ();
    zhashx_set_destructor (keys, s_cert_destroy);
    if (s_walk (dir, 0, s_insert, keys) != 0)
        zhashx_destroy (&keys);
    return keys;
}

static void
s_note_dir_time (trust_t *self)
{
    struct stat st;
    if (stat (self->dir, &st) != 0) {
        log_warn ("cannot stat %s: %s", self->dir, strerror (errno));
        self->racy = true;      //  look again next time
        return;
    }
    self->dir_mtime = st.st_mtim;
    int64_t changed_ms = (int64_t) st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    self->racy = clock_wall_ms () - changed_ms < RACY_MS;
}

//  Rereads the directory if its signature changed. Returns the certs that are no longer
//  there (caller destroys), or NULL if nothing was removed.
static zhashx_t *
s_rescan (trust_t *self)
{
    self->last_scan = clock_mono_ms ();
    s_note_dir_time (self);
    bool ok;
    uint64_t signature = s_signature (self->dir, &ok);
    if (!ok || signature == self->signature)
        return NULL;
    zhashx_t *keys = s_load (self->dir);
    if (!keys)
        return NULL;            //  keep what we had: an unreadable directory revokes nothing
    self->signature = signature;
    zhashx_t *gone = self->keys;
    for (void *cert = zhashx_first (keys); cert; cert = zhashx_next (keys))
        zhashx_delete (gone, zhashx_cursor (keys));
    self->keys = keys;
    if (zhashx_size (gone) == 0)
        zhashx_destroy (&gone);
    return gone;
}

trust_t *
trust_new (const char *dir)
{
    trust_t *self = (trust_t *) zmalloc (sizeof (trust_t));
    self->dir = strdup (dir);
    self->last_scan = clock_mono_ms ();
    s_note_dir_time (self);
    bool ok;
    //  Fingerprint first, then load: a change in between shows at the next scan.
    self->signature = s_signature (dir, &ok);
    self->keys = ok ? s_load (dir) : NULL;
    if (!self->keys)
        trust_destroy (&self);
    return self;
}

void
trust_destroy (trust_t **self_p)
{
    if (*self_p) {
        trust_t *self = *self_p;
        zhashx_destroy (&self->keys);
        free (self->dir);
        free (self);
        *self_p = NULL;
    }
}

static void
s_record_gone (broker_t *broker, zhashx_t **gone_p)
{
    zhashx_t *gone = *gone_p;
    if (!gone)
        return;
    for (cert_t *cert = (cert_t *) zhashx_first (gone); cert; cert = (cert_t *) zhashx_next (gone)) {
        const char *key = (const char *) zhashx_cursor (gone);
        log_warn ("key %s (%s) is no longer in %s: its open connections are refused",
                  cert->name, key, broker->trust->dir);
        notify_forget_key (broker, key);
        json_t *data = json_pack ("{s:s, s:s, s:s, s:s}", "name", cert->name, "key", key,
                                  "role", cert->role, "reason", "removed from trusted/");
        backlog_event (broker, 0, "revoked", "broker", data);
        json_decref (data);
    }
    zhashx_destroy (gone_p);
}

//  The slow half of trust_check: only keys that are not (or no longer) trusted get here.
//  One stat of the directory says whether a cert may have been added since the last scan
//  (one added in a subdirectory is seen by the next tick instead).
static bool
s_check_again (broker_t *broker, const char *key)
{
    trust_t *self = broker->trust;
    struct stat st;
    if (stat (self->dir, &st) != 0)
        return false;           //  the tick's rescan says why, once a second, not per message
    bool changed = self->racy || st.st_mtim.tv_sec != self->dir_mtime.tv_sec
                || st.st_mtim.tv_nsec != self->dir_mtime.tv_nsec;
    if (!changed)
        return false;
    zhashx_t *gone = s_rescan (self);
    s_record_gone (broker, &gone);
    return zhashx_lookup (self->keys, key) != NULL;
}

bool
trust_check (broker_t *broker, const char *key)
{
    if (!key)
        return false;
    if (zhashx_lookup (broker->trust->keys, key))
        return true;
    return s_check_again (broker, key);
}

void
trust_tick (broker_t *broker)
{
    if (clock_mono_ms () - broker->trust->last_scan < RESCAN_MS)
        return;
    zhashx_t *gone = s_rescan (broker->trust);
    s_record_gone (broker, &gone);
}

bool
trust_forget (trust_t *self, const char *key)
{
    if (!zhashx_lookup (self->keys, key))
        return false;
    zhashx_delete (self->keys, key);
    return true;
}

//  rename(2) keeps the cert whole: a revoked key can be trusted again by moving it back.
static int
s_move_to_revoked (broker_t *broker, const char *name, const char *from)
{
    char dir[4096], to[4200];
    snprintf (dir, sizeof dir, "%s/keys/revoked", broker->cfg.dir);
    snprintf (to, sizeof to, "%s/%s.cert", dir, name);
    if (mkdir (dir, 0700) != 0 && errno != EEXIST) {
        log_error ("cannot create %s: %s", dir, strerror (errno));
        return -1;
    }
    if (rename (from, to) != 0) {
        log_error ("cannot move %s to %s: %s", from, to, strerror (errno));
        return -1;
    }
    return 0;
}

void
trust_revoke (broker_t *broker, caller_t *c, json_t *msg)
{
    const char *name = json_string_value (json_object_get (msg, "name"));
    if (strcmp (c->role, "admin") != 0) {
        broker_refuse (broker, c, PROTO_E_FORBIDDEN, "only admin keys may revoke");
        return;
    }
    if (!keys_name_valid (name)) {
        broker_refuse (broker, c, PROTO_E_BAD_VALUE, "field 'name' must be a key name: 1-64 of A-Z a-z 0-9 . _ -");
        return;
    }
    char from[4200];
    snprintf (from, sizeof from, "%s/%s.cert", broker->trust->dir, name);
    zcert_t *cert = zsys_file_exists (from) ? zcert_load (from) : NULL;
    if (!cert) {
        broker_refuse (broker, c, PROTO_E_NOT_FOUND, "no trusted key of that name");
        return;
    }
    if (s_move_to_revoked (broker, name, from) != 0) {
        broker_refuse (broker, c, PROTO_E_INTERNAL, "the cert could not be moved to keys/revoked");
        zcert_destroy (&cert);
        return;
    }
    trust_forget (broker->trust, zcert_public_txt (cert));
    notify_forget_key (broker, zcert_public_txt (cert));
    const char *role = zcert_meta (cert, "role");
    json_t *data = json_pack ("{s:s, s:s, s:s}", "name", name, "key", zcert_public_txt (cert),
                              "role", role ? role : "");
    log_info ("%s revoked key %s: its open connections are refused", c->principal, name);
    //  The key is revoked now whatever the database does; its event waits if it must.
    backlog_event (broker, 0, "revoked", c->principal, data);
    broker_send_client (broker, c->routing, proto_reply_ok (c->rid, json_pack (
        "{s:s, s:s, s:s}", "revoked", name, "key", zcert_public_txt (cert), "role", role ? role : "")));
    json_decref (data);
    zcert_destroy (&cert);
}

//  -------------------------------------------------------------------------
//  Self-test

static char *
s_make_cert (const char *dir, const char *name, const char *role)
{
    zcert_t *cert = zcert_new ();
    zcert_set_meta (cert, "name", "%s", name);
    zcert_set_meta (cert, "role", "%s", role);
    char path[1024];
    snprintf (path, sizeof path, "%s/%s.cert", dir, name);
    CHECK (zcert_save_public (cert, path) == 0);
    char *key = strdup (zcert_public_txt (cert));
    zcert_destroy (&cert);
    return key;
}

int
trust_test (void)
{
    char dir[] = "/tmp/replgate-trust-XXXXXX";
    CHECK (mkdtemp (dir) != NULL);
    char *alice = s_make_cert (dir, "alice", "agent");
    char *bob = s_make_cert (dir, "bob", "admin");
    char path[1024];
    snprintf (path, sizeof path, "%s/junk_secret", dir);
    FILE *f = fopen (path, "w");
    CHECK (f && fputs ("not read", f) >= 0 && fclose (f) == 0);
    trust_t *self = trust_new (dir);
    CHECK (self && zhashx_size (self->keys) == 2);
    CHECK (zhashx_lookup (self->keys, alice) && !zhashx_lookup (self->keys, "nope"));
    cert_t *cert = (cert_t *) zhashx_lookup (self->keys, bob);
    CHECK (cert && strcmp (cert->name, "bob") == 0 && strcmp (cert->role, "admin") == 0);
    //  Nothing changed: no reload, nothing gone.
    CHECK (s_rescan (self) == NULL);
    //  A deleted cert is reported once, with its name and role; one added back is trusted.
    snprintf (path, sizeof path, "%s/bob.cert", dir);
    CHECK (unlink (path) == 0);
    zhashx_t *gone = s_rescan (self);
    CHECK (gone && zhashx_size (gone) == 1 && zhashx_lookup (gone, bob));
    CHECK (!zhashx_lookup (self->keys, bob) && zhashx_lookup (self->keys, alice));
    zhashx_destroy (&gone);
    CHECK (s_rescan (self) == NULL);
    char *carol = s_make_cert (dir, "carol", "approver");
    CHECK (s_rescan (self) == NULL && zhashx_lookup (self->keys, carol));
    //  zauth reads subdirectories too, and skips hidden files.
    char sub[1024];
    snprintf (sub, sizeof sub, "%s/team", dir);
    CHECK (mkdir (sub, 0700) == 0);
    char *dave = s_make_cert (sub, "dave", "agent");
    snprintf (sub, sizeof sub, "%s/.hidden", dir);
    CHECK (mkdir (sub, 0700) == 0);
    char *eve = s_make_cert (sub, "eve", "agent");
    CHECK (s_rescan (self) == NULL && zhashx_lookup (self->keys, dave) && !zhashx_lookup (self->keys, eve));
    CHECK (trust_forget (self, alice) && !trust_forget (self, alice));
    trust_destroy (&self);
    CHECK (self == NULL);
    CHECK (trust_new ("/nonexistent/replgate-trust") == NULL);
    const char *names[] = { "alice.cert", "carol.cert", "junk_secret", "team/dave.cert",
                            ".hidden/eve.cert", "team", ".hidden" };
    for (size_t i = 0; i < 7; i++) {
        snprintf (path, sizeof path, "%s/%s", dir, names[i]);
        CHECK (remove (path) == 0);
    }
    CHECK (rmdir (dir) == 0);
    free (dave);
    free (eve);
    free (alice);
    free (bob);
    free (carol);
    return 0;
}
