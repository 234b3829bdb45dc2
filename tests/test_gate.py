"""tests/test_gate.py: identity, policy, approvals and masking through the real broker."""
import json, os, re, signal, time
import harness
from harness import BIN, SLOW, Stack, Terminal, check, run_all, test

REVIEW = {"version": 1, "defaults": {"quorum": 1, "ttl_s": 3600}, "rules": [
    {"name": "no-rm", "match": {"lang": "shell", "code": "rm\\s+-rf"}, "action": "deny",
     "message": "no recursive deletes"},
    {"name": "two-eyes", "match": {"code": "NEEDS_TWO"}, "action": "review", "quorum": 2},
    {"name": "short-fuse", "match": {"code": "SHORT_TTL"}, "action": "review", "quorum": 1, "ttl_s": 2},
    {"name": "sre-only", "match": {"code": "SRE_ONLY"}, "action": "review", "approvers": {"groups": ["sre"]}},
    {"name": "catastrophic", "match": {"code": "(a+)+$"}, "action": "allow"},
    {"name": "net", "match": {"code": "socket"}, "action": "review"},
    {"name": "prod-session", "match": {"session": "^prod-"}, "action": "review"},
    {"name": "ops-shell", "match": {"groups": ["ops"], "lang": "shell"}, "action": "allow"},
    {"name": "agent-shell", "match": {"role": "agent", "lang": "shell"}, "action": "review"},
    {"name": "bob-denied", "match": {"principal": "bob"}, "action": "deny", "message": "bob is on leave"},
    {"name": "rest", "action": "allow"},
]}


def stack():
    s = Stack(policy=REVIEW)
    for name, role, groups in [("alice", "approver", "sre"), ("carol", "approver", ""),
                               ("dave", "approver", ""), ("bob", "agent", ""),
                               ("opsbot", "agent", "ops"), ("gw", "approver", "gateway"),
                               ("erin", "approver", "ops, sre"), ("mallory", "approver", "not-a-gateway")]:
        args = ["keygen", name, "--role", role] + (["--groups", groups] if groups else [])
        p = s.cli(*args)
        check(p.returncode == 0, p.stderr)
    return s


def done(s):
    check(not s.stop(), "sanitizer report")


@test
def identity_is_from_the_key():
    s = stack()
    try:
        agent = s.client("agent")
        # a body naming another principal is refused and nothing is recorded as someone else
        r = agent.call("submit", lang="python", code="1", session="x", principal="admin")
        check(r and not r["ok"] and r["error"]["code"] == "unknown_key", r)
        r = agent.run("1 + 1", session="who")
        check(r["principal"] == "agent" and r["role"] == "agent", r)
        check(s.sql("select count(*) from requests where principal != 'agent'")[0][0] == 0, "stranger row")
        # agents never approve, even a request that is not theirs
        admin = s.client("admin")
        parked = admin.call("submit", lang="python", code="'NEEDS_TWO'", session="x", wait_ms=0)
        check(parked["state"] == "pending_approval", parked)
        r = agent.call("approve", id=parked["id"])
        check(not r["ok"] and r["error"]["code"] == "forbidden", r)
        # on_behalf_of from a plain approver key is refused; from a gateway key it names the human
        carol = s.client("carol")
        r = carol.call("approve", id=parked["id"], on_behalf_of="alice")
        check(not r["ok"] and r["error"]["code"] == "forbidden", r)
        gw = s.client("gw")
        r = gw.call("approve", id=parked["id"], on_behalf_of="agent")
        check(not r["ok"] and r["error"]["code"] == "forbidden", ("gateway may not speak for an agent", r))
        r = gw.call("approve", id=parked["id"], on_behalf_of="alice", slack_user="U777")
        check(r["ok"] and r["approvals"][0]["approver"] == "alice" and r["approvals"][0]["via"] == "slack", r)
        check(r["approvals"][0]["on_behalf_of"] == "gw", r["approvals"])
        # only gateway and admin keys add events, and only of the known kinds
        r = agent.call("report", type="delivery_failed", detail={"x": 1})
        check(not r["ok"] and r["error"]["code"] == "forbidden", r)
        r = gw.call("report", type="anything_goes")
        check(not r["ok"] and r["error"]["code"] == "bad_value", r)
        r = gw.call("report", id=parked["id"], type="delivery_failed", detail={"http_status": 404})
        check(r["ok"], r)
        check(s.sql("select actor from events where type = 'delivery_failed'") == [("gw",)], "report not recorded")
        # groups are matched whole: "not-a-gateway" is no gateway
        mallory = s.client("mallory")
        r = mallory.call("report", id=parked["id"], type="delivery_failed", detail={"http_status": 404})
        check(not r["ok"] and r["error"]["code"] == "forbidden", ("a group that contains 'gateway'", r))
        r = mallory.call("approve", id=parked["id"], on_behalf_of="alice")
        check(not r["ok"] and r["error"]["code"] == "forbidden", r)
        mallory.close()
        # a revoked key: its cert leaves the trusted directory, new connections get nothing
        bob = s.client("bob")
        check(bob.call("ping")["ok"], "bob before revocation")
        bob.close()
        os.unlink(os.path.join(s.dir, "keys", "trusted", "bob.cert"))
        time.sleep(1.1)  # the certstore notices directory changes by modification time
        bob = s.client("bob")
        check(bob.call("ping", timeout=1.5) is None, "revoked key answered")
        for c in (agent, admin, carol, gw, bob):
            c.close()
    finally:
        done(s)


