/*  policy/mask_builtins.c: the built-in detectors of the masker (cloud and API keys, private
    key blocks, JWTs, passwords in key=value, environment dumps, command lines, prose and URLs,
    card numbers, e-mail addresses) and the validators that confirm or narrow their matches. */
#include "policy/mask_int.h"
#include <string.h>

static check_fn s_check_card, s_check_email, s_check_jwt, s_check_pem;

//  A credential's value after its key: quoted (the quotes stay) or up to a delimiter.
#define VALUE "(?|\"(?<secret>[^\"\\r\\n]{1,512})\"|'(?<secret>[^'\\r\\n]{1,512})'" \
              "|(?<secret>[^\\s\"',;&)\\]}]{1,512}))"
//  "=" or ":" between a key and its value, but not "==", "=>", "::" or ":=".
#define ASSIGN "[\"']?[ \\t]*(?:=(?![=>~])|:(?![:=]))[ \\t]*"

//  --------------------------------------------------------------------------
//  Built-in detectors. Each starts with a negative lookbehind of its own first-character
//  class so that matching is attempted once per token, which keeps hostile output linear.

const mask_builtin_t mask_builtins[] = {
    { "aws-access-key-id", RANK_SPECIFIC,
      "(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])", NULL },
    { "aws-secret-access-key", RANK_SPECIFIC,
      "(?i)(?<![a-z0-9])(?:(?:aws[_-]?)?secret[_-]?access[_-]?key|aws[_-]?secret[_-]?key)[\"']?"
      "[ \\t]*[:=][ \\t]*[\"']?(?<secret>[a-z0-9/+=]{40})(?![a-z0-9/+=])", NULL },
    { "github-token", RANK_SPECIFIC,
      "(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{50,240})"
      "(?![A-Za-z0-9_])", NULL },
    { "slack-token", RANK_SPECIFIC,
      "(?<![A-Za-z0-9-])(?:xox[abposr]|xapp)-[A-Za-z0-9-]{10,250}", NULL },
    { "slack-webhook", RANK_SPECIFIC,
      "(?<![A-Za-z0-9.-])https://hooks\\.slack\\.com/(?:services|workflows|triggers)/"
      "(?<secret>[A-Za-z0-9_/-]{8,300})", NULL },
    { "private-key", RANK_SPECIFIC,
      "-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"
      "(?:[A-Za-z0-9+/=:,.\\s\\\\]++|-(?!----))*+"
      "(-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----)?", s_check_pem },
    { "jwt", RANK_SPECIFIC,
      "(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{7,}\\.[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]*", s_check_jwt },
    { "bearer-token", RANK_GENERIC,
      "(?i)(?<![a-z0-9_-])authorization[\"']?[ \\t]*[:=][ \\t]*[\"']?(?:bearer|token)[ \\t]+"
      "(?<secret>[a-z0-9._~+/-]+=*)", NULL },
    { "bearer-token", RANK_GENERIC,
      "(?i)(?<![a-z0-9_-])bearer[ \\t]+(?<secret>(?=[a-z._~+/-]*[0-9])[a-z0-9._~+/-]{16,}=*)",
      NULL },
    { "basic-auth", RANK_GENERIC,
      "(?i)(?<![a-z0-9_-])authorization[\"']?[ \\t]*[:=][ \\t]*[\"']?basic[ \\t]+"
      "(?<secret>[a-z0-9+/]+=*)", NULL },
    { "password", RANK_GENERIC,
      "(?i)(?<![a-z0-9])(?:passw(?:or)?d|passphrase|pwd|pass|secret|token|api[_-]?key"
      "|private[_-]?key)" ASSIGN VALUE, NULL },
    //  Environment dumps and .env files: upper-case names that end in one of the words
    //  (PGPASSWORD, DBPASS, CLIENTSECRET, DJANGO_SECRET_KEY); OLDPWD is not one.
    { "password", RANK_GENERIC,
      "(?<![A-Za-z0-9_])[A-Z][A-Z0-9_]{0,64}?(?:PASS|PASSWD|PASSWORD|TOKEN|SECRET"
      "|(?:SECRET|ACCESS|PRIVATE|MASTER|ENCRYPTION|SIGNING|AUTH|API)_?KEY)" ASSIGN VALUE, NULL },
    //  Command lines: --password=X, and --password X where X is neither the next option
    //  nor the prose of a help text ("use --token to log in").
    { "password", RANK_GENERIC,
      "(?i)(?<![a-z0-9_-])--(?:passw(?:or)?d|passphrase|pass|token|secret|api[_-]?key"
      "|auth[_-]?token|access[_-]?token)(?:=|[ \\t]+(?!-|(?:to|or|and|is|the|a|an|for|of|with|if|option|flag"
      "|argument)\\b))" VALUE, NULL },
    //  The MySQL and MariaDB clients take the password glued to -p (-p alone prompts, and
    //  "-p name" names a database); sshpass, before its command, glued or not.
    { "password", RANK_GENERIC,
      "(?<![A-Za-z0-9_-])(?:mysql(?:dump|admin|import|show|check|slap|binlog)?|mariadb(?:-[a-z]+)?)"
      "(?![A-Za-z0-9_-])[^\\n;|&]{0,256}?[ \\t]-p" VALUE, NULL },
    { "password", RANK_GENERIC,
      "(?<![A-Za-z0-9_-])sshpass(?:[ \\t]+-[vh])*[ \\t]+-p[ \\t]*(?!-)" VALUE, NULL },
    //  Prose: "the password is X", "password is: X", unless X is a word that says
    //  something about the password rather than being it.
    { "password", RANK_GENERIC,
      "(?i)(?<![a-z0-9])(?:passw(?:or)?d|passphrase|passcode|secret|token|api[_-]?key)[\"']?"
      "[ \\t]+is(?:[ \\t]*:)?[ \\t]+(?!(?:incorrect|invalid|wrong|required|missing|empty"
      "|expired|too|not|set|unset|correct|valid|the|a|an|being|now|also|still|ok|changed|reset"
      "|null|none|stored|saved|used|needed|sent|shown|hidden|encrypted|hashed|masked|weak"
      "|strong|long|short|case|in|on|at|from|for|to|of|by|only|never|always|same|different"
      "|blank|given|provided|known|unknown|about|due|revoked)\\b)" VALUE, NULL },
    { "url-password", RANK_GENERIC,
      "(?i)(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,30}://[^\\s:/@?#\"']{0,256}:"
      "(?<secret>[^\\s/@?#\"']{1,256})@", NULL },
    { "card-number", RANK_GENERIC,
      "(?<![0-9])(?:[0-9]{13,19}|[0-9]{4}([ -])[0-9]{4}\\1[0-9]{4}\\1[0-9]{4}(?:\\1[0-9]{1,3})?"
      "|[0-9]{4}([ -])[0-9]{6}\\2[0-9]{4,5})(?![0-9])", s_check_card },
    { "email", RANK_GENERIC,
      "(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}+", s_check_email },
};

