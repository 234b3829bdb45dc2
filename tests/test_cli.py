"""tests/test_cli.py: the `replgate` command line as a person and a script meet it: options
checked before anything is opened, one-line refusals with a suggestion, --json and --version
everywhere, exit codes that tell refusals apart, pending and the live line naming approvers,
and Ctrl-C/SIGTERM during a wait that leave the request to `replgate wait`."""
import json, os, re, shutil, signal, subprocess, sys, time
import harness
from harness import BIN, Stack, Terminal, check, free_port_pair, run_all, test, SLOW

CLI = os.path.join(BIN, "replgate")
NOWHERE = "/nonexistent/replgate-state"
GRANT = {"allow": ["Files.Example.com:443", "*.internal.example:80"], "methods": ["GET"]}
GRANT_NORMALISED = {"allow": ["files.example.com:443", "*.internal.example:80"], "methods": ["GET"]}
GRANT_LINE = "files.example.com:443, *.internal.example:80 (methods GET)"
TWO = {"version": 1, "defaults": {"quorum": 1, "ttl_s": 3600}, "rules": [
    {"name": "two-eyes", "match": {"code": "NEEDS_TWO"}, "action": "review", "quorum": 2},
    {"name": "net-review", "match": {"code": "NET_REVIEW"}, "action": "review", "network": GRANT},
    {"name": "net-allow", "match": {"code": "NET_ALLOW"}, "action": "allow", "network": GRANT,
     "limits": {"egress_connections": 5, "egress_bytes": 65536}},
    {"name": "rest", "action": "allow"},
]}


def run(*args, **kw):
    env = dict(os.environ, ZSYS_SIGHANDLER="false")
    env.pop("REPLGATE_DIR", None)
    return subprocess.run([CLI] + list(args), capture_output=True, text=True, timeout=30 * SLOW,
                          env=env, **kw)


def one_line(p):
    return p.stderr.count("\n") == 1 and p.stdout == ""


def commands():
    """The command names `replgate --help` lists."""
    p = run("--help")
    check(p.returncode == 0, p.stderr)
    names = re.findall(r"^  replgate ([a-z]+)", p.stdout, re.M)
    check(len(names) >= 15, p.stdout)
    return sorted(set(names))


def stack():
    s = Stack(policy=TWO)
    for name, role in (("alice", "approver"), ("carol", "approver")):
        p = s.cli("keygen", name, "--role", role)
        check(p.returncode == 0, p.stderr)
    return s


def done(s):
    check(not s.stop(), "sanitizer report")


def parked(s, code):
    """Submits code (a NEEDS_TWO snippet) as the agent without waiting; returns its id."""
    c = s.client()
    r = c.call("submit", lang="python", code=code, session="q", wait_ms=0)
    c.close()
    check(r and r["ok"] and r["state"] == "pending_approval", r)
    return r["id"]


@test
def mistyped_flags_and_commands_get_one_line_naming_the_nearest():
    for args, wanted in ((["submit", "--tiemout", "5", "x"], "did you mean --timeout?"),
                         (["submit", "--no_wait", "x"], "did you mean --no-wait?"),
                         (["approve", "1", "--resaon", "ok"], "did you mean --reason?"),
                         (["history", "--sesion", "s"], "did you mean --session?"),
                         (["sbumit", "x"], "did you mean submit?"),
                         (["aprove", "1"], "did you mean approve?"),
                         (["--verison"], "did you mean --version?")):
        p = run(*args)
        check(p.returncode == 2 and one_line(p) and wanted in p.stderr, (args, p.returncode, p.stderr))
    # nothing near: still one line, pointing at --help; an option of another command is unknown here
    p = run("approve", "1", "--timeout", "5")
    check(p.returncode == 2 and one_line(p) and "unknown option --timeout" in p.stderr
          and "approve --help" in p.stderr, p.stderr)
    p = run("submit", "--timeout")
    check(p.returncode == 2 and one_line(p) and "--timeout needs a value" in p.stderr, p.stderr)
    p = run("submit", "--json=yes", "x")
    check(p.returncode == 2 and one_line(p) and "--json takes no value" in p.stderr, p.stderr)


