"""tests/test_masking.py: masking through the real broker and worker. The worker masks its
named secrets, the broker its detectors, each once, over every text field of a result; what
neither lets through is in no reply, row, event, subscriber push or byte of the database."""
import json, os, subprocess, time
import harness
from harness import Stack, check, run_all, test, SLOW

# Built from pieces so that no stored snippet ever holds them: snippets read the environment.
DB_PASSWORD = "Zq8-" + "mask-it-" + "41c9e0"
ODD_SECRET = 'pa"ss' + "\\w\u00f6rd-" + "K7x"          # a quote, a backslash, non-ASCII
QUOTE_SECRET = "~it's" + "-\u00e9t\u00e9:~" + "Q2"      # a quote and a tilde bash escapes
SECRETS = {"DB_PASSWORD": DB_PASSWORD, "ODD_SECRET": ODD_SECRET, "QUOTE_SECRET": QUOTE_SECRET}


def stack(uid_base, policy=Stack.ALLOW_ALL):
    path = os.path.join(harness.scratch_dir("replgate-masking-"), "secrets.json")
    with open(path, "w") as f:
        json.dump(SECRETS, f)
    return Stack(worker_args=["--secrets", path, "--uid-base", str(uid_base)], policy=policy)


def done(s):
    check(not s.stop(), "sanitizer report")


def forms(value):
    """The secret as the snippets below print it, each as bytes: none may be stored."""
    out = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
           repr(value)[1:-1], ascii(value)[1:-1], repr(value.encode())[2:-1]}
    for env in ({"LC_ALL": "C.UTF-8"}, {"LC_ALL": "C"}):
        p = subprocess.run(["bash", "-c", 'printf %q "$1"; echo; echo "${1@Q}"', "-", value],
                           capture_output=True, text=True, env=dict(os.environ, **env))
        out.update(line.strip("$'") for line in p.stdout.splitlines())
    return sorted(f.encode() for f in out if len(f) >= 6)


def check_db_clean(s, secrets):
    """No byte of any secret form in the database file or its WAL (nor its shm)."""
    found = [name for name in os.listdir(s.dir) if name.startswith("replgate.db")]
    check("replgate.db" in found, found)
    for name in found:
        raw = open(os.path.join(s.dir, name), "rb").read()
        for secret in secrets:
            for form in forms(secret):
                check(form not in raw, "%r found in %s" % (form, name))


def subscribe(c):
    r = c.call("subscribe", since=0)
    check(r and r["ok"], r)


def pushed_done(c, rid, timeout=10.0):
    """The `done` event of request rid as a subscriber got it."""
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        m = c.recv(timeout=0.5)
        if m and m.get("op") == "event" and m["request_id"] == rid and m["type"] == "done":
            return m
    raise AssertionError("no done event for request %d" % rid)


def text_of(r):
    return json.dumps(r, ensure_ascii=False)


@test
def secret_in_exception_type_name_is_masked_everywhere():
    s = stack(241000)
    try:
        agent, watcher = s.client("agent"), s.client("admin")
        subscribe(agent)
        subscribe(watcher)
        r = agent.run("import os\nraise type(os.environ['DB_PASSWORD'], (Exception,), {})('boom')",
                      session="names")
        check(r["outcome"] == "error", r)
        check(r["error_name"] == "[MASKED:DB_PASSWORD]", r["error_name"])
        check(DB_PASSWORD not in text_of(r) and "[MASKED:DB_PASSWORD]" in r["traceback"], r)
        row = s.sql("select error_name, error_value, traceback from requests where id = ?", r["id"])[0]
        check(row[0] == "[MASKED:DB_PASSWORD]" and DB_PASSWORD not in "".join(row), row)
        data = s.sql("select data from events where request_id = ? and type = 'done'", r["id"])[0][0]
        check(json.loads(data)["error_name"] == "[MASKED:DB_PASSWORD]" and DB_PASSWORD not in data, data)
        for c in (agent, watcher):
            e = pushed_done(c, r["id"])
            check(e["data"]["error_name"] == "[MASKED:DB_PASSWORD]" and DB_PASSWORD not in text_of(e), e)
        # the odd secrets as type names and values too
        r = agent.run("import os\nclass E(Exception): pass\n"
                      "raise type(os.environ['ODD_SECRET'], (E,), {})(os.environ['QUOTE_SECRET'])",
                      session="names")
        check(r["error_name"] == "[MASKED:ODD_SECRET]", r["error_name"])
        check(r["error_value"] == "[MASKED:QUOTE_SECRET]", r["error_value"])
        check(ODD_SECRET not in text_of(r) and QUOTE_SECRET not in text_of(r), r)
        # each masker once: no stray "]" where a built-in sees a password key
        r = agent.run("import os\nprint('password=' + os.environ['DB_PASSWORD'])\n"
                      "print('DB_PASSWORD: ' + os.environ['DB_PASSWORD'])\n"
                      "print('postgres://app:%s@db/x' % os.environ['DB_PASSWORD'])\n"
                      "print('password=[MASKED:DB_PASSWORD]')", session="names")
        want = ("password=[MASKED:DB_PASSWORD]\nDB_PASSWORD: [MASKED:DB_PASSWORD]\n"
                "postgres://app:[MASKED:DB_PASSWORD]@db/x\npassword=[MASKED:DB_PASSWORD]\n")
        check(r["stdout"] == want, r["stdout"])
        check(s.sql("select stdout from requests where id = ?", r["id"])[0][0] == want, "stored stdout")
        r = agent.run('echo "password=$DB_PASSWORD" >&2', lang="shell", session="names")
        check(r["stderr"] == "password=[MASKED:DB_PASSWORD]\n", r["stderr"])
        agent.close()
        watcher.close()
        check_db_clean(s, SECRETS.values())
    finally:
        done(s)