const size_t mask_builtin_count = sizeof mask_builtins / sizeof mask_builtins[0];

//  --------------------------------------------------------------------------
//  Validators

//  Payment cards: 13-19 digits, a known network's first digit (so ms timestamps that start
//  with 1 are not cards), not all one digit, and the Luhn checksum.
static bool
s_check_card (const char *text, size_t len, const PCRE2_SIZE *ov, int rc, size_t *start,
              size_t *end)
{
    int digits[19], n = 0;
    for (size_t i = *start; i < *end && n < 19; i++)
        if (text[i] >= '0' && text[i] <= '9')
            digits[n++] = text[i] - '0';
    if (n < 13 || digits[0] < 2 || digits[0] > 6)
        return false;
    if (digits[0] == 2) {                       //  Mastercard 2221-2720
        int p = digits[0] * 1000 + digits[1] * 100 + digits[2] * 10 + digits[3];
        if (p < 2221 || p > 2720)
            return false;
    }
    bool same = true;
    int sum = 0;
    for (int i = 0; i < n; i++) {
        int d = digits[n - 1 - i];
        if (i % 2 == 1 && (d *= 2) > 9)
            d -= 9;
        sum += d;
        same = same && digits[i] == digits[0];
    }
    return !same && sum % 10 == 0;
}


