"""tests/test_agents.py: what an agent needs beyond submit (issue 14): visible sessions, reset
and close, interrupt, a run timeout of its own choosing and output streamed as it comes, each
through the real broker and worker, and each against another principal naming what is not its
own."""
import json, os, re, signal, time
import harness
from harness import BIN, Stack, Terminal, check, run_all, test, SLOW

UID_BASE = 298000
POLICY = {"version": 1, "rules": [
    {"name": "short", "match": {"code": "SHORT"}, "action": "allow", "limits": {"timeout_ms": 2000}},
    {"name": "allow-all", "action": "allow"}]}
S = None
API_TOKEN = "tok-" + "stream-me-not-" + "7f3a9c"     # the worker's secret; snippets read $API_TOKEN


def shared():
    global S
    if S is None:
        path = os.path.join(harness.scratch_dir("replgate-agents-"), "secrets.json")
        with open(path, "w") as f:
            json.dump({"API_TOKEN": API_TOKEN}, f)
        S = Stack(slots=6, policy=POLICY, worker_args=["--uid-base", str(UID_BASE), "--secrets", path],
                  broker_args=["--max-timeout-ms", "60000"])
        r = S.cli("keygen", "bob", "--role", "agent")
        check(r.returncode == 0, r.stderr)
    return S


def mine(listing, session, lang="python"):
    return [e for e in listing["sessions"] if e["session"] == session and e["lang"] == lang]


@test
def sessions_are_listed_for_their_owner_only():
    s = shared()
    alice, bob, admin = s.client("agent"), s.client("bob"), s.client("admin")
    try:
        for i in range(3):
            check(alice.run("x = %d" % i, session="ls-a")["outcome"] == "ok", "alice")
        check(alice.run("echo hi", lang="shell", session="ls-a")["outcome"] == "ok", "shell")
        check(bob.run("y = 1", session="ls-b")["outcome"] == "ok", "bob")
        r = alice.call("sessions")
        check(r["ok"], r)
        [py] = mine(r, "ls-a")
        check(py["principal"] == "agent" and py["worker"] == "w0" and py["state"] == "idle", py)
        check(py["execution_count"] == 3 and py["last_used"].endswith("Z"), py)
        check(py["memory_kb"] is None or py["memory_kb"] > 0, py)
        check(len(mine(r, "ls-a", "shell")) == 1, r)
        check(not mine(r, "ls-b"), ("bob's session shown to alice", r))
        check(not mine(bob.call("sessions"), "ls-a"), "alice's session shown to bob")
        every = admin.call("sessions")
        check(mine(every, "ls-a") and mine(every, "ls-b")[0]["principal"] == "bob", every)
    finally:
        for c in (alice, bob, admin):
            c.close()


@test
def reset_and_close_end_the_interpreter_on_the_record():
    s = shared()
    alice, bob = s.client("agent"), s.client("bob")
    try:
        check(alice.run("kept = 'state'", session="rs")["outcome"] == "ok", "first")
        # bob names alice's session: it is not his, so there is nothing of his to reset
        r = bob.call("reset", session="rs", lang="python")
        check(not r["ok"] and r["error"]["code"] == "not_found", r)
        check(alice.run("kept", session="rs")["value"] == "'state'", "bob's reset changed nothing")
        r = alice.call("reset", session="rs", lang="python")
        check(r["ok"] and r["reset"] is True, r)
        r = alice.run("kept", session="rs")
        check(r["error_name"] == "NameError" and r["session_reset"] is True
              and "reset" in r["reset_reason"], r)
        ev = s.sql("select actor, data from events where type = 'session_reset'")
        check(any(a == "agent" and json.loads(d)["session"] == "rs" for a, d in ev), ev)
        # close: the interpreter ends and is no longer listed
        r = alice.call("close", session="rs", lang="python")
        check(r["ok"] and r["closed"] is True, r)
        check(not mine(alice.call("sessions"), "rs"), "closed session still listed")
        check(s.sql("select count(*) from events where type = 'session_closed'")[0][0] >= 1, "event")
        r = alice.call("close", session="rs", lang="python")
        check(not r["ok"] and r["error"]["code"] == "not_found", r)
        # a session running a snippet is not reset under it
        busy = alice.call("submit", lang="python", code="import time; time.sleep(1.5)", session="rs",
                          wait_ms=0)
        deadline = time.time() + 10 * SLOW
        while alice.call("status", id=busy["id"])["state"] != "running" and time.time() < deadline:
            time.sleep(0.02)
        r = alice.call("reset", session="rs", lang="python")
        check(not r["ok"] and r["error"]["code"] == "bad_state", r)
        check(alice.call("await", id=busy["id"], timeout_ms=10000)["outcome"] == "ok", "busy run")
        for bad in ({"session": "rs"}, {"session": "rs", "lang": "perl"}, {"session": 5, "lang": "python"},
                    {"session": "rs", "lang": "python", "owner": "agent"}):
            r = bob.call("reset", **bad)
            check(not r["ok"] and r["error"]["code"] in ("missing_field", "bad_value", "bad_type",
                                                         "unknown_key"), (bad, r))
    finally:
        alice.close()
        bob.close()