@test
def policy_actions_and_dimensions():
    s = stack()
    try:
        agent, ops, bob = s.client("agent"), s.client("opsbot"), s.client("bob")
        r = agent.call("submit", lang="shell", code="rm -rf /tmp/x", session="p", wait_ms=2000)
        check(r["state"] == "denied" and r["rule"] == "no-rm" and "recursive" in r["decision_message"], r)
        p = s.cli("submit", "-l", "shell", "-s", "p", "rm -rf /x")
        check(p.returncode == 3 and "recursive" in p.stderr, (p.returncode, p.stderr))
        r = agent.call("submit", lang="python", code="import socket", session="p", wait_ms=0)
        check(r["state"] == "pending_approval" and r["rule"] == "net", r)
        r = agent.call("submit", lang="python", code="1", session="prod-db", wait_ms=0)
        check(r["state"] == "pending_approval" and r["rule"] == "prod-session", r)
        r = ops.run("echo ops", lang="shell", session="p")                       # groups + lang
        check(r["state"] == "done" and r["rule"] == "ops-shell", r)
        r = agent.call("submit", lang="shell", code="echo hi", session="p", wait_ms=0)  # role + lang
        check(r["state"] == "pending_approval" and r["rule"] == "agent-shell", r)
        r = bob.call("submit", lang="python", code="1", session="p", wait_ms=0)       # principal
        check(r["state"] == "denied" and r["rule"] == "bob-denied", r)
        r = agent.run("2 + 2", session="p")
        check(r["state"] == "done" and r["rule"] == "rest" and r["value"] == "4", r)
        # first match wins: matches both no-rm (deny) and agent-shell (review)
        r = agent.call("submit", lang="shell", code="rm -rf x", session="p", wait_ms=0)
        check(r["rule"] == "no-rm", r)
        # the policy's sha256 is recorded with every decision
        import hashlib
        digest = hashlib.sha256(open(os.path.join(s.dir, "policy.json"), "rb").read()).hexdigest()
        check(s.sql("select count(*) from requests where policy_sha256 is not ?", digest)[0][0] == 0, "policy hash")
        # a catastrophic pattern on hostile input never allows: it ends in review
        r = agent.call("submit", lang="python", code="'" + "a" * 5000 + "!'", session="p", wait_ms=0)
        check(r["state"] == "pending_approval", (r["state"], r["rule"], r.get("decision_message")))
        for c in (agent, ops, bob):
            c.close()
    finally:
        done(s)