@test
def numbers_are_checked_whole_before_anything_is_opened():
    cases = [(["submit", "--timeout", "abc", "x"], "--timeout"),
             (["submit", "--timeout", "-1", "x"], "--timeout"),
             (["submit", "--timeout", "5s", "x"], "--timeout"),
             (["submit", "--timeout", "nan", "x"], "--timeout"),
             (["submit", "--timeout", "1e999", "x"], "--timeout"),
             (["wait", "1", "--timeout", "0x10"], "--timeout"),
             (["replay", "s", "--speed", "abc"], "--speed"),
             (["replay", "s", "--speed", "0"], "--speed"),
             (["replay", "s", "--speed", "-2"], "--speed"),
             (["history", "--limit", "abc"], "--limit"),
             (["history", "--limit", "0"], "--limit"),
             (["history", "--limit", "-5"], "--limit"),
             (["history", "--limit", "99999999999999999999"], "--limit"),
             (["history", "--limit", "1.5"], "--limit"),
             (["up", "--port", "70000"], "--port"),
             (["up", "--slots", "x"], "--slots")]
    for args, flag in cases:
        p = run(*(args + ["--dir", NOWHERE]))
        check(p.returncode == 2 and one_line(p) and ("%s wants" % flag) in p.stderr,
              (args, p.returncode, p.stderr))
    # and good numbers pass the parser (then stop at the missing state dir)
    for args in (["wait", "1", "--timeout", "0.5"], ["history", "--limit", "20"],
                 ["replay", "s", "--speed", "2.5"]):
        p = run(*(args + ["--dir", NOWHERE]))
        check(p.returncode == 2 and "no such state dir" in p.stderr, (args, p.stderr))


@test
def contradictory_flags_are_refused():
    for args in (["submit", "--no-wait", "--timeout", "3", "x"],
                 ["replay", "s", "--json", "--cast", "/tmp/x.cast"],
                 ["replay", "s", "--no-wait", "--speed", "2"],
                 ["export", "--json", "--format", "csv"]):
        p = run(*(args + ["--dir", NOWHERE]))
        check(p.returncode == 2 and one_line(p) and "contradict each other" in p.stderr,
              (args, p.returncode, p.stderr))


@test
def version_is_printed():
    for flag in ("--version", "version"):
        p = run(flag)
        check(p.returncode == 0 and re.fullmatch(r"replgate \d+\.\d+\.\d+\n", p.stdout), (flag, p.stdout, p.stderr))


@test
def json_is_taken_by_every_command_or_refused_the_same_way():
    for name in commands():
        p = run(name, "--json", "--dir", NOWHERE)
        check("unknown option" not in p.stderr, (name, p.stderr))
        if name in ("up", "mcp"):       # one only logs, the other speaks JSON-RPC on stdout anyway
            check(p.returncode == 2 and p.stderr == "replgate %s: --json is not supported by %s\n"
                  % (name, name), p.stderr)
        else:
            check("not supported" not in p.stderr, (name, p.stderr))
    # the ones that only printed text before now print JSON
    d = harness.scratch_dir("replgate-cli-")
    try:
        p = run("keygen", "bob", "--role", "agent", "--dir", d, "--json")
        out = json.loads(p.stdout)
        check(p.returncode == 0 and out["name"] == "bob" and out["role"] == "agent"
              and os.path.exists(out["secret"]) and os.path.exists(out["trusted"]), p.stdout)
        p = run("policy", "check", os.path.join(os.path.dirname(__file__), "..", "policy", "default.json"), "--json")
        out = json.loads(p.stdout)
        check(p.returncode == 0 and out["ok"] is True and len(out["sha256"]) == 64, p.stdout)
        with open(os.path.join(d, "bad.json"), "w") as f:
            f.write("{")
        p = run("policy", "check", os.path.join(d, "bad.json"), "--json")
        out = json.loads(p.stdout)
        check(p.returncode == 2 and out["ok"] is False and "bad.json:" in out["error"], p.stdout)
    finally:
        shutil.rmtree(d)


@test
def a_missing_state_dir_or_key_file_is_local_set_up():
    for args in (["status", "1"], ["submit", "1 + 1"], ["pending"], ["approve", "1"], ["ping"],
                 ["revoke", "bob"], ["history"], ["verify"]):
        p = run(*(args + ["--dir", NOWHERE]))
        check(p.returncode == 2 and ("no such state dir: " + NOWHERE) in p.stderr, (args, p.returncode, p.stderr))
    d = harness.scratch_dir("replgate-cli-")
    try:
        p = run("ping", "--dir", d)
        check(p.returncode == 2 and "no key file: " in p.stderr and "agent.cert_secret" in p.stderr, p.stderr)
        p = run("ping", "--dir", d, "--key", os.path.join(d, "nobody.cert"))
        check(p.returncode == 2 and "no key file: %s/nobody.cert_secret" % d in p.stderr, p.stderr)
    finally:
        shutil.rmtree(d)


