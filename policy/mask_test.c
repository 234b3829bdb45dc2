/*  policy/mask_test.c: mask_test, the masker's self-test: every built-in detector, exact
    secrets in their encoded forms, custom patterns, hostile inputs that must stay linear and
    several MiB of ordinary output. */
#include "policy/mask.h"
#include "common/check.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool
s_masks_to (mask_t *mask, const char *in, const char *want)
{
    size_t n = 0;
    int count = -1;
    char *out = mask_apply (mask, in, strlen (in), &n, &count);
    bool ok = out && strcmp (out, want) == 0 && n == strlen (want)
              && (count > 0) == (strcmp (in, want) != 0);
    if (!ok)
        fprintf (stderr, "mask: %s\n  got  %s\n  want %s\n", in, out ? out : "(null)", want);
    free (out);
    //  Masking is idempotent: what came out goes through again unchanged (the broker masks
    //  what the worker masked already).
    if (ok && (out = mask_apply (mask, want, strlen (want), &n, &count))) {
        ok = strcmp (out, want) == 0 && count == 0;
        if (!ok)
            fprintf (stderr, "mask again: %s\n  got  %s\n", want, out);
        free (out);
    }
    return ok;
}

//  Inputs that must come out unchanged.
static bool
s_keeps (mask_t *mask, const char *in)
{
    return s_masks_to (mask, in, in);
}

