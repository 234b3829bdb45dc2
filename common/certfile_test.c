/*  common/certfile_test.c: common/certfile.c against the files czmq itself writes, and
    against hand-written ones (quotes, comments, other sections, missing or short keys). Apart
    from certfile.c, since it needs czmq to write certs and the programs that link
    certfile.c do not load czmq. */
#include "common/certfile.h"
#include "common/check.h"
#include <czmq.h>

static void
s_write (const char *path, const char *text)
{
    FILE *f = fopen (path, "w");
    CHECK (f && fputs (text, f) >= 0 && fclose (f) == 0);
}

int
certfile_test (void)
{
    char dir[] = "/tmp/replgate-certfile-XXXXXX", pair[128], server[128], secret[160], err[1300];
    CHECK (mkdtemp (dir) != NULL);
    snprintf (pair, sizeof pair, "%s/agent.cert", dir);
    snprintf (secret, sizeof secret, "%s_secret", pair);
    snprintf (server, sizeof server, "%s/broker.cert", dir);
    zcert_t *client = zcert_new (), *broker = zcert_new ();
    zcert_set_meta (client, "name", "agent");
    CHECK (zcert_save (client, pair) == 0 && zcert_save_public (broker, server) == 0);

    //  What czmq wrote reads back as czmq holds it, by the cert's name or its _secret file.
    zmtp_keys_t keys;
    CHECK (certfile_load (pair, server, &keys, err, sizeof err) == 0);
    CHECK (memcmp (keys.public_key, zcert_public_key (client), 32) == 0);
    CHECK (memcmp (keys.secret_key, zcert_secret_key (client), 32) == 0);
    CHECK (memcmp (keys.server_key, zcert_public_key (broker), 32) == 0);
    memset (&keys, 0, sizeof keys);
    CHECK (certfile_load (secret, server, &keys, err, sizeof err) == 0);
    CHECK (memcmp (keys.secret_key, zcert_secret_key (client), 32) == 0);

    //  Each file missing, or holding no usable key, names itself; nothing is left behind.
    char other[160];
    snprintf (other, sizeof other, "%s/nobody.cert", dir);
    CHECK (certfile_load (other, server, &keys, err, sizeof err) == -1);
    CHECK (strstr (err, "no key file: ") && strstr (err, "nobody.cert_secret"));
    uint8_t zero[sizeof keys] = { 0 };
    CHECK (memcmp (&keys, zero, sizeof keys) == 0);
    CHECK (certfile_load (pair, other, &keys, err, sizeof err) == -1);
    CHECK (strstr (err, "no key file: ") && strstr (err, "nobody.cert") && !strstr (err, "_secret"));
    CHECK (memcmp (&keys, zero, sizeof keys) == 0);
    s_write (other, "metadata\n    name = \"x\"\n");
    CHECK (certfile_load (pair, other, &keys, err, sizeof err) == -1);
    CHECK (strstr (err, "cannot read a public key from ") != NULL);
    snprintf (other, sizeof other, "%s/nobody.cert_secret", dir);
    s_write (other, "curve\n    public-key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"\n"
                    "    secret-key = \"0000000000000000000000000000000000000000\"\n");
    snprintf (other, sizeof other, "%s/nobody.cert", dir);
    CHECK (certfile_load (other, server, &keys, err, sizeof err) == -1);
    CHECK (strstr (err, "cannot read a key pair from ") != NULL);

    //  The ZPL that czmq accepts: no quotes, single quotes, comments, blank lines, CRLF; keys
    //  outside `curve` or of the wrong length are not keys.
    char pub[41], sec[41];
    s_write (other, "# a comment\r\n\r\nmetadata\r\n    public-key = \"0123456789012345678901234567890123456789\"\r\n"
                    "curve # the keys\r\n    public-key = rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\r\n"
                    "    secret-key = 'JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6'\r\n");
    CHECK (certfile_z85 (other, pub, sec) == 0);
    CHECK (strcmp (pub, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7") == 0);
    CHECK (strcmp (sec, "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6") == 0);
    s_write (other, "curve\n    public-key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf\"\n"
                    "    secret-key = \"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\n");
    CHECK (certfile_z85 (other, pub, sec) == 0 && pub[0] == 0 && sec[0] == 0);
    CHECK (certfile_z85 ("/nonexistent/x.cert", pub, sec) == -1);
    //  From memory: no newline at the end, a NUL, a line longer than any buffer.
    const char text[] = "curve\n    secret-key = \"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\"\n\0junk\n"
                        "    public-key = rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    certfile_parse (text, sizeof text - 1, pub, sec);
    CHECK (strcmp (pub, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7") == 0 && strlen (sec) == 40);
    char long_line[2000];
    memset (long_line, 'x', sizeof long_line);
    memcpy (long_line, "curve\n    public-key = ", 23);
    certfile_parse (long_line, sizeof long_line, pub, sec);
    CHECK (pub[0] == 0 && sec[0] == 0);
    certfile_parse ("curve", 5, pub, sec);
    CHECK (pub[0] == 0 && sec[0] == 0);

    zcert_destroy (&client);
    zcert_destroy (&broker);
    CHECK (check_remove_dir (dir) == 0);
    return 0;
}