//  True if text[start] follows "scheme://user:", i.e. it is a URL's password (url-password's).
static bool
s_in_userinfo (const char *text, size_t start)
{
    if (start == 0 || text[start - 1] != ':')
        return false;
    size_t k = start - 1;                       //  on the ':'; walk back over the user name
    while (k > 0 && start - k < 300 && text[k - 1] && !strchr (" \t\r\n:/@?#\"'", text[k - 1]))
        k--;
    return k >= 3 && text[k - 1] == '/' && text[k - 2] == '/' && text[k - 3] == ':';
}

//  E-mail: the possessive domain run is trimmed of trailing dots and dashes (sentence ends),
//  then must be two or more well-formed labels ending in an alphabetic TLD.
static bool
s_check_email (const char *text, size_t len, const PCRE2_SIZE *ov, int rc, size_t *start,
               size_t *end)
{
    const char *at = memchr (text + *start, '@', *end - *start);
    if (!at || s_in_userinfo (text, *start))
        return false;
    size_t dom = (size_t) (at - text) + 1, e = *end;
    while (e > dom && (text[e - 1] == '.' || text[e - 1] == '-'))
        e--;
    size_t labels = 0, label_start = dom;
    for (size_t i = dom; i <= e; i++) {
        if (i < e && text[i] != '.')
            continue;
        size_t l = i - label_start;
        if (l == 0 || l > 63 || text[label_start] == '-' || text[i - 1] == '-')
            return false;
        labels++;
        if (i == e) {                           //  the TLD
            if (l < 2)
                return false;
            for (size_t k = label_start; k < i; k++)
                if (!s_alpha (text[k]))
                    return false;
        }
        label_start = i + 1;
    }
    *end = e;
    return labels >= 2;
}

static int
s_b64_value (char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-' || c == '+') return 62;
    if (c == '_' || c == '/') return 63;
    return -1;
}

//  JWT: the header must decode to a JSON object that names "alg" or "typ".
static bool
s_check_jwt (const char *text, size_t len, const PCRE2_SIZE *ov, int rc, size_t *start,
             size_t *end)
{
    char head[192];
    size_t n = 0, bits = 0;
    unsigned acc = 0;
    for (size_t i = *start; i < *end && text[i] != '.' && n < sizeof head - 1; i++) {
        int v = s_b64_value (text[i]);
        if (v < 0)
            return false;
        acc = (acc << 6 | (unsigned) v) & 0xFFFFFF;
        if ((bits += 6) >= 8) {
            bits -= 8;
            head[n++] = (char) (acc >> bits & 0xFF);
        }
    }
    head[n] = 0;
    return n > 2 && head[0] == '{' && (strstr (head, "\"alg\"") || strstr (head, "\"typ\""));
}

//  Private keys: a complete block, or a block cut short by the end of the output (truncated
//  output must not leak half a key) if it already holds a line of key material.
static bool
s_check_pem (const char *text, size_t len, const PCRE2_SIZE *ov, int rc, size_t *start,
             size_t *end)
{
    if (rc > 1 && ov[2] != PCRE2_UNSET)
        return true;
    if (*end != len)
        return false;
    size_t run = 0;
    for (size_t i = *start; i < *end; i++) {
        run = s_b64_value (text[i]) >= 0 || text[i] == '=' ? run + 1 : 0;
        if (run >= 40)
            return true;
    }
    return false;
}