static void
s_test_keys (mask_t *m)
{
    CHECK (s_masks_to (m, "key AKIAIOSFODNN7EXAMPLE end", "key [MASKED:aws-access-key-id] end"));
    CHECK (s_masks_to (m, "ASIAY34FZKBOKMUTVV7A", "[MASKED:aws-access-key-id]"));
    CHECK (s_keeps (m, "AKIAIOSFODNN7EXAMP and AKIAIOSFODNN7EXAMPLEX and akiaiosfodnn7example"));
    CHECK (s_masks_to (m, "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
                       "aws_secret_access_key = [MASKED:aws-secret-access-key]\n"));
    CHECK (s_masks_to (m, "{\"SecretAccessKey\": \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"}",
                       "{\"SecretAccessKey\": \"[MASKED:aws-secret-access-key]\"}"));
    CHECK (s_keeps (m, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY aws_secret_access_key = short"));
    const char *gh[] = { "ghp_", "gho_", "ghu_", "ghs_", "ghr_" };
    for (size_t i = 0; i < 5; i++) {
        char in[128];
        snprintf (in, sizeof in, "token %s%s.", gh[i], "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789");
        CHECK (s_masks_to (m, in, "token [MASKED:github-token]."));
    }
    CHECK (s_masks_to (m, "github_pat_11ABCDEFG0123456789abcd_EFGHIJKLMNOPQRSTUVWXYZabcdefghij"
                          "klmnopqrstuvwxyz0123456789ABCDEFGHIJ",
                       "[MASKED:github-token]"));
    CHECK (s_keeps (m, "ghp_short ghx_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 github_pat_x"));
    CHECK (s_masks_to (m, "SLACK=xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx ok",
                       "SLACK=[MASKED:slack-token] ok"));
    CHECK (s_masks_to (m, "xoxp-1234-5678-abcd xoxa-2-abcdefghij xapp-1-A0123456-789-abc",
                       "[MASKED:slack-token] [MASKED:slack-token] [MASKED:slack-token]"));
    CHECK (s_keeps (m, "xoxb-123 xoxz-1234567890-abcdef"));
    CHECK (s_masks_to (m, "POST https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXX",
                       "POST https://hooks.slack.com/services/[MASKED:slack-webhook]"));
    CHECK (s_keeps (m, "see https://hooks.slack.com/ and https://hooks.slack.com/services/"));
}

static void
s_test_tokens (mask_t *m)
{
    CHECK (s_masks_to (m, "Authorization: Bearer abc.def-ghi\r\n",
                       "Authorization: Bearer [MASKED:bearer-token]\r\n"));
    CHECK (s_masks_to (m, "-H 'authorization: bearer Zm9vYmFyYmF6cXV4MTIzNDU2'",
                       "-H 'authorization: bearer [MASKED:bearer-token]'"));
    CHECK (s_masks_to (m, "use Bearer 3f9a8b7c6d5e4f3a2b1c now", "use Bearer [MASKED:bearer-token] now"));
    CHECK (s_masks_to (m, "Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [MASKED:basic-auth]"));
    CHECK (s_keeps (m, "the bearer of bad news; Bearer token required; Bearer responsibilities"));
    const char *jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6Ikpv"
                      "aG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    char in[512];
    snprintf (in, sizeof in, "jwt=%s;", jwt);
    CHECK (s_masks_to (m, in, "jwt=[MASKED:jwt];"));
    snprintf (in, sizeof in, "cookie: %s\n", jwt);
    CHECK (s_masks_to (m, in, "cookie: [MASKED:jwt]\n"));
    CHECK (s_keeps (m, "com.example.package eyJustkidding.notreallyatoken.x eyJhbGciOiJ.x.y"));
}

static void
s_test_pem (mask_t *m)
{
    const char *block = "-----BEGIN RSA PRIVATE KEY-----\n"
                        "MIIEowIBAAKCAQEAx3R2mXv0Vq8vJx1Yb8m4kq9Zt5pJq2r3W0zL1s8f6e7d9c0b\n"
                        "Zt5pJq2r3W0zL1s8f6e7d9c0bMIIEowIBAAKCAQEAx3R2mXv0Vq8vJx1Yb8m4k==\n"
                        "-----END RSA PRIVATE KEY-----";
    char in[1024];
    snprintf (in, sizeof in, "key:\n%s\nafter", block);
    CHECK (s_masks_to (m, in, "key:\n[MASKED:private-key]\nafter"));
    CHECK (s_masks_to (m, "'-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU"
                          "AAAAEbm9uZQ\\n-----END OPENSSH PRIVATE KEY-----\\n'",
                       "'[MASKED:private-key]\\n'"));
    //  Cut short by an output limit: still masked to the end.
    CHECK (s_masks_to (m, "x -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ",
                       "x [MASKED:private-key]"));
    CHECK (s_keeps (m, "grep for BEGIN PRIVATE KEY in files"));
    CHECK (s_keeps (m, "echo '-----BEGIN PRIVATE KEY-----' > marker.txt\ndone"));
    CHECK (s_keeps (m, "-----BEGIN PRIVATE KEY-----\n"));
    CHECK (s_keeps (m, "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
                       "-----END PUBLIC KEY-----"));
}

static void
s_test_passwords (mask_t *m)
{
    CHECK (s_masks_to (m, "password=hunter2", "password=[MASKED:password]"));
    CHECK (s_masks_to (m, "DB_PASSWORD: 's3cr3t!' x", "DB_PASSWORD: '[MASKED:password]' x"));
    CHECK (s_masks_to (m, "{\"api_key\": \"abc 123\", \"n\": 1}", "{\"api_key\": \"[MASKED:password]\", \"n\": 1}"));
    CHECK (s_masks_to (m, "GET /x?token=abc123&page=2", "GET /x?token=[MASKED:password]&page=2"));
    CHECK (s_masks_to (m, "client_secret = Zx9", "client_secret = [MASKED:password]"));
    CHECK (s_keeps (m, "password=\nEnter password:\npassword:\nnext\nif password == other: pass\n"));
    CHECK (s_keeps (m, "passwords are hashed; \"password\": \"\"; bypass=1; token_count=3"));
    CHECK (s_masks_to (m, "postgres://admin:hunter2@db.internal:5432/app",
                       "postgres://admin:[MASKED:url-password]@db.internal:5432/app"));
    CHECK (s_masks_to (m, "redis://:p%40ss@cache:6379", "redis://:[MASKED:url-password]@cache:6379"));
    CHECK (s_keeps (m, "https://example.com:443/path and ftp://host/a:b@c ok"));
}

static void
s_test_cards_mails (mask_t *m)
{
    CHECK (s_masks_to (m, "card 4111 1111 1111 1111 exp", "card [MASKED:card-number] exp"));
    CHECK (s_masks_to (m, "4111-1111-1111-1111", "[MASKED:card-number]"));
    CHECK (s_masks_to (m, "n=5555555555554444;", "n=[MASKED:card-number];"));
    CHECK (s_masks_to (m, "amex 3782 822463 10005.", "amex [MASKED:card-number]."));
    CHECK (s_keeps (m, "4111111111111112 4111 1111 1111 1112 4111 1111-1111 1111"));
    CHECK (s_keeps (m, "ts=1700000000000 id=0000000000000000 x=12345678901234567890123"));
    CHECK (s_keeps (m, "[[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]]"));
    CHECK (s_masks_to (m, "mail bob.smith+tag@example.co.uk.", "mail [MASKED:email]."));
    CHECK (s_masks_to (m, "<alice@corp.example>", "<[MASKED:email]>"));
    CHECK (s_keeps (m, "user@localhost numpy@1.26 @decorator a@b.c x@-bad.com"));
}

static void
s_test_secrets (void)
{
    mask_t *m = mask_new ();
    CHECK (mask_add_secret (m, "db", "s3cr3t-V4lue!") == 0);
    CHECK (mask_add_secret (m, "bad name", "x") == -1);
    CHECK (mask_add_secret (m, "empty", "") == -1);
    CHECK (s_masks_to (m, "s3cr3t-V4lue!", "[MASKED:db]"));
    CHECK (s_masks_to (m, "a s3cr3t-V4lue! b s3cr3t-V4lue!", "a [MASKED:db] b [MASKED:db]"));
    CHECK (s_masks_to (m, "?p=s3cr3t-V4lue%21&q=s3cr3t-V4lue%21", "?p=[MASKED:db]&q=[MASKED:db]"));
    //  base64 of the secret alone and after 1 or 2 bytes (inside a larger blob): only the
    //  characters that carry the secret's bits are masked.
    CHECK (s_masks_to (m, "czNjcjN0LVY0bHVlIQ==", "[MASKED:db]Q=="));
    CHECK (s_masks_to (m, "YXMzY3IzdC1WNGx1ZSE=", "YX[MASKED:db]E="));
    CHECK (s_masks_to (m, "YWJzM2NyM3QtVjRsdWUh", "YWJ[MASKED:db]"));
    CHECK (s_keeps (m, "s3cr3t-V4lue s3cr3t-v4lue!"));

    //  Overlaps: the union is masked once, under the most specific name.
    CHECK (mask_add_secret (m, "api", "abcdef123456") == 0);
    CHECK (mask_add_pattern (m, "ticket", "[0-9]{6}XYZ", NULL, 0) == 0);
    CHECK (s_masks_to (m, "id=abcdef123456XYZ.", "id=[MASKED:api]."));
    CHECK (s_masks_to (m, "password=abcdef123456", "password=[MASKED:api]"));
    CHECK (s_masks_to (m, "password=ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
                       "password=[MASKED:github-token]"));
    //  Adjacent hits stay two masks.
    CHECK (s_masks_to (m, "abcdef123456s3cr3t-V4lue!", "[MASKED:api][MASKED:db]"));
    mask_destroy (&m);
    CHECK (m == NULL);
    mask_destroy (&m);
}

static void
s_test_custom (void)
{
    mask_t *m = mask_new ();
    char err[256] = "";
    CHECK (mask_add_pattern (m, "internal-token", "itk_[a-z0-9]{32}", err, sizeof err) == 0);
    CHECK (mask_add_pattern (m, "sess", "(?<![a-z])session=(?<secret>[a-f0-9]{16})", err, sizeof err) == 0);
    CHECK (s_masks_to (m, "itk_0123456789abcdef0123456789abcdef",
                       "[MASKED:internal-token]"));
    CHECK (s_masks_to (m, "x session=0123456789abcdef y", "x session=[MASKED:sess] y"));
    CHECK (s_keeps (m, "itk_0123 session=xyz"));
    CHECK (mask_add_pattern (m, "broken", "a(b", err, sizeof err) == -1);
    CHECK (strstr (err, "missing closing parenthesis") && strstr (err, "offset 3"));
    CHECK (mask_add_pattern (m, "no spaces", "a", err, sizeof err) == -1);
    CHECK (mask_add_pattern (m, "utf", "(*UTF)a", err, sizeof err) == -1);
    size_t off = 99;
    CHECK (mask_check_pattern ("ok[a-z]+", &off, err, sizeof err) == 0);
    CHECK (mask_check_pattern ("x{2,1}", &off, err, sizeof err) == -1 && off == 5);
    CHECK (mask_add_pattern (m, "cafe", "caf.", err, sizeof err) == 0);
    CHECK (s_masks_to (m, "un caf\xc3\xa9!", "un [MASKED:cafe]!"));       //  whole characters

    //  An exponential pattern is over budget: its line is masked, the rest is scanned.
    CHECK (mask_add_pattern (m, "evil", "(x+x+)+y", err, sizeof err) == 0);
    char *hostile = malloc (6000);
    memset (hostile, 'x', 5000);
    strcpy (hostile + 5000, "!y\nok line xxy\n");
    size_t n;
    int count;
    int64_t t0 = clock ();
    char *out = mask_apply (m, hostile, strlen (hostile), &n, &count);
    double secs = (double) (clock () - t0) / CLOCKS_PER_SEC;
    CHECK (out && strcmp (out, "[MASKED:evil]\nok line [MASKED:evil]\n") == 0);
    CHECK (secs < 5);
    free (out);
    free (hostile);
    mask_destroy (&m);
}

//  Hostile shapes for each detector, a MiB each: every one must finish fast (linear scans).
static void
s_test_hostile (void)
{
    const char *units[] = { "a", "1", "1 ", "-----BEGIN PRIVATE KEY-----", "eyJ", "eyJabcdefghij.",
                            "password=", "Bearer ", "https://", "a@", "a@b.", "xoxb-", "ghp_",
                            "AKIA", "authorization: bearer ", "-", "s://u:", "4111 ", "A",
                            "DBPASS", "mysql ", "mysql -u ", "sshpass ", "--password ",
                            "password is ", "[MASKED:x]", "password=[MASKED:x]", "[MASKED:" };
    mask_t *m = mask_new ();
    size_t size = 1024 * 1024;
    char *buf = malloc (size + 64);
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t ulen = strlen (units[u]), n = 0;
        while (n + ulen <= size) {
            memcpy (buf + n, units[u], ulen);
            n += ulen;
        }
        clock_t t0 = clock ();
        size_t out_len;
        char *out = mask_apply (m, buf, n, &out_len, NULL);
        double secs = (double) (clock () - t0) / CLOCKS_PER_SEC;
        CHECK (out != NULL);
        CHECK (secs < 2.0);
        if (secs >= 2.0)
            fprintf (stderr, "mask: hostile '%s' took %.2fs\n", units[u], secs);
        free (out);
    }
    free (buf);
    mask_destroy (&m);
}