@test
def a_run_timeout_is_asked_for_within_the_rule():
    s = shared()
    c = s.client()
    try:
        r = c.call("submit", lang="python", code="'SHORT'", session="to", timeout_ms=5000, wait_ms=5000)
        check(not r["ok"] and r["error"]["code"] == "bad_value" and "2000" in r["error"]["message"]
              and "short" in r["error"]["message"], r)
        r = c.call("submit", lang="python", code="1", session="to", timeout_ms=70000, wait_ms=5000)
        check(not r["ok"] and r["error"]["code"] == "bad_value" and "60000" in r["error"]["message"], r)
        for bad in (0, -5, "10", 1.5, True):
            r = c.call("submit", lang="python", code="1", session="to", timeout_ms=bad, wait_ms=5000)
            check(not r["ok"] and r["error"]["code"] in ("bad_value", "bad_type"), (bad, r))
        n = s.sql("select count(*) from requests where session = 'to'")[0][0]
        check(n == 0, ("refused submits were recorded", n))
        t0 = time.time()
        r = c.run("import time; time.sleep(5)", session="to", timeout_ms=700)
        check(r["outcome"] == "timeout" and time.time() - t0 < 4 * SLOW, r)
        limits = json.loads(s.sql("select limits from requests where id = ?", r["id"])[0][0])
        check(limits["timeout_ms"] == 700, limits)
        received = json.loads(s.sql("select data from events where request_id = ? and type = 'received'",
                                    r["id"])[0][0])
        check(received["timeout_ms"] == 700, received)
        r = c.run("'SHORT and quick'", session="to", timeout_ms=1500)
        check(r["outcome"] == "ok", r)
    finally:
        c.close()


@test
def interrupt_is_for_running_requests_of_the_caller():
    s = shared()
    alice, bob = s.client("agent"), s.client("bob")
    try:
        r = alice.run("1", session="int")
        done = alice.call("interrupt", id=r["id"])
        check(not done["ok"] and done["error"]["code"] == "bad_state", done)
        running = alice.call("submit", lang="python", code="import time; time.sleep(1)", session="int",
                             wait_ms=0)
        r = bob.call("interrupt", id=running["id"])
        check(not r["ok"] and r["error"]["code"] == "not_found", ("bob interrupted alice", r))
        r = bob.call("interrupt", id=10 ** 9)
        check(not r["ok"] and r["error"]["code"] == "not_found", r)
        check(alice.call("await", id=running["id"], timeout_ms=10000)["outcome"] == "ok", "undisturbed")
        check(not s.sql("select 1 from events where type = 'interrupt'"), "a refused interrupt recorded")
    finally:
        alice.close()
        bob.close()


@test
def idle_sessions_end_after_their_time_to_live_on_the_record():
    s = Stack(slots=2, worker_args=["--uid-base", str(UID_BASE + 100), "--idle-ttl", "1"])
    c = s.client()
    try:
        check(c.run("kept = 1", session="ttl")["outcome"] == "ok", "first")
        check(mine(c.call("sessions"), "ttl"), "listed while fresh")
        deadline = time.time() + 10 * SLOW
        while mine(c.call("sessions"), "ttl") and time.time() < deadline:
            time.sleep(0.2)
        check(not mine(c.call("sessions"), "ttl"), "still listed past its ttl")
        ev = s.sql("select data from events where type = 'evicted'")
        check(any(json.loads(d)["session"] == "ttl" and "idle" in json.loads(d)["reason"] for (d,) in ev), ev)
        r = c.run("kept", session="ttl")
        check(r["error_name"] == "NameError" and r["session_reset"] is True and "idle" in r["reset_reason"], r)
        # a session kept busy is never ended under its run, however long it takes
        r = c.run("import time; time.sleep(2.5); kept = 2", session="ttl", timeout_ms=10000)
        check(r["outcome"] == "ok" and c.run("kept", session="ttl")["value"] == "2", r)
    finally:
        c.close()
        check(not s.stop(), "sanitizer")


def running(c, rid):
    deadline = time.time() + 10 * SLOW
    while c.call("status", id=rid)["state"] != "running" and time.time() < deadline:
        time.sleep(0.02)