@test
def bad_policy_is_refused_and_reload_keeps_the_old_one():
    s = stack()
    try:
        bad = s.write_policy('{\n  "version": 1,\n  "rules": [\n    {"name": "x", "acton": "allow"}\n  ]\n}\n', "bad.json")
        p = s.cli("policy", "check", bad)
        check(p.returncode == 2 and re.search(r"bad\.json:4:\d+:", p.stderr + p.stdout), p.stderr + p.stdout)
        good = s.cli("policy", "check", os.path.join(s.dir, "policy.json"))
        check(good.returncode == 0, good.stderr)
        p = s.cli("policy", "explain", "-l", "shell", "rm -rf /")
        check(p.returncode == 0 and "no-rm" in p.stdout and "deny" in p.stdout, p.stdout + p.stderr)
        # a broken file on SIGHUP: the old policy stays in force
        s.write_policy('{"version": 1, "rules": [ {"name": "x", "action": "allow"} ', "policy.json")
        s.reload_policy()
        time.sleep(0.5)
        agent = s.client("agent")
        r = agent.call("submit", lang="shell", code="rm -rf /x", session="r", wait_ms=0)
        check(r["state"] == "denied" and r["rule"] == "no-rm", r)
        # a good file on SIGHUP takes over atomically
        s.write_policy({"version": 1, "rules": [{"name": "everything", "action": "allow"}]})
        s.reload_policy()
        time.sleep(0.5)
        r = agent.run("echo now", lang="shell", session="r")
        check(r["state"] == "done" and r["rule"] == "everything", r)
        agent.close()
        log = open(os.path.join(s.dir, "broker.log")).read()
        check("policy.json:1:" in log, "reload error not logged with file:line:col")
    finally:
        done(s)


@test
def quorum_self_approval_and_deny_rules():
    s = stack()
    try:
        admin, alice, carol, dave = (s.client(n) for n in ("admin", "alice", "carol", "dave"))
        r = admin.call("submit", lang="python", code="'NEEDS_TWO'", session="q", wait_ms=0)
        rid = r["id"]
        r = admin.call("approve", id=rid)
        check(not r["ok"] and r["error"]["code"] == "forbidden", ("self-approval", r))
        r = alice.call("approve", id=rid, reason="looks fine")
        check(r["ok"] and r["state"] == "pending_approval" and len(r["approvals"]) == 1, r)
        r = alice.call("approve", id=rid)
        check(not r["ok"] and r["error"]["code"] == "duplicate", ("same approver twice", r))
        check(admin.call("status", id=rid)["state"] == "pending_approval", "one approver sufficed")
        r = carol.call("approve", id=rid)
        check(r["ok"] and r["state"] in ("queued", "running", "done"), r)
        r = admin.call("await", id=rid, timeout_ms=10000)
        check(r["state"] == "done" and r["value"] == "'NEEDS_TWO'", r)
        check(sorted(a["approver"] for a in r["approvals"]) == ["alice", "carol"], r["approvals"])
        # deny needs a reason, and is final
        r = admin.call("submit", lang="python", code="'NEEDS_TWO again'", session="q", wait_ms=0)
        d = dave.call("deny", id=r["id"])
        check(not d["ok"] and d["error"]["code"] == "missing_field", d)
        p = s.cli("deny", str(r["id"]), "--key", s.key("dave"))
        check(p.returncode == 2, p.stderr)
        d = dave.call("deny", id=r["id"], reason="not today")
        check(d["ok"] and d["state"] == "denied", d)
        a = alice.call("approve", id=r["id"])
        check(not a["ok"] and a["error"]["code"] == "bad_state", a)
        p = s.cli("wait", str(r["id"]), "--key", s.key("admin"))
        check(p.returncode == 3, p.returncode)
        # the human's reason reaches the submitter: top-level in the JSON, and in what the CLI says
        st = admin.call("status", id=r["id"])
        check(st["deny_reason"] == "not today" and st["denied_by"] == "dave", st)
        for cmd in (["wait", str(r["id"])], ["status", str(r["id"])]):
            p = s.cli(*cmd, "--key", s.key("admin"))
            check("denied by dave: not today" in p.stderr, (cmd, p.stderr))
            p = s.cli(*cmd, "--key", s.key("admin"), "--json")
            check(json.loads(p.stdout)["deny_reason"] == "not today", (cmd, p.stdout))
        check(admin.call("status", id=rid)["deny_reason"] is None, "an approved request has none")
        # a rule's approver list is enforced: only group sre may decide
        r = admin.call("submit", lang="python", code="'SRE_ONLY'", session="q", wait_ms=0)
        c = carol.call("approve", id=r["id"])
        check(not c["ok"] and c["error"]["code"] == "forbidden", c)
        a = alice.call("approve", id=r["id"])
        check(a["ok"] and a["state"] != "pending_approval", a)
        # groups as keygen took them, with a space after the comma, match as the policy reads them
        r = admin.call("submit", lang="python", code="'SRE_ONLY erin'", session="q", wait_ms=0)
        erin = s.client("erin")
        e = erin.call("approve", id=r["id"])
        check(e["ok"] and e["state"] != "pending_approval", ("erin is in sre", e))
        erin.close()
        # CLI: pending lists, approve approves
        r = admin.call("submit", lang="python", code="'NEEDS_TWO cli'", session="q", wait_ms=0)
        p = s.cli("pending", "--key", s.key("alice"))
        check(p.returncode == 0 and ("request %d" % r["id"]) in p.stdout and "NEEDS_TWO cli" in p.stdout, p.stdout)
        p = s.cli("approve", str(r["id"]), "--key", s.key("alice"))
        check(p.returncode == 0 and "pending_approval" in p.stdout, p.stdout + p.stderr)
        for c in (admin, alice, carol, dave):
            c.close()
    finally:
        done(s)