# Each credential shape, its value built at run time (reversed in the code), and what must
# be stored for it.
SHAPES = [
    ("PGPASSWORD={}", "pg-Vq71xk"),
    ("MYSQL_PWD={}", "my-Wd82jz"),
    ("GITHUB_TOKEN={}", "gh-Tk93hq"),
    ("API_TOKEN={}", "api-Ty04mv"),
    ("DBPASS={}", "hunter2-Db15"),
    ("SMTP_PASS={}", "smtp-Ps26rw"),
    ("DB_PASSWD={}", "db-Pw37tn"),
    ("mysqldump --password {} app", "dump-Fl48cx"),
    ("mysql --password={} app", "eq-Fl59bv"),
    ("mysql -u root -p{} app", "glued-Mp60ns"),
    ("Your password is {} now", "prose-Is71qa"),
    ("password: {}", "colon-Pc82wd"),
]


@test
def new_shapes_are_masked_in_stored_stdout():
    s = stack(241100)
    try:
        agent = s.client("agent")
        code = "for shape, v in %r:\n    print(shape.format(v[::-1]))" % (
            [(shape, value[::-1]) for shape, value in SHAPES],)
        r = agent.run(code, session="shapes")
        check(r["outcome"] == "ok", r)
        want = "".join(shape.format("[MASKED:password]") + "\n" for shape, _ in SHAPES)
        stored = s.sql("select stdout from requests where id = ?", r["id"])[0][0]
        check(stored == want and r["stdout"] == want, (stored, want))
        # the same names in an environment dump from the shell, each value split in the code
        names = [shape.split("=")[0] for shape, _ in SHAPES[:7]]
        r = agent.run("".join('export %s="%s""%s"\n' % (n, v[:4], v[4:]) for n, (_, v) in zip(names, SHAPES))
                      + "env | grep -E '^(%s)=' | sort" % "|".join(names), lang="shell", session="shapes")
        check(r["outcome"] == "ok", r)
        check(r["stdout"] == "".join(sorted(n + "=[MASKED:password]\n" for n in names)), r["stdout"])
        agent.close()
        check_db_clean(s, [value for _, value in SHAPES])
    finally:
        done(s)


@test
def encoded_forms_of_odd_secrets_are_masked():
    s = stack(241200)
    try:
        agent = s.client("agent")
        r = agent.run("import os, json\ns = os.environ['ODD_SECRET']\nq = os.environ['QUOTE_SECRET']\n"
                      "for v in (s, q):\n"
                      "    print(json.dumps(v)); print(json.dumps(v, ensure_ascii=False))\n"
                      "    print(ascii(v)); print(repr(v)); print(v.encode()); print(json.dumps({'k': [v]}))\n"
                      "{'s': s, 'q': q, 'pair': repr((s, q))}", session="forms")
        check(r["outcome"] == "ok", r)
        out = r["stdout"].splitlines()
        check(len(out) == 12, out)
        for line in out:
            check("[MASKED:ODD_SECRET]" in line or "[MASKED:QUOTE_SECRET]" in line, (line, out))
        check("[MASKED:ODD_SECRET]" in r["value"] and "[MASKED:QUOTE_SECRET]" in r["value"], r["value"])
        r = agent.run('for v in "$ODD_SECRET" "$QUOTE_SECRET"; do printf "%q\\n" "$v"; '
                      'LC_ALL=C printf "%q\\n" "$v"; echo "${v@Q}"; printf "x=%q\\n" "a$v"; done',
                      lang="shell", session="forms")
        check(r["outcome"] == "ok", r)
        out = r["stdout"].splitlines()
        check(len(out) == 8, out)
        for line, name in zip(out, ["ODD_SECRET"] * 4 + ["QUOTE_SECRET"] * 4):
            check("[MASKED:%s]" % name in line, (line, out))
        for secret in (ODD_SECRET, QUOTE_SECRET):
            for form in forms(secret):
                check(form.decode() not in text_of(r), (form, r["stdout"]))
        agent.close()
        check_db_clean(s, [ODD_SECRET, QUOTE_SECRET])
    finally:
        done(s)


@test
def a_secret_cut_by_the_output_limit_leaves_no_start():
    s = stack(241300, policy={"version": 1, "rules": [
        {"name": "small", "action": "allow", "limits": {"output_bytes": 1000}}]})
    try:
        agent = s.client("agent")
        r = agent.run("import os, sys\nprint('x' * 990 + os.environ['DB_PASSWORD'])\n"
                      "print('y' * 994 + os.environ['ODD_SECRET'], file=sys.stderr)", session="cut")
        check(r["stdout_truncated"] and r["stderr_truncated"], r)
        check(r["stdout"] == "x" * 990 + "[MASKED:DB_PASSWORD]", r["stdout"])
        check(r["stderr"] == "y" * 994 + "[MASKED:ODD_SECRET]", r["stderr"])
        agent.close()
        check_db_clean(s, [DB_PASSWORD[:6], ODD_SECRET[:6]])
    finally:
        done(s)


if __name__ == "__main__":
    raise SystemExit(run_all("masking"))