//  Several MiB of ordinary output with secrets sprinkled in, at the start and at the end.
static void
s_test_large (void)
{
    mask_t *m = mask_new ();
    CHECK (mask_add_secret (m, "vault", "Vv9-secret-value-42") == 0);
    const char *line = "2026-01-01T00:00:00Z INFO request id=1234 path=/api/v1/items took 12ms ok\n";
    size_t llen = strlen (line), size = 4 * 1024 * 1024, n = 0;
    char *buf = malloc (size + 256);
    n += (size_t) sprintf (buf, "Vv9-secret-value-42 ");
    for (size_t i = 0; n + llen + 64 < size; i++) {
        if (i % 10000 == 5000)
            n += (size_t) sprintf (buf + n, "key AKIAIOSFODNN7EXAMPLE\n");
        memcpy (buf + n, line, llen);
        n += llen;
    }
    n += (size_t) sprintf (buf + n, "end Vv9-secret-value-42");
    clock_t t0 = clock ();
    size_t out_len;
    int count = 0;
    char *out = mask_apply (m, buf, n, &out_len, &count);
    double secs = (double) (clock () - t0) / CLOCKS_PER_SEC;
    CHECK (out && count >= 2 + (int) (n / llen / 10000));
    CHECK (out && strncmp (out, "[MASKED:vault] ", 15) == 0);
    CHECK (out && out_len > 14 && strcmp (out + out_len - 14, "[MASKED:vault]") == 0);
    CHECK (out && !strstr (out, "AKIAIOSFODNN7EXAMPLE") && !strstr (out, "Vv9-secret"));
    CHECK (secs < 4.0);
    if (secs >= 1.0)
        fprintf (stderr, "mask: 4 MiB took %.2fs\n", secs);
    free (out);

    //  Embedded NUL bytes are data like any other.
    const char bin[] = "\0pre\0AKIAIOSFODNN7EXAMPLE\0";
    out = mask_apply (m, bin, sizeof bin - 1, &out_len, &count);
    CHECK (out && count == 1 && out_len == 5 + strlen ("[MASKED:aws-access-key-id]") + 1);
    CHECK (out && memcmp (out, "\0pre\0[MASKED:aws-access-key-id]\0", out_len) == 0);
    free (out);
    out = mask_apply (m, NULL, 0, &out_len, &count);
    CHECK (out && out_len == 0 && count == 0 && *out == 0);
    free (out);
    free (buf);
    mask_destroy (&m);
}