@test
def parked_submit_shows_a_live_line_on_a_terminal():
    """`replgate submit` on a terminal: a line with approvals so far and time left, updated
    as approvals come, then the run's result once the quorum is reached."""
    s = stack()
    term = Terminal([os.path.join(BIN, "replgate"), "submit", "--dir", s.dir,
                     "--session", "tty", "'NEEDS_TWO'; 6 * 7"])
    try:
        m = term.wait_for(r"request (\d+): waiting for approval \(0 of 2, 59m \d\ds left\)")
        rid = m.group(1)
        check(term.proc.poll() is None, "submit ended while parked")
        a = s.cli("approve", rid, "--key", s.key("alice"))
        check(a.returncode == 0, a.stderr)
        term.wait_for(r"\r\x1b\[Krequest %s: waiting for approval \(1 of 2, " % rid)
        a = s.cli("approve", rid, "--key", s.key("carol"))
        check(a.returncode == 0, a.stderr)
        check(term.finish() == 0, "submit did not finish with the run's result")
        check(re.search(r"(^|\n)42\r?\n", term.text()), term.text())
    finally:
        term.close()
        done(s)


@test
def undecided_requests_are_decided_after_restart_with_their_groups():
    """A broker that dies between recording a submission and deciding it decides on restart,
    with the groups the submitter's cert had (recorded in the `received` event): opsbot's
    shell snippets are allowed by its group; without it they would be parked."""
    s = stack()
    try:
        ops = s.client("opsbot")
        r = ops.run("echo first", lang="shell", session="g")
        check(r["state"] == "done" and r["rule"] == "ops-shell", r)
        # Hold opsbot's next decision back, as if the broker had died right after recording it.
        s.sql("CREATE TRIGGER hold_decision BEFORE UPDATE OF state ON requests"
              " WHEN OLD.state = 'received' AND OLD.principal = 'opsbot'"
              " BEGIN SELECT RAISE(ABORT, 'held by the test'); END")
        ops.call("submit", lang="shell", code="echo second", session="g", wait_ms=0)
        ops.close()
        rows = s.sql("select id, state from requests where code = 'echo second'")
        check(len(rows) == 1 and rows[0][1] == "received", rows)
        data = json.loads(s.sql("select data from events where request_id = ? and type = 'received'",
                                rows[0][0])[0][0])
        check(data.get("groups") == "ops", data)
        s.kill_broker()
        s.sql("DROP TRIGGER hold_decision")
        s.start_broker()
        s.wait_workers(1)
        admin = s.client("admin")
        r = admin.call("await", id=rows[0][0], timeout_ms=10000, timeout=15)
        check(r["state"] == "done" and r["rule"] == "ops-shell" and r["stdout"] == "second\n", r)
        admin.close()
        p = s.cli("verify")
        check(p.returncode == 0, p.stdout + p.stderr)
    finally:
        done(s)