@test
def interrupt_stops_the_snippet_and_keeps_the_session():
    s = shared()
    alice, admin = s.client("agent"), s.client("admin")
    try:
        r = alice.call("submit", lang="python", code="kept = 6\nimport time\ntime.sleep(30)",
                       session="intr", wait_ms=0)
        running(alice, r["id"])
        time.sleep(0.2)
        t0 = time.time()
        i = alice.call("interrupt", id=r["id"])
        check(i["ok"] and i["state"] == "running", i)
        done = alice.call("await", id=r["id"], timeout_ms=10000)
        check(done["outcome"] == "interrupted" and done["error_name"] == "KeyboardInterrupt"
              and not done["session_reset"] and time.time() - t0 < 5 * SLOW, done)
        check(alice.run("kept * 7", session="intr")["value"] == "42", "state kept")
        ev = s.sql("select actor, data from events where request_id = ? and type = 'interrupt'", r["id"])
        check(len(ev) == 1 and ev[0][0] == "agent" and json.loads(ev[0][1])["worker"] == "w0", ev)
        # an admin may interrupt someone else's run; a shell stops its foreground job
        r = alice.call("submit", lang="shell", code="v=kept; sleep 30; echo never", session="intr",
                       wait_ms=0)
        running(alice, r["id"])
        time.sleep(0.2)
        check(admin.call("interrupt", id=r["id"])["ok"], "admin interrupt")
        done = alice.call("await", id=r["id"], timeout_ms=10000)
        check(done["outcome"] == "interrupted" and done["exit_code"] == 130
              and "never" not in (done["stdout"] or ""), done)
        check(alice.run("echo $v", lang="shell", session="intr")["stdout"] == "kept\n", "shell state")
        check(s.cli("verify").returncode == 0, "the record verifies")
        # the same from the command line: interrupt waits for how the run ended
        r = alice.call("submit", lang="python", code="import time\ntime.sleep(30)", session="intr",
                       wait_ms=0)
        running(alice, r["id"])
        p = s.cli("interrupt", str(r["id"]), "--key", s.key("agent"))
        check(p.returncode == 5 and "interrupted" in p.stderr, (p.returncode, p.stdout, p.stderr))
        p = s.cli("interrupt", str(r["id"]), "--key", s.key("agent"))
        check(p.returncode != 0 and "bad_state" in p.stderr, (p.returncode, p.stderr))
        p = s.cli("sessions", "--key", s.key("agent"))
        check(p.returncode == 0 and "intr" in p.stdout and "python" in p.stdout and "shell" in p.stdout,
              p.stdout)
        listed = json.loads(s.cli("sessions", "--json", "--key", s.key("agent")).stdout)
        check(any(e["session"] == "intr" and e["lang"] == "shell" for e in listed), listed)
        p = s.cli("reset", "intr", "-l", "shell", "--key", s.key("agent"))
        check(p.returncode == 0 and "reset session intr (shell)" in p.stdout, p.stdout + p.stderr)
        check(alice.run("echo ${v:-gone}", lang="shell", session="intr")["stdout"] == "gone\n", "reset")
        p = s.cli("close", "nosuch", "--key", s.key("agent"))
        check(p.returncode != 0 and "not_found" in p.stderr, (p.returncode, p.stderr))
    finally:
        alice.close()
        admin.close()


def streamed(c, code, **kw):
    """Submits with stream: true; returns (output frames, final reply)."""
    c.n += 1
    rid = "st%d" % c.n
    c.sock.send(json.dumps(dict(kw, op="submit", rid=rid, lang=kw.get("lang", "python"), code=code,
                                session=kw.get("session", "stream"), stream=True,
                                wait_ms=20000)).encode())
    frames, deadline = [], time.time() + 30 * SLOW
    while time.time() < deadline:
        m = c.recv(deadline - time.time())
        check(m is not None, "no reply")
        if m.get("op") == "output":
            frames.append((time.time(), m))
        elif m.get("rid") == rid:
            m["_at"] = time.time()
            return frames, m
    raise AssertionError("no reply")