@test
def approve_deny_and_pending_have_full_help():
    for name, words in (("approve", ["pending approval", "quorum", "--reason", "bind_sha256", "--key"]),
                        ("deny", ["--reason TEXT is", "required", "final"]),
                        ("pending", ["nothing pending", "approvals so far", "bind_sha256", "--json"])):
        for args in ([name, "--help"], ["help", name]):
            p = run(*args)
            check(p.returncode == 0 and p.stdout.startswith("usage: replgate " + name), (args, p.stdout))
            for w in words + ["exit codes:", "--dir DIR"]:
                check(w in p.stdout, (args, w, p.stdout))
        for code in ("9 ", "10 ", "11 ") if name != "pending" else ("10 ",):
            check(re.search(r"^  %s" % code, p.stdout, re.M), (name, code, p.stdout))
    p = run("--help")
    for code in range(12):
        check(re.search(r"^  %d +\S" % code, p.stdout, re.M), (code, p.stdout))


@test
def pending_names_approvers_labels_the_hash_and_says_when_empty():
    s = stack()
    try:
        p = s.cli("pending")
        check(p.returncode == 0 and p.stdout == "nothing pending\n", (p.stdout, p.stderr))
        p = s.cli("pending", "--json")
        check(p.returncode == 0 and p.stdout == "", p.stdout)
        rid = parked(s, "'NEEDS_TWO pending'")
        p = s.cli("approve", str(rid), "--key", s.key("alice"))
        check(p.returncode == 0, p.stderr)
        bind = s.sql("select bind_sha256 from requests where id = ?", rid)[0][0]
        p = s.cli("pending", "--key", s.key("carol"))
        check(p.returncode == 0 and re.search(r"request %d by agent .*: 1 of 2 approvals \(alice\)" % rid, p.stdout)
              and ("bind_sha256 (language, session, code): %s\n" % bind) in p.stdout, p.stdout)
        p = s.cli("pending", "-s", "elsewhere")
        check(p.returncode == 0 and p.stdout == "nothing pending in session elsewhere\n", p.stdout)
    finally:
        done(s)


@test
def a_network_grant_is_shown_to_approvers_and_stored_with_the_request():
    s = stack()
    try:
        c = s.client()
        r = c.call("submit", lang="python", code="'NET_REVIEW'", session="n", wait_ms=0)
        check(r and r["ok"] and r["state"] == "pending_approval", r)
        rid = r["id"]
        p = s.cli("pending")
        check(p.returncode == 0 and ("request %d by agent" % rid) in p.stdout
              and ("\n  network: %s\n" % GRANT_LINE) in p.stdout, p.stdout)
        p = s.cli("pending", "--json")
        row = json.loads(p.stdout.splitlines()[0])
        check(row["limits"]["network"] == GRANT_NORMALISED, row)
        # explain says what the rule grants, normalised; a rule without a grant says nothing
        policy = os.path.join(s.dir, "policy.json")
        p = s.cli("policy", "explain", "--file", policy, "'NET_REVIEW'")
        check(p.returncode == 0 and p.stdout.startswith("review by rule net-review\nnetwork: %s\n" % GRANT_LINE),
              p.stdout)
        p = s.cli("policy", "explain", "--file", policy, "--json", "'NET_ALLOW'")
        out = json.loads(p.stdout)
        check(p.returncode == 0 and out["network"] == GRANT_NORMALISED and out["action"] == "allow"
              and out["limits"] == {"egress_connections": 5, "egress_bytes": 65536}, p.stdout)
        p = s.cli("policy", "explain", "--file", policy, "1 + 1")
        check(p.returncode == 0 and "network" not in p.stdout, p.stdout)
        # an allowed request keeps its grant in its limits and still runs (the `run` carries it)
        r = c.call("submit", lang="python", code="print('NET_ALLOW')", session="n", wait_ms=20000)
        check(r and r["ok"] and r["state"] == "done" and r["stdout"] == "NET_ALLOW\n", r)
        limits = json.loads(s.sql("select limits from requests where id = ?", r["id"])[0][0])
        check(limits == {"egress_connections": 5, "egress_bytes": 65536, "network": GRANT_NORMALISED}, limits)
        r = c.call("submit", lang="python", code="1 + 1", session="n", wait_ms=20000)
        check(r and r["state"] == "done", r)
        check(s.sql("select limits from requests where id = ?", r["id"])[0][0] is None, "no grant, no limits")
        c.close()
    finally:
        done(s)