@test
def expiry_is_recorded():
    s = stack()
    try:
        agent = s.client("agent")
        r = agent.call("submit", lang="python", code="'SHORT_TTL'", session="e", wait_ms=0)
        check(r["state"] == "pending_approval" and r["review"]["ttl_s"] == 2, r)
        r = agent.call("await", id=r["id"], timeout_ms=6000, timeout=10)
        check(r["state"] == "expired", r)
        ev = s.sql("select actor from events where request_id = ? and type = 'expired'", r["id"])
        check(ev == [("broker",)], ev)
        p = s.cli("submit", "--no-wait", "'SHORT_TTL'")
        check(p.returncode == 4 and p.stdout.strip().isdigit(), (p.returncode, p.stdout))
        p = s.cli("wait", p.stdout.strip())
        check(p.returncode == 5, p.returncode)
        agent.close()
    finally:
        done(s)


@test
def altered_after_submission_does_not_run():
    s = stack()
    try:
        agent, alice = s.client("agent"), s.client("alice")
        r = agent.call("submit", lang="python", code="'socket ok'", session="h", wait_ms=0)
        check(r["state"] == "pending_approval", r)
        for (t,) in s.sql("select name from sqlite_master where type = 'trigger' and tbl_name = 'requests'"):
            s.sql("drop trigger %s" % t)
        s.sql("update requests set code = 'import os; os.system(\"id\")' where id = ?", r["id"])
        a = alice.call("approve", id=r["id"])
        check(not a["ok"] and "hash" in a["error"]["message"], a)
        r = agent.call("status", id=r["id"])
        check(r["state"] == "denied" and r["stdout"] is None, r)
        agent.close()
        alice.close()
    finally:
        done(s)


@test
def restart_keeps_pending_with_approvals_and_expiry():
    s = stack()
    try:
        agent, alice = s.client("agent"), s.client("alice")
        two = agent.call("submit", lang="python", code="'NEEDS_TWO'", session="rs", wait_ms=0)
        short = agent.call("submit", lang="python", code="'SHORT_TTL'", session="rs2", wait_ms=0)
        check(alice.call("approve", id=two["id"])["ok"], "first approval")
        agent.close()
        alice.close()
        s.kill_broker()
        s.start_broker()
        agent, carol = s.client("agent"), s.client("carol")
        r = agent.call("status", id=two["id"])
        check(r["state"] == "pending_approval" and len(r["approvals"]) == 1, r)
        r = agent.call("await", id=short["id"], timeout_ms=6000, timeout=10)
        check(r["state"] == "expired", r)
        r = carol.call("approve", id=two["id"])
        check(r["ok"] and r["state"] != "pending_approval", r)
        r = agent.call("await", id=two["id"], timeout_ms=10000)
        check(r["state"] == "done", r)
        agent.close()
        carol.close()
    finally:
        done(s)


@test
def outputs_are_masked_before_storage():
    s = stack()
    try:
        agent = s.client("agent")
        aws = "AKIA" + "Q3EGRZ7XHMBN4WPT"
        gh = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
        # the snippet builds each secret at run time (reversed in its code), so only the output,
        # never the stored code, holds it; it is written a few bytes at a time across pipe reads
        code = ("import os, sys, time\n"
                "for ch in %r[::-1]:\n    os.write(1, ch.encode()); time.sleep(0.002)\n"
                "print()\nprint('token', %r[::-1], file=sys.stderr)\n%r" % (aws[::-1], gh[::-1],
                                                                         "card 4111 1111 1111 1111"))
        r = agent.run(code, session="m")
        check(aws not in r["stdout"] and "[MASKED:" in r["stdout"], r["stdout"])
        check(gh not in r["stderr"] and "[MASKED:" in r["stderr"], r["stderr"])
        check("4111 1111 1111 1111" not in (r["value"] or "") and "[MASKED:" in r["value"], r["value"])
        r = agent.run("raise ValueError(%r[::-1])" % ("password=hunter2secret"[::-1],), session="m")
        check("hunter2secret" not in r["error_value"] + r["traceback"], r)
        agent.close()
        # nothing of the secrets reached the database file or its WAL
        for name in os.listdir(s.dir):
            if name.startswith("replgate.db"):
                raw = open(os.path.join(s.dir, name), "rb").read()
                for secret in (aws, gh, "hunter2secret"):
                    check(secret.encode() not in raw, "%s found in %s" % (secret, name))
    finally:
        done(s)