@test
def output_streams_as_it_comes_masked_like_the_record():
    s = shared()
    c = s.client()
    try:
        code = ("import os, sys, time\n"
                "for i in range(4):\n    print('tick', i, flush=True)\n    time.sleep(0.3)\n"
                "t = os.environ['API_TOKEN']\n"
                "sys.stdout.write(t[:9]); sys.stdout.flush(); time.sleep(0.3)\n"
                "sys.stdout.write(t[9:] + '\\n'); sys.stdout.flush()\n"
                "print('pass', end='', flush=True); time.sleep(0.3); print('word=hunter2hunter2', flush=True)\n"
                "print('to stderr', file=sys.stderr)")
        frames, reply = streamed(c, code)
        check(reply["ok"] and reply["outcome"] == "ok", reply)
        outs = [m for _, m in frames if m["stream"] == "stdout"]
        check([m["seq"] for _, m in frames] == list(range(len(frames))), frames)
        check(all(m["id"] == reply["id"] for _, m in frames), frames)
        # the first tick came long before the run ended (1.5 s of sleeps after it): it streamed
        check(frames and reply["_at"] - frames[0][0] > 0.8 and frames[0][1]["data"].startswith("tick"),
              (frames[:2], reply["_at"]))
        joined = "".join(m["data"] for m in outs)
        check(joined == reply["stdout"], (joined, reply["stdout"]))
        check(API_TOKEN not in joined and API_TOKEN[:9] not in joined and "hunter2hunter2" not in joined,
              joined)
        check("[MASKED:API_TOKEN]" in joined and "[MASKED:" in joined.split("\n")[-2], joined)
        check("".join(m["data"] for _, m in frames if m["stream"] == "stderr") == "to stderr\n", frames)
        # no stream unless asked
        c.sock.send(json.dumps({"op": "submit", "rid": "plain", "lang": "python", "code": "print(1)",
                                "session": "stream", "wait_ms": 10000}).encode())
        m = c.recv(10)
        check(m and m.get("rid") == "plain" and m["stdout"] == "1\n", m)
        # binary output streams as data_base64
        frames, reply = streamed(c, "printf 'a\\0b'", lang="shell", session="stream-sh")
        check(frames and frames[0][1].get("data_base64") and "data" not in frames[0][1], frames)
    finally:
        c.close()


@test
def the_cli_streams_interrupts_and_asks_for_a_timeout():
    s = shared()
    cli = os.path.join(BIN, "replgate")
    code = "import time\nfor i in range(3):\n    print('step', i, flush=True)\n    time.sleep(0.5)\nprint('done')"
    term = Terminal([cli, "submit", "--dir", s.dir, "-s", "cli-stream", code])
    try:
        term.wait_for("step 0", timeout=10)
        check("done" not in term.text(), ("the first line came only at the end", term.text()))
        check(term.finish() == 0, term.text())
        text = term.text()
        check(text.count("step 1") == 1 and text.count("done") == 1, ("repeated at the end", text))
    finally:
        term.close()
    # --no-stream on a terminal: everything at the end, once
    term = Terminal([cli, "submit", "--dir", s.dir, "-s", "cli-stream", "--no-stream", "print('quiet')"])
    try:
        check(term.finish() == 0 and term.text().count("quiet") == 1, term.text())
    finally:
        term.close()
    # a pipe gets no stream unless asked, and --stream works there too
    p = s.cli("submit", "-s", "cli-stream", "--stream", code)
    check(p.returncode == 0 and p.stdout == "step 0\nstep 1\nstep 2\ndone\n", p.stdout)
    # Ctrl-C while it runs interrupts it; the session keeps its state
    term = Terminal([cli, "submit", "--dir", s.dir, "-s", "cli-stream",
                     "kept = 'yes'\nimport time\nprint('sleeping', flush=True)\ntime.sleep(30)"])
    try:
        term.wait_for("sleeping", timeout=10)
        term.proc.send_signal(signal.SIGINT)
        status = term.finish()
        check(status == 5 and "interrupting request" in term.text() and "KeyboardInterrupt" in term.text(),
              (status, term.text()))
    finally:
        term.close()
    check(s.cli("submit", "-s", "cli-stream", "kept").stdout == "'yes'\n", "state kept")
    # a second Ctrl-C stops waiting, and the run goes on
    term = Terminal([cli, "submit", "--dir", s.dir, "-s", "cli-stream",
                     "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                     "print('stubborn', flush=True)\ntime.sleep(1.5)"])
    try:
        term.wait_for("stubborn", timeout=10)
        term.proc.send_signal(signal.SIGINT)
        term.wait_for("interrupting request", timeout=5)
        term.proc.send_signal(signal.SIGINT)
        status = term.finish()
        check(status == 4 and re.search(r"request \d+ is still running", term.text()), (status, term.text()))
    finally:
        term.close()
    # --timeout-ms: the run's own limit, within the rule's
    p = s.cli("submit", "-s", "cli-stream", "--timeout-ms", "400", "import time; time.sleep(5)")
    check(p.returncode == 6 and "timeout" in p.stderr, (p.returncode, p.stderr))
    p = s.cli("submit", "-s", "cli-stream", "--timeout-ms", "5000", "'SHORT'")
    check(p.returncode == 2 and "2000" in p.stderr, (p.returncode, p.stderr))
    for bad in ("0", "1.5", "x", "90000000"):
        p = s.cli("submit", "-s", "cli-stream", "--timeout-ms", bad, "1")
        check(p.returncode == 2 and "--timeout-ms" in p.stderr, (bad, p.stderr))
    p = s.cli("submit", "-s", "cli-stream", "--stream", "--no-stream", "1")
    check(p.returncode == 2, p.stderr)


if __name__ == "__main__":
    try:
        rc = run_all("agents")
    finally:
        if S:
            S.stop()
    raise SystemExit(rc)