@test
def refusals_have_their_own_exit_codes():
    s = stack()
    try:
        rid = parked(s, "'NEEDS_TWO codes'")
        # not found: 9
        for args in (["approve", "999999"], ["deny", "999999", "--reason", "x"], ["status", "999999"],
                     ["cancel", "999999"]):
            p = s.cli(*args)
            check(p.returncode == 9 and "not_found" in p.stderr, (args, p.returncode, p.stderr))
        # forbidden: 10 (an agent key never approves or lists)
        for args in (["approve", str(rid)], ["pending"]):
            p = s.cli(*(args + ["--key", s.key("agent")]))
            check(p.returncode == 10 and "forbidden" in p.stderr, (args, p.returncode, p.stderr))
        # bad state: 11 (the same approver twice, then a decided request)
        check(s.cli("approve", str(rid), "--key", s.key("alice")).returncode == 0, "first approval")
        p = s.cli("approve", str(rid), "--key", s.key("alice"))
        check(p.returncode == 11, (p.returncode, p.stderr))
        p = s.cli("deny", str(rid), "--reason", "no", "--key", s.key("carol"))
        check(p.returncode == 0 and "denied" in p.stdout, (p.stdout, p.stderr))
        for args in (["approve", str(rid)], ["deny", str(rid), "--reason", "again"], ["cancel", str(rid)]):
            p = s.cli(*args)
            check(p.returncode == 11 and "bad_state" in p.stderr, (args, p.returncode, p.stderr))
        # with --json the refusal is the broker's reply on stdout, the code the same
        p = s.cli("approve", "999999", "--json")
        check(p.returncode == 9 and json.loads(p.stdout)["error"]["code"] == "not_found", p.stdout)
    finally:
        done(s)


def interrupt_parked(s, sig, cmd):
    """Starts cmd (a CLI waiting on a parked request), lets it reach its long poll, sends sig."""
    env = dict(os.environ, ZSYS_SIGHANDLER="false")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(3 * SLOW)            # past submit's own 2 s wait: now in `await`
    if p.poll() is not None:
        check(False, ("ended while parked", p.returncode, p.communicate()))
    p.send_signal(sig)
    out, err = p.communicate(timeout=5 * SLOW)
    return p.returncode, out, err


@test
def submit_and_wait_interrupted_while_parked_exit_4_and_name_the_request():
    s = stack()
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            code = "'NEEDS_TWO %s'" % sig.name
            t0 = time.time()
            rc, out, err = interrupt_parked(s, sig, [CLI, "submit", "--dir", s.dir, "-s", "q", code])
            rid = s.sql("select id from requests where code = ?", code)[0][0]
            check(rc == 4 and ("request %d is still pending; `replgate wait %d`" % (rid, rid)) in err
                  and "broker" not in err, (sig, rc, err))
            check(time.time() - t0 < 6 * SLOW, "the signal did not end the wait at once")
            check(s.sql("select state from requests where id = ?", rid)[0][0] == "pending_approval",
                  "the request itself was touched")
            rc, out, err = interrupt_parked(s, sig, [CLI, "wait", str(rid), "--dir", s.dir, "--json"])
            check(rc == 4 and json.loads(out)["id"] == rid
                  and ("request %d is still pending; `replgate wait %d`" % (rid, rid)) in err, (rc, out, err))
    finally:
        done(s)


@test
def submit_interrupted_before_the_broker_answered_says_so():
    d = harness.scratch_dir("replgate-cli-")
    try:
        check(run("keygen", "agent", "--role", "agent", "--dir", d).returncode == 0, "keygen")
        ep = "tcp://127.0.0.1:%d" % free_port_pair()       # nobody listens there
        for extra, wanted in (([], "its id is not known"),
                              (["--idempotency-key", "k7"], "--idempotency-key k7 returns it")):
            cmd = [CLI, "submit", "--dir", d, "--broker", ep, "--server-key",
                   os.path.join(d, "keys", "private", "agent.cert")] + extra + ["1 + 1"]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5 * SLOW)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=5 * SLOW)
            check(p.returncode == 4 and "interrupted before the broker answered" in err and wanted in err
                  and "no answer" not in err, (p.returncode, err))
    finally:
        shutil.rmtree(d)


