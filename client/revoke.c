/*  client/revoke.c: `replgate revoke NAME`: the broker moves the key's cert out of
    trusted/ and refuses its open connections from then on (admin key). */
#include "client/cli.h"
#include "common/util.h"
#include <string.h>

//  Exit code for a refusal: the broker said no (forbidden) or knows no such key: 3, like a
//  denied request; a malformed name: 2.
static int
s_refused (cli_t *cli, json_t *reply)
{
    json_t *error = json_object_get (reply, "error");
    const char *code = json_string_value (json_object_get (error, "code"));
    if (cli->json) {
        char *text = json_dumps (reply, JSON_COMPACT);
        printf ("%s\n", text);
        free (text);
    }
    else
        fprintf (stderr, "replgate revoke: %s: %s\n", code ? code : "?",
                 json_string_value (json_object_get (error, "message")));
    if (code && (strcmp (code, "forbidden") == 0 || strcmp (code, "not_found") == 0))
        return EXIT_DENIED;
    return code && strcmp (code, "internal") == 0 ? EXIT_FAILED : EXIT_USAGE;
}

int
cmd_revoke (cli_t *cli)
{
    if (cli->argc != 1 || !*cli->argv[0]) {
        fprintf (stderr, "replgate revoke: expects one key NAME (DIR/keys/trusted/NAME.cert)\n");
        return EXIT_USAGE;
    }
    int rc;
    conn_t *conn = cli_connect (cli, "admin", &rc);
    if (!conn)
        return rc;
    json_t *req = json_pack ("{s:s, s:s}", "op", "revoke", "name", cli->argv[0]);
    json_t *reply = conn_call (conn, req, 5000);
    json_decref (req);
    conn_destroy (&conn);
    if (!reply) {
        fprintf (stderr, "replgate: no answer from the broker within 5000 ms "
                 "(is it running? is your key trusted?)\n");
        return EXIT_UNREACHABLE;
    }
    rc = EXIT_OK;
    if (!json_is_true (json_object_get (reply, "ok")))
        rc = s_refused (cli, reply);
    else if (cli->json) {
        json_object_del (reply, "ok");
        json_object_del (reply, "rid");
        char *text = json_dumps (reply, JSON_COMPACT);
        printf ("%s\n", text);
        free (text);
    }
    else
        printf ("revoked %s (role %s, key %s): its cert is now in keys/revoked/, "
                "its open connections are refused\n", cli->argv[0],
                json_string_value (json_object_get (reply, "role")),
                json_string_value (json_object_get (reply, "key")));
    json_decref (reply);
    return rc;
}