//  Credentials in the shapes environment dumps, command lines and prose give them: only the
//  value is masked, the key stays readable.
static void
s_test_shapes (mask_t *m)
{
    CHECK (s_masks_to (m, "PGPASSWORD=hunter2 psql -h db", "PGPASSWORD=[MASKED:password] psql -h db"));
    CHECK (s_masks_to (m, "MYSQL_PWD=hunter2\n", "MYSQL_PWD=[MASKED:password]\n"));
    CHECK (s_masks_to (m, "GITHUB_TOKEN=gh0-abc\nAPI_TOKEN=x9y8\n",
                       "GITHUB_TOKEN=[MASKED:password]\nAPI_TOKEN=[MASKED:password]\n"));
    CHECK (s_masks_to (m, "DBPASS=hunter2\nSMTP_PASS=s3cret!\nDB_PASSWD=x\n",
                       "DBPASS=[MASKED:password]\nSMTP_PASS=[MASKED:password]\nDB_PASSWD=[MASKED:password]\n"));
    CHECK (s_masks_to (m, "export REDISPASSWORD='a b' CLIENTSECRET=z",
                       "export REDISPASSWORD='[MASKED:password]' CLIENTSECRET=[MASKED:password]"));
    CHECK (s_masks_to (m, "mysqldump --password hunter2 app", "mysqldump --password [MASKED:password] app"));
    CHECK (s_masks_to (m, "mysql --password=hunter2 app", "mysql --password=[MASKED:password] app"));
    CHECK (s_masks_to (m, "tool --token \"t k\" --api-key K3y", "tool --token \"[MASKED:password]\" --api-key [MASKED:password]"));
    CHECK (s_masks_to (m, "mysql -uroot -phunter2 app", "mysql -uroot -p[MASKED:password] app"));
    CHECK (s_masks_to (m, "$ mysqladmin -h db -u root -p'hun ter2' status",
                       "$ mysqladmin -h db -u root -p'[MASKED:password]' status"));
    CHECK (s_masks_to (m, "sshpass -p s3cret ssh host; sshpass -v -ps3 ssh -p 22 h",
                       "sshpass -p [MASKED:password] ssh host; sshpass -v -p[MASKED:password] ssh -p 22 h"));
    CHECK (s_masks_to (m, "Your password is hunter2 now", "Your password is [MASKED:password] now"));
    CHECK (s_masks_to (m, "The new password is: 'x y'", "The new password is: '[MASKED:password]'"));
    CHECK (s_masks_to (m, "password: hunter2\n", "password: [MASKED:password]\n"));
    CHECK (s_keeps (m, "bypass=1 PGPASSFILE=/x/.pgpass OLDPWD=/tmp PASSWORD_MIN_LEN=8 token_count=3"));
    CHECK (s_keeps (m, "mysql --password --host db\nmkdir -p /tmp/x; gcc -pthread; ssh -p22 h; mysql -p"));
    CHECK (s_keeps (m, "sshpass -f file ssh -p 22 host\nuse --token to log in, or --password if asked"));
    CHECK (s_keeps (m, "mysql -u root -p app_db"));
    CHECK (s_keeps (m, "mysql -P3306 -e 'select 1'; cp -pR a b\nmysql -u root -p\n"));
    CHECK (s_keeps (m, "the password is incorrect; Password is required; the token is expired"));
}