@test
def the_live_line_names_who_approved_and_ctrl_c_leaves_the_request():
    s = stack()
    term = Terminal([CLI, "submit", "--dir", s.dir, "-s", "tty", "'NEEDS_TWO live'"])
    try:
        m = term.wait_for(r"request (\d+): waiting for approval \(0 of 2, 59m \d\ds left\)")
        rid = int(m.group(1))
        check(s.cli("approve", str(rid), "--key", s.key("alice")).returncode == 0, "approve")
        term.wait_for(r"\(1 of 2, \d+m \d\ds left; approved by alice\)")
        term.proc.send_signal(signal.SIGINT)
        check(term.finish(5) == 4, "exit status")
        term.wait_for(re.escape("request %d is still pending; `replgate wait %d`" % (rid, rid)))
        check(s.sql("select state from requests where id = ?", rid)[0][0] == "pending_approval", "touched")
    finally:
        term.close()
        done(s)


@test
def export_honours_json_as_json_lines():
    s = Stack(workers=0)
    try:
        c = s.client()
        c.call("submit", lang="python", code="1", session="e", wait_ms=0)
        c.close()
        p = s.cli("export", "--json")
        rows = [json.loads(line) for line in p.stdout.splitlines()]
        check(p.returncode == 0 and len(rows) == 1 and rows[0]["code"] == "1", p.stdout)
    finally:
        done(s)


def needed(path):
    """The shared libraries an ELF program names (its DT_NEEDED entries, as readelf shows them)."""
    p = subprocess.run(["readelf", "-d", path], capture_output=True, text=True)
    check(p.returncode == 0, p.stderr)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout)


@test
def commands_that_read_files_run_in_replgate_local_and_the_cli_links_none_of_their_libraries():
    heavy = ("libsqlite3", "libpcre2", "libunistring", "libczmq", "libzmq")
    libs = needed(CLI)
    check(libs and not [lib for lib in libs if lib.startswith(heavy)], libs)
    check([lib for lib in needed(os.path.join(BIN, "replgate-local")) if lib.startswith("libsqlite3")],
          "replgate-local links SQLite")
    s = Stack()
    try:
        s.client().run("x = 41", session="h")
        policy = os.path.join(s.dir, "policy.json")
        # Each of the five through the hand-over, options before and after the positionals
        # (getopt reorders argv: the command line handed over must be the one typed).
        p = run("history", "--session", "h", "--dir", s.dir, "--json")
        rows = [json.loads(line) for line in p.stdout.splitlines()]
        check(p.returncode == 0 and [r["code"] for r in rows] == ["x = 41"], (p.stdout, p.stderr))
        p = run("verify", "--dir", s.dir)
        check(p.returncode == 0 and p.stdout.startswith("ok:"), (p.stdout, p.stderr))
        p = run("export", "--dir", s.dir, "--format", "jsonl", "--session", "h")
        check(p.returncode == 0 and json.loads(p.stdout)["code"] == "x = 41", (p.stdout, p.stderr))
        p = run("replay", "h", "--no-wait", "--dir", s.dir)
        check(p.returncode == 0 and "x = 41" in p.stdout, (p.stdout, p.stderr))
        p = run("policy", "explain", "--dir", s.dir, "print(1)", "--json", "-s", "h")
        check(p.returncode == 0 and json.loads(p.stdout)["action"] == "allow", (p.stdout, p.stderr))
        p = run("policy", "check", policy)
        check(p.returncode == 0 and p.stdout.startswith(policy + ": ok"), (p.stdout, p.stderr))
        # Without replgate-local beside it: those five end 127 saying what is missing, after
        # their options were checked as usual; the commands that reach the broker are whole.
        alone = harness.scratch_dir("replgate-alone-")
        shutil.copy(CLI, alone)
        lone = os.path.join(alone, "replgate")
        env = dict(os.environ, ZSYS_SIGHANDLER="false")
        p = subprocess.run([lone, "verify", "--dir", s.dir], capture_output=True, text=True, env=env)
        check(p.returncode == 127 and one_line(p) and os.path.join(alone, "replgate-local") in p.stderr,
              (p.returncode, p.stderr))
        p = subprocess.run([lone, "verify", "--dir", s.dir, "--since-hed", "x"], capture_output=True,
                           text=True, env=env)
        check(p.returncode == 2 and "since-head" in p.stderr, (p.returncode, p.stderr))
        p = subprocess.run([lone, "ping", "--dir", s.dir, "--json"], capture_output=True, text=True, env=env)
        check(p.returncode == 0 and json.loads(p.stdout)["principal"] == "agent", (p.returncode, p.stderr))
        p = subprocess.run([lone, "history", "--help"], capture_output=True, text=True, env=env)
        check(p.returncode == 0 and p.stdout.startswith("usage: replgate history"), p.stdout)
    finally:
        done(s)

if __name__ == "__main__":
    sys.exit(run_all("test_cli"))