@test
def worker_secrets_reach_snippets_but_never_the_record():
    value = "Zq8-" + "worker-only-" + "7e1f0c"
    path = os.path.join(harness.scratch_dir("replgate-secrets-"), "secrets.json")
    with open(path, "w") as f:
        json.dump({"DB_PASSWORD": value}, f)
    s = Stack(worker_args=["--secrets", path])
    try:
        agent = s.client("agent")
        # written a character at a time, so it straddles pipe reads; also in a traceback
        r = agent.run("import os, sys, time\nv = os.environ['DB_PASSWORD']\n"
                      "for ch in v:\n    sys.stdout.write(ch); sys.stdout.flush(); time.sleep(0.003)\n"
                      "print()\nlen(v)", session="sec")
        check(r["outcome"] == "ok" and r["value"] == str(len(value)), r)
        check(value not in r["stdout"] and "[MASKED:DB_PASSWORD]" in r["stdout"], r["stdout"])
        r = agent.run("import os\nraise RuntimeError(os.environ['DB_PASSWORD'])", session="sec")
        check(value not in r["error_value"] + r["traceback"] and "[MASKED:DB_PASSWORD]" in r["error_value"], r)
        r = agent.run("echo \"$DB_PASSWORD\" >&2", lang="shell", session="sec")
        check(r["stderr"] == "[MASKED:DB_PASSWORD]\n", r["stderr"])
        agent.close()
        for name in os.listdir(s.dir):
            if name.startswith("replgate.db"):
                raw = open(os.path.join(s.dir, name), "rb").read()
                check(value.encode() not in raw, "secret found in " + name)
    finally:
        done(s)


@test
def compatibility_spellings_and_match_limits_never_slip_through():
    s = Stack(policy=None)                      # the shipped default policy
    try:
        agent = s.client("agent")
        r = agent.run("1 + 1", session="u")
        check(r["state"] == "done" and r["value"] == "2", r)    # the worker runs what is allowed
        # Python imports socket for a full-width s; the rules see the code's NFKC form too
        r = agent.call("submit", lang="python", code="import \uff53ocket", session="u", wait_ms=0)
        check(r["state"] == "pending_approval" and r["rule"] == "network", r)
        check("matched after NFKC normalisation" in r["decision_message"], r["decision_message"])
        r = agent.call("submit", lang="python", code="import shutil\nshutil.\uff52mtree('/')",
                       session="u", wait_ms=0)
        check(r["state"] == "denied" and r["rule"] == "deny-rmtree-root", r)
        check("matched after NFKC normalisation" in r["decision_message"], r["decision_message"])
        check(s.sql("select count(*) from requests where started_at is not null")[0][0] == 1, "a snippet ran")
        # a deny rule whose pattern hits its match limit denies, it does not go to review
        s.write_policy({"version": 1, "rules": [
            {"name": "bomb", "match": {"code": "(a+)+$"}, "action": "deny", "message": "no"},
            {"name": "rest", "action": "allow"}]})
        s.reload_policy()
        deadline = time.time() + 5 * SLOW
        while not s.sql("select count(*) from events where type = 'policy_reloaded'")[0][0]:
            check(time.time() < deadline, "policy not reloaded")
            time.sleep(0.05)
        r = agent.call("submit", lang="python", code="'" + "a" * 5000 + "!'", session="u", wait_ms=0)
        check(r["state"] == "denied" and r["rule"] == "bomb" and "match limit" in r["decision_message"], r)
        agent.close()
    finally:
        done(s)


if __name__ == "__main__":
    raise SystemExit(run_all("gate"))