//  Text masked once (by the worker, or by a first pass) is left exactly as it is by pattern
//  detectors; exact secrets are still masked wherever they are.
static void
s_test_idempotent (void)
{
    mask_t *m = mask_new ();
    char err[256];
    CHECK (mask_add_pattern (m, "upper", "[A-Z]{2,}_[A-Z]+", err, sizeof err) == 0);
    CHECK (s_keeps (m, "password=[MASKED:DB_PASSWORD]"));
    CHECK (s_keeps (m, "{\"password\": \"[MASKED:DB_PASSWORD]\"} pwd: [MASKED:x.y-z]"));
    CHECK (s_keeps (m, "postgres://admin:[MASKED:DB_PASSWORD]@db:5432/app"));
    CHECK (s_keeps (m, "PGPASSWORD=[MASKED:PG_PASS] mysql -p[MASKED:M] --password [MASKED:P]"));
    CHECK (s_keeps (m, "password is [MASKED:password]"));
    //  What is not a mask token is masked as usual; a value around a token loses the rest.
    CHECK (s_masks_to (m, "password=[MASKED:bad name]", "password=[MASKED:password] name]"));
    CHECK (s_masks_to (m, "token=abc[MASKED:X]", "token=[MASKED:password][MASKED:X]"));
    CHECK (s_masks_to (m, "DB_HOST", "[MASKED:upper]"));
    CHECK (mask_add_secret (m, "s", "SHIELD") == 0);
    CHECK (s_masks_to (m, "[MASKED:SHIELD]", "[MASKED:[MASKED:s]]"));
    mask_destroy (&m);

    //  A masker without built-ins (the worker's) masks only what it is given.
    m = mask_new_empty ();
    CHECK (m && mask_add_secret (m, "DB_PASSWORD", "hunter2") == 0);
    CHECK (s_masks_to (m, "password=hunter2 AKIAIOSFODNN7EXAMPLE a@b.example",
                       "password=[MASKED:DB_PASSWORD] AKIAIOSFODNN7EXAMPLE a@b.example"));
    mask_destroy (&m);
}

//  A secret holding a quote, a backslash and non-ASCII text, in the forms Python and bash
//  print it: json.dumps (ensure_ascii or not), repr / ascii of str and bytes, printf %q.
static void
s_test_secret_forms (void)
{
    mask_t *m = mask_new_empty ();
    CHECK (mask_add_secret (m, "q", "pa\"ss\\w\xc3\xb6rd") == 0);
    CHECK (s_masks_to (m, "\"pa\\\"ss\\\\w\\u00f6rd\"", "\"[MASKED:q]\""));
    CHECK (s_masks_to (m, "\"pa\\\"ss\\\\w\\u00F6rd\"", "\"[MASKED:q]\""));
    CHECK (s_masks_to (m, "\"pa\\\"ss\\\\w\xc3\xb6rd\"", "\"[MASKED:q]\""));
    CHECK (s_masks_to (m, "'pa\"ss\\\\w\\xf6rd'", "'[MASKED:q]'"));
    CHECK (s_masks_to (m, "'pa\"ss\\\\w\xc3\xb6rd'", "'[MASKED:q]'"));
    CHECK (s_masks_to (m, "b'pa\"ss\\\\w\\xc3\\xb6rd'", "b'[MASKED:q]'"));
    CHECK (s_masks_to (m, "X=pa\\\"ss\\\\w\xc3\xb6rd\n", "X=[MASKED:q]\n"));
    CHECK (s_masks_to (m, "$'pa\"ss\\\\w\\303\\266rd'", "$'[MASKED:q]'"));
    CHECK (s_masks_to (m, "pa%22ss%5Cw%C3%B6rd", "[MASKED:q]"));
    //  Cut short by an output limit: the start of a form at the very end is masked.
    size_t n;
    int count;
    const char *cut = "x \"pa\\\"ss\\\\w\\u00";
    char *out = mask_apply_cut (m, cut, strlen (cut), &n, &count);
    CHECK (out && strcmp (out, "x \"[MASKED:q]") == 0 && count == 1 && n == 13);
    free (out);
    cut = "pa\"ss\\w\xc3\xb6rd pa";
    out = mask_apply_cut (m, cut, strlen (cut), &n, &count);
    CHECK (out && strcmp (out, "[MASKED:q] [MASKED:q]") == 0 && count == 2);
    free (out);
    cut = "x pa\"s y";
    out = mask_apply_cut (m, cut, strlen (cut), &n, &count);
    CHECK (out && strcmp (out, "x pa\"s y") == 0 && count == 0);
    free (out);
    CHECK (s_keeps (m, "x pa\"ss\\w"));
    //  Escaped twice: json.dumps (json.dumps (s)), repr (repr (s)).
    CHECK (s_masks_to (m, "\"\\\"pa\\\\\\\"ss\\\\\\\\w\\\\u00f6rd\\\"\"",
                       "\"\\\"[MASKED:q]\\\"\""));
    CHECK (s_masks_to (m, "'\\'pa\"ss\\\\\\\\w\xc3\xb6rd\\''", "'\\'[MASKED:q]\\''"));
    //  Quotes and tildes whose escaping depends on what surrounds the secret.
    CHECK (mask_add_secret (m, "t", "~o'k:~") == 0);
    CHECK (s_masks_to (m, "\\~o\\'k:\\~ a~o\\'k:\\~", "[MASKED:t] a[MASKED:t]"));
    CHECK (s_masks_to (m, "'\"~o\\'k:~' \"~o'k:~\"", "'\"[MASKED:t]' \"[MASKED:t]\""));
    CHECK (s_masks_to (m, "'~o'\\''k:~' '~o'\"'\"'k:~'", "'[MASKED:t]' '[MASKED:t]'"));
    //  Characters beyond the BMP and control characters.
    CHECK (mask_add_secret (m, "e", "k\xe2\x82\xacy\xf0\x9f\x98\x80") == 0);
    CHECK (s_masks_to (m, "\"k\\u20acy\\ud83d\\ude00\" 'k\\u20acy\\U0001f600'", "\"[MASKED:e]\" '[MASKED:e]'"));
    CHECK (s_masks_to (m, "b'k\\xe2\\x82\\xacy\\xf0\\x9f\\x98\\x80'", "b'[MASKED:e]'"));
    CHECK (s_masks_to (m, "$'k\\342\\202\\254y\\360\\237\\230\\200'", "$'[MASKED:e]'"));
    CHECK (mask_add_secret (m, "c", "a\tb\x01" "c\x7f") == 0);
    CHECK (s_masks_to (m, "\"a\\tb\\u0001c\\u007f\" \"a\\tb\\u0001c\x7f\"", "\"[MASKED:c]\" \"[MASKED:c]\""));
    CHECK (s_masks_to (m, "'a\\tb\\x01c\\x7f' $'a\\tb\\001c\\177'", "'[MASKED:c]' $'[MASKED:c]'"));
    //  Invalid UTF-8 is masked as bytes; the forms that need characters are left out.
    CHECK (mask_add_secret (m, "bin", "zz\xff\xfezz") == 0);
    CHECK (s_masks_to (m, "zz\xff\xfezz b'zz\\xff\\xfezz'", "[MASKED:bin] b'[MASKED:bin]'"));
    mask_destroy (&m);
}

int
mask_test (void)
{
    mask_t *m = mask_new ();
    CHECK (m != NULL);
    if (!m)
        return -1;
    s_test_keys (m);
    s_test_tokens (m);
    s_test_pem (m);
    s_test_passwords (m);
    s_test_cards_mails (m);
    s_test_shapes (m);
    mask_destroy (&m);
    s_test_secrets ();
    s_test_idempotent ();
    s_test_secret_forms ();
    s_test_custom ();
    s_test_hostile ();
    s_test_large ();
    return 0;
}
