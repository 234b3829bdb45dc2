"""tests/test_core.py: the core pipeline end to end: real broker, real worker, real SQLite."""
import json, os, signal, sqlite3, subprocess, threading, time
import harness
from harness import BIN, Stack, check, free_port_pair, run_all, test, wait_for, SLOW

S = None   # a shared stack for the tests that do not kill anything


def shared():
    global S
    if S is None:
        S = Stack()
    return S


@test
def python_state_persists_and_sessions_are_separate():
    c = shared().client()
    r = c.run("x = 41\ndef f(v):\n    return v + 1", session="py-a")
    check(r["state"] == "done" and r["outcome"] == "ok", r)
    r = c.run("f(x)", session="py-a")
    check(r["value"] == "42", r)
    r = c.run("x", session="py-b")
    check(r["outcome"] == "error" and r["error_name"] == "NameError", r)
    r = c.run("print('hello'); 'v' * 3", session="py-a")
    check(r["stdout"] == "hello\n" and r["value"] == "'vvv'", r)
    r = c.run("None", session="py-a")
    check(r["value"] is None, r)
    c.close()


@test
def python_exception_and_syntax_error():
    s = shared()
    c = s.client()
    r = c.run("def g():\n    return 1/0\ng()", session="py-exc")
    check(r["outcome"] == "error" and r["exit_code"] == 1, r)
    check(r["error_name"] == "ZeroDivisionError" and "division by zero" in r["error_value"], r)
    check("return 1/0" in r["traceback"] and "pydriver" not in r["traceback"], r["traceback"])
    r = c.run("def (:", session="py-exc")
    check(r["outcome"] == "error" and r["error_name"] == "SyntaxError", r)
    # the CLI maps the failure to exit 1 and prints the traceback
    p = s.cli("submit", "-s", "py-exc", "1/0")
    check(p.returncode == 1 and "ZeroDivisionError" in p.stderr, (p.returncode, p.stderr))
    c.close()


@test
def python_captures_at_fd_level():
    c = shared().client()
    r = c.run("import os, sys\nos.write(1, b'raw\\n')\nos.system('echo child')\nprint('err', file=sys.stderr)",
              session="py-fd")
    check("raw\n" in r["stdout"] and "child\n" in r["stdout"] and r["stderr"] == "err\n", r)
    r = c.run("1", session="py-fd")
    check(r["execution_count"] == 2, r)
    c.close()


@test
def shell_state_persists():
    s = shared()
    c = s.client()
    r = c.run("cd /tmp && X=5 && greet() { echo \"hi $1\"; }", lang="shell", session="sh-a")
    check(r["outcome"] == "ok" and r["exit_code"] == 0, r)
    r = c.run("pwd; echo $X; greet bob", lang="shell", session="sh-a")
    check(r["stdout"] == "/tmp\n5\nhi bob\n", r)
    r = c.run("false", lang="shell", session="sh-a")
    check(r["outcome"] == "error" and r["exit_code"] == 1, r)
    r = c.run("ls /nonexistent-dir", lang="shell", session="sh-a")
    check(r["exit_code"] == 2 and "nonexistent" in r["stderr"], r)
    p = s.cli("submit", "-l", "shell", "-s", "sh-cli", "echo from-cli; exit 0")
    check(p.returncode == 0 and "from-cli" in p.stdout, (p.returncode, p.stdout, p.stderr))
    c.close()


@test
def shell_exit_resets_session():
    c = shared().client()
    c.run("Y=1", lang="shell", session="sh-exit")
    r = c.run("exit 3", lang="shell", session="sh-exit")
    check(r["exit_code"] == 3 and r["session_reset"] is True, r)
    r = c.run("echo \"[${Y:-unset}]\"", lang="shell", session="sh-exit")
    check(r["outcome"] == "ok" and r["stdout"] == "[unset]\n", r)
    c.close()


@test
def shell_state_outlives_each_snippets_own_bash():
    """Each shell snippet runs in a bash of its own: what a session keeps is carried from one
    to the next (variables of every kind, exports and unsets, functions, aliases, options,
    the working directory, umask), and a snippet that ends the shell still ends the session."""
    c = shared().client()
    r = c.run("declare -A h=([k]=v); a=(1 'two words'); export E=exp; unset HOME; readonly R=1\n"
              "set -o pipefail; shopt -s expand_aliases; alias hi='echo alias-hi'; umask 027\n"
              "cd /tmp; f() { echo \"f:$1\"; }; n=$'line1\\nline2'; declare -i i=6", lang="shell",
              session="sh-state")
    check(r["outcome"] == "ok", r)
    r = c.run("echo \"${h[k]} ${a[1]} $E ${HOME-unset} $R $(umask) $PWD\"; f x; hi\n"
              "sh -c 'echo $E'; printf '%s\\n' \"$n\" | wc -l; false | true; echo $?; i+=1; echo $i",
              lang="shell", session="sh-state")
    check(r["stdout"] == "v two words exp unset 1 0027 /tmp\nf:x\nalias-hi\nexp\n2\n1\n7\n", r)
    check(r["exit_code"] == 0 and not r["session_reset"], r)
    r = c.run("set -e", lang="shell", session="sh-state")
    check(r["outcome"] == "ok", r)
    r = c.run("false; echo not-reached", lang="shell", session="sh-state")
    check(r["exit_code"] == 1 and r["stdout"] == "" and r["session_reset"], r)
    r = c.run("echo \"${R-gone}\"", lang="shell", session="sh-state")
    check(r["stdout"] == "gone\n", r)
    c.close()


@test
def a_shell_whose_state_cannot_be_saved_ends_with_a_reason():
    c = shared().client()
    r = c.run("x=1; head -c 2G /dev/zero > /tmp/fill 2>/dev/null; y=$(printf '%*s' 100000 '')",
              lang="shell", session="sh-full", timeout=60)
    check(r["exit_code"] == 125 and r["session_reset"], r)
    check("state could not be saved" in r["stderr"], r)
    r = c.run("echo \"${x-fresh}\"; df -k /tmp | tail -1", lang="shell", session="sh-full")
    check(r["stdout"].startswith("fresh\n") and r["exit_code"] == 0, r)
    c.close()


@test
def shell_status_cannot_be_forged():
    c = shared().client()
    r = c.run("echo 'deadbeef 0' >&4; printf 'marker 0\\n'; false", lang="shell", session="sh-forge")
    check(r["exit_code"] == 1, r)
    c.close()


@test
def timeouts_reset_the_session():
    s = Stack(broker_args=["--timeout-ms", "1500"])
    try:
        c = s.client()
        c.run("keep = 1", session="t-py")
        t0 = time.time()
        r = c.run("while True: pass", session="t-py")
        took = time.time() - t0
        check(r["outcome"] == "timeout" and r["session_reset"] is True, r)
        check(took < (1.5 + 1.0) * SLOW + 0.5, took)
        r = c.run("'keep' in globals()", session="t-py")
        check(r["value"] == "False", r)
        t0 = time.time()
        r = c.run("sleep 100", lang="shell", session="t-sh")
        check(r["outcome"] == "timeout" and time.time() - t0 < (1.5 + 1.0) * SLOW + 0.5, r)
        p = s.cli("submit", "-l", "shell", "-s", "t-sh", "sleep 100")
        check(p.returncode == 6, (p.returncode, p.stderr))
        c.close()
    finally:
        check(not s.stop(), "sanitizer report")


@test
def huge_output_is_truncated_and_worker_stays_responsive():
    c = shared().client()
    r = c.run("import sys\nsys.stdout.write('x' * 100_000_000)\n'done'", session="big")
    # the cap keeps exactly 1 MiB; past 64 MiB of drained output the worker ends the snippet
    check(r["outcome"] in ("ok", "output_limit") and r["stdout_truncated"] is True
          and len(r["stdout"]) == 1048576, (r["outcome"], len(r["stdout"] or "")))
    r = c.run("import sys\nsys.stdout.write('y' * 5_000_000)\n'small'", session="big")
    check(r["outcome"] == "ok" and r["stdout_truncated"] is True and r["value"] == "'small'", r["outcome"])
    r = c.run("1 + 1", session="big")
    check(r["value"] == "2", r)
    c.close()


@test
def concurrent_clients():
    s = shared()
    errors = []
    ids = []
    lock = threading.Lock()

    def agent(n):
        c = s.client()
        try:
            for i in range(25):
                r = c.run("%d * %d" % (n, i), session="cc-%d" % n, key="k-%d-%d" % (n, i))
                if r.get("value") != str(n * i):
                    errors.append((n, i, r))
                with lock:
                    ids.append(r["id"])
        except Exception as e:
            errors.append((n, repr(e)))
        finally:
            c.close()
    threads = [threading.Thread(target=agent, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, errors[:3])
    check(len(set(ids)) == 800, len(set(ids)))
    rows = s.sql("select count(*), count(distinct id) from requests where session like 'cc-%'")
    check(rows[0] == (800, 800), rows)
    rows = s.sql("select count(*) from events e join requests r on r.id = e.request_id "
                 "where r.session like 'cc-%' and e.type = 'received'")
    check(rows[0][0] == 800, rows)


@test
def wal_starts_over_under_steady_writes():
    """The broker checkpoints off its loop, then catches up and lets the WAL start over: under
    writes that never pause, the WAL restarts (its header's checkpoint sequence number moves)
    instead of growing for ever, and the main database file holds the records."""
    s = Stack()
    try:
        c = s.client()
        wal = s.db + "-wal"

        def restarts():     # WAL header bytes 12-15: checkpoint sequence, +1 per restart
            with open(wal, "rb") as f:
                return int.from_bytes(f.read(16)[12:16], "big")
        c.call("submit", lang="python", code="1", session="wal", wait_ms=10000)
        first = restarts()
        t0 = time.time()
        n = 0
        while time.time() - t0 < 4.5:
            c.call("submit", lang="python", code="1", session="wal", wait_ms=10000)
            n += 1
        c.close()
        check(restarts() - first >= 2, ("WAL restarts while writing", first, restarts(), n,
                                         os.path.getsize(wal)))
        con = sqlite3.connect("file:%s?immutable=1" % s.db, uri=True)
        in_file = con.execute("select count(*) from requests where session = 'wal'").fetchone()[0]
        con.close()
        check(in_file > n / 2, ("rows in the main file", in_file, n))
    finally:
        check(not s.stop(), "sanitizer report")


@test
def idempotency_key_returns_the_same_request():
    c = shared().client()
    a = c.run("import random; random.random()", session="idem", key="once")
    b = c.run("import random; random.random()", session="idem", key="once")
    check(a["id"] == b["id"] and a["value"] == b["value"] and b.get("duplicate") is True, (a, b))
    # a key names one snippet: reused for other code, another session or language it is refused
    for change in ({"code": "2 + 2"}, {"session": "idem2"}, {"lang": "shell", "code": "import random; random.random()"}):
        fields = dict(lang="python", code="import random; random.random()", session="idem", key="once")
        fields.update(change)
        r = c.call("submit", wait_ms=5000, **fields)
        check(r and not r["ok"] and r["error"]["code"] == "conflict", (change, r))
    # another principal's key of the same name is its own
    o = shared().client("admin")
    r = o.run("1 + 1", session="idem", key="once")
    check(r["id"] != a["id"] and r["value"] == "2" and "duplicate" not in r, r)
    o.close()
    c.close()


@test
def await_does_not_block_other_clients():
    s = shared()
    slow, fast = s.client(), s.client()
    r = slow.call("submit", lang="shell", code="sleep 1.5; echo slept", session="aw-slow", wait_ms=0)
    rid = r["id"]
    slow.sock.send(json.dumps({"op": "await", "id": rid, "timeout_ms": 10000, "rid": "aw"}).encode())
    t0 = time.time()
    r = fast.run("'fast'", session="aw-fast")
    check(r["value"] == "'fast'" and time.time() - t0 < 1.0 * SLOW, time.time() - t0)
    got = slow.recv(10)
    check(got and got["rid"] == "aw" and got["state"] == "done" and got["stdout"] == "slept\n", got)
    # await with a short timeout answers with the current state
    r = slow.call("submit", lang="shell", code="sleep 1", session="aw-slow2", wait_ms=0)
    got = slow.call("await", id=r["id"], timeout_ms=100)
    check(got["ok"] and got["state"] in ("queued", "running"), got)
    slow.close()
    fast.close()


@test
def cancel_a_queued_request():
    s = shared()
    c = s.client()
    first = c.call("submit", lang="shell", code="sleep 1", session="cancel-me", wait_ms=0)
    second = c.call("submit", lang="shell", code="echo never", session="cancel-me", wait_ms=0)
    r = c.call("cancel", id=second["id"])
    check(r["ok"] and r["state"] == "cancelled", r)
    r = c.call("cancel", id=first["id"])
    check(not r["ok"] and r["error"]["code"] == "bad_state", r)
    r = c.call("await", id=first["id"], timeout_ms=10000)
    check(r["state"] == "done", r)
    check(s.sql("select state, stdout from requests where id = ?", second["id"])[0] == ("cancelled", None), "")
    # another agent's request reads as absent; an admin sees it
    s2 = s.cli("keygen", "other", "--role", "agent")
    check(s2.returncode == 0, s2.stderr)
    other = s.client("other")
    r = other.call("status", id=first["id"])
    check(not r["ok"] and r["error"]["code"] == "not_found", r)
    r = other.call("cancel", id=first["id"])
    check(not r["ok"] and r["error"]["code"] == "not_found", r)
    admin = s.client("admin")
    check(admin.call("status", id=first["id"])["ok"], "admin status")
    for x in (c, other, admin):
        x.close()


@test
def malformed_input_gets_stable_errors():
    s = shared()
    c = s.client()
    cases = [
        (b"not json", "bad_json"),
        (b"[1,2,3]", "not_object"),
        (b'{"op":"teleport","rid":"x"}', "unknown_op"),
        (b'{"op":"submit","rid":"x","lang":"python","code":5,"session":"s"}', "bad_type"),
        (b'{"op":"submit","rid":"x","lang":"python","session":"s"}', "missing_field"),
        (b'{"op":"submit","rid":"x","lang":"python","code":"1","session":"s","evil":1}', "unknown_key"),
        (b'{"op":"submit","rid":"x","lang":"python","code":"\xff\xfe","session":"s"}', "bad_utf8"),
        (b'{"op":"status","rid":"x","id":"1"}', "bad_type"),
        (b'{"op":"submit","rid":"x","lang":"python","code":"1","session":"../../etc"}', "bad_value"),
        (b'{"op":"submit","rid":"x","lang":"python","code":"' + b"a" * (20 * 1024 * 1024) + b'","session":"s"}',
         "too_large"),
    ]
    before = s.sql("select count(*) from requests")[0][0]
    for frame, code in cases:
        c.send_raw(frame)
        r = c.recv(10)
        check(r is not None and r["ok"] is False and r["error"]["code"] == code, (frame[:60], r))
    c.send_raw(b"two", b"frames")
    r = c.recv(5)
    check(r and r["error"]["code"] == "bad_frames", r)
    # nothing was recorded as a request, every refusal was recorded as an event
    check(s.sql("select count(*) from requests")[0][0] == before, "requests changed")
    # refusals are aggregated per connection and second: the counts add up once flushed
    deadline = time.time() + 5 * SLOW
    counted = 0
    while time.time() < deadline and counted < len(cases) + 1:
        time.sleep(0.2)
        counted = s.sql("select coalesce(sum(json_extract(data, '$.count')), 0) from events"
                        " where type = 'rejected' and actor = 'agent'")[0][0]
    check(counted >= len(cases) + 1, ("rejected events do not count every refusal", counted))
    # the broker still serves
    r = c.run("'alive'", session="after-garbage")
    check(r["value"] == "'alive'", r)
    # a worker key may not use the client protocol
    w = s.client("worker")
    r = w.call("submit", lang="python", code="1", session="s")
    check(r and r["error"]["code"] == "forbidden", r)
    w.close()
    c.close()


@test
def unknown_key_gets_nothing():
    s = shared()
    import zmq
    pub, sec = zmq.curve_keypair()
    path = os.path.join(s.dir, "stranger.cert")
    with open(path, "w") as f:
        f.write('metadata\n    name = "stranger"\n    role = "admin"\ncurve\n    public-key = "%s"\n' % pub.decode())
    with open(path + "_secret", "w") as f:
        f.write('curve\n    public-key = "%s"\n    secret-key = "%s"\n' % (pub.decode(), sec.decode()))
    time.sleep(1.2)     # earlier tests' aggregated refusals are flushed by now
    before = s.sql("select count(*) from events")[0][0]
    c = s.client(cert=path)
    check(c.call("submit", lang="python", code="1", session="x", timeout=1.5) is None, "stranger answered")
    c.close()
    check(s.sql("select count(*) from events")[0][0] == before, "stranger recorded")
    p = s.cli("ping", "--key", path)
    check(p.returncode == 7 and "the last connection: the broker refused our key" in p.stderr,
          (p.returncode, p.stderr))
    # a broker key that is not the broker's: the handshake cannot go on, and the CLI says so
    p = s.cli("ping", "--server-key", path)
    check(p.returncode == 7 and "closed the connection in the handshake" in p.stderr,
          (p.returncode, p.stderr))


@test
def worker_killed_mid_snippet_turns_lost():
    s = Stack()
    try:
        c = s.client()
        r = c.call("submit", lang="shell", code="sleep 30", session="doomed", wait_ms=300)
        check(r["state"] == "running", r)
        s.workers[0].send_signal(signal.SIGKILL)
        s.workers[0].wait()
        t0 = time.time()
        r = c.call("await", id=r["id"], timeout_ms=8000, timeout=10)
        check(r["state"] == "lost", r)
        check(time.time() - t0 < 5 * SLOW, time.time() - t0)
        p = s.cli("wait", str(r["id"]))
        check(p.returncode == 8, p.returncode)
        # a new worker picks up new work
        s.start_worker("w1")
        s.wait_workers(1)
        r = c.run("'back'", session="doomed")
        check(r["value"] == "'back'", r)
        c.close()
    finally:
        check(not s.stop(), "sanitizer report")


@test
def broker_killed_loses_no_acknowledged_request():
    s = Stack(slots=1)
    try:
        c = s.client()
        running = c.call("submit", lang="shell", code="sleep 5", session="k1", wait_ms=300)
        check(running["state"] == "running", running)
        queued = [c.call("submit", lang="python", code="%d + 1" % i, session="k2", wait_ms=0) for i in range(5)]
        check(all(q["ok"] and q["state"] == "queued" for q in queued), queued)
        c.close()
        s.kill_broker()
        s.start_broker()
        c = s.client()
        r = c.call("status", id=running["id"])
        check(r["state"] == "lost", r)
        for i, q in enumerate(queued):
            r = c.call("await", id=q["id"], timeout_ms=15000, timeout=20)
            check(r["state"] == "done" and r["value"] == str(i + 1), r)
        c.close()
        p = s.cli("verify")
        check(p.returncode == 0, p.stdout + p.stderr)
    finally:
        check(not s.stop(), "sanitizer report")


@test
def a_cli_wait_goes_on_across_a_broker_restart():
    """`replgate wait` on a queued request while the broker is killed and started again: its
    await, lost with the connection, is sent again on the new one, and the wait ends with the
    result (before: no answer within the slice and 5 s, exit 7)."""
    s = Stack(slots=1)
    try:
        c = s.client()
        running = c.call("submit", lang="shell", code="sleep 3", session="w1", wait_ms=300)
        queued = c.call("submit", lang="python", code="40 + 2", session="w2", wait_ms=0)
        check(running["state"] == "running" and queued["state"] == "queued", (running, queued))
        c.close()
        wait = subprocess.Popen([os.path.join(BIN, "replgate"), "wait", str(queued["id"]), "--dir", s.dir],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, ZSYS_SIGHANDLER="false"))
        time.sleep(0.7 * SLOW)          # its await is held by the broker now
        t0 = time.time()
        s.kill_broker()
        s.start_broker()
        out, err = wait.communicate(timeout=30 * SLOW)
        check(wait.returncode == 0 and out.strip() == "42", (wait.returncode, out, err))
        check(time.time() - t0 < 20 * SLOW, "the wait ended only after its slice")
    finally:
        check(not s.stop(), "sanitizer report")


@test
def a_cli_wait_sleeps_while_it_waits():
    """`replgate wait` on a request that stays queued (no worker) sleeps in one piece while its
    await is held: it wakes only for the broker (every 25 s slice), not to look for a new
    connection (before: ten times a second)."""
    s = Stack(workers=0)
    try:
        c = s.client()
        queued = c.call("submit", lang="python", code="1", session="w", wait_ms=0)
        c.close()
        check(queued["state"] == "queued", queued)
        wait = subprocess.Popen([os.path.join(BIN, "replgate"), "wait", str(queued["id"]), "--dir", s.dir],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, ZSYS_SIGHANDLER="false"))

        def wakeups():
            with open("/proc/%d/status" % wait.pid) as f:
                return sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        time.sleep(1.0 * SLOW)          # connected, and its await held by the broker
        before = wakeups()
        time.sleep(2.0)
        woke = wakeups() - before
        check(wait.poll() is None, "the wait ended early")
        check(woke <= 3, "woke %d times in 2 s" % woke)
        wait.kill()
        wait.communicate()
    finally:
        check(not s.stop(), "sanitizer report")


@test
def recovery_keeps_each_session_in_order():
    """Queued snippets of a session and one recorded but not yet decided when the broker died
    run in submission order after the restart (B, C, D), never the undecided one first."""
    s = Stack(workers=0)
    try:
        c = s.client()
        b = c.call("submit", lang="python", code="order = ['B']", session="o", wait_ms=0)
        cc = c.call("submit", lang="python", code="order.append('C')", session="o", wait_ms=0)
        check(b["state"] == "queued" and cc["state"] == "queued", (b, cc))
        s.sql("CREATE TRIGGER hold_decision BEFORE UPDATE OF state ON requests"
              " WHEN OLD.state = 'received' BEGIN SELECT RAISE(ABORT, 'held by the test'); END")
        d = c.call("submit", lang="python", code="order.append('D'); order", session="o", wait_ms=0)
        c.close()
        check(s.sql("select state from requests where id = ?", d["id"]) == [("received",)], d)
        s.kill_broker()
        s.sql("DROP TRIGGER hold_decision")
        s.start_broker()
        s.start_worker()
        s.wait_workers(1)
        c = s.client()
        r = c.call("await", id=d["id"], timeout_ms=15000, timeout=20)
        check(r["state"] == "done" and r["value"] == "['B', 'C', 'D']", r)
        c.close()
    finally:
        check(not s.stop(), "sanitizer report")


@test
def history_view_and_verify_detect_tampering():
    s = Stack()
    try:
        c = s.client()
        a = c.run("print('secret-output')", session="tamper")
        b = c.run("echo hi", lang="shell", session="tamper")
        c.close()
        rows = s.sql("select id, code, stdout, state from history order by id")
        check((a["id"], "print('secret-output')", "secret-output\n", "done") in rows, rows)
        out = subprocess.run(["sqlite3", s.db, "select id, stdout from history"], capture_output=True, text=True)
        check("secret-output" in out.stdout, out.stdout)
        p = s.cli("verify")
        check(p.returncode == 0 and "ok" in p.stdout, p.stdout + p.stderr)
        p = s.cli("history")
        check(p.returncode == 0 and "tamper" in p.stdout, p.stdout)
        # an attacker with the file drops the triggers first; each alteration is caught, the row named
        triggers = [t for (t,) in s.sql("select name from sqlite_master where type = 'trigger'")]
        for t in triggers:
            s.sql("drop trigger %s" % t)
        missing = sorted("TAMPERED: schema: trigger %s missing" % t for t in triggers)
        for sql, needle in [
            ("update requests set code = 'print(2)' where id = %d" % a["id"], "requests row %d" % a["id"]),
            ("update requests set stdout = 'nothing' where id = %d" % b["id"], "requests row %d" % b["id"]),
        ]:
            backup = s.sql("select id, code, stdout from requests")
            s.sql(sql)
            p = s.cli("verify")
            check(p.returncode == 1 and needle in p.stdout, (sql, p.stdout))
            for row in backup:
                s.sql("update requests set code = ?, stdout = ? where id = ?", row[1], row[2], row[0])
            p = s.cli("verify")     # the rows are back; the triggers are still gone
            check(p.returncode == 1 and sorted(p.stdout.splitlines()) == missing, ("restore failed", p.stdout))
        s.sql("update events set data = json_set(data, '$.to', 'x') where seq = 3")
        p = s.cli("verify")
        check(p.returncode == 1 and "events row 3" in p.stdout, p.stdout)
    finally:
        check(not s.stop(), "sanitizer report")


@test
def disk_full_fails_closed():
    """When the record cannot be written, nothing runs and the broker keeps serving."""
    import tempfile
    mnt = harness.scratch_dir("replgate-full-")
    check(subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt]).returncode == 0, "mount")
    s = None
    try:
        s = Stack(broker_args=["--db", os.path.join(mnt, "replgate.db")])
        c = s.client()
        check(c.run("'before'", session="full")["value"] == "'before'", "first run")
        marker = os.path.join(tempfile.gettempdir(), "replgate-ran-%d" % os.getpid())
        filler = os.path.join(mnt, "filler")
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=64k"], capture_output=True)
        refused = 0
        for i in range(20):   # pages cached by SQLite may absorb a few commits first
            r = c.call("submit", lang="python", session="full", wait_ms=5000,
                       code="open(%r, 'w').write('ran')\n'x' * 4000 + %r" % (marker, str(i)))
            check(r is not None, "broker stopped answering")
            if not r["ok"]:
                check(r["error"]["code"] == "busy", r)
                refused += 1
                if os.path.exists(marker):
                    os.unlink(marker)
        check(refused > 0, "a full disk never refused a request")
        r = c.call("submit", lang="python", session="full", wait_ms=5000,
                   code="open(%r, 'w').write('ran')" % marker)
        check(r and not r["ok"] and not os.path.exists(marker), ("ran without a record", r))
        os.unlink(filler)
        wait_for(lambda: c.call("ping")["store"]["writable"], what="the store taking writes again")
        r = c.run("'after'", session="full")
        check(r["state"] == "done" and r["value"] == "'after'", r)
        view = harness.scratch_dir("replgate-view-")     # verify reads DIR/replgate.db
        os.symlink(os.path.join(mnt, "replgate.db"), os.path.join(view, "replgate.db"))
        p = subprocess.run([os.path.join(os.environ.get("REPLGATE_BIN", "bin"), "replgate"), "verify",
                            "--dir", view], capture_output=True, text=True)
        check(p.returncode == 0, p.stdout + p.stderr)
        c.close()
    finally:
        if s:
            check(not s.stop(), "sanitizer report")
        subprocess.run(["umount", "-l", mnt])


@test
def up_stops_on_a_signal_to_itself_alone():
    """`kill -INT` to `replgate up` (not to its group, as Ctrl-C does) stops the stack: the
    wait for the children must not restart after the signal."""
    import tempfile
    d = harness.scratch_dir("replgate-up-")
    port = free_port_pair()
    p = subprocess.Popen([os.path.join(BIN, "replgate"), "up", "--dir", d, "--port", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, env=dict(os.environ, ZSYS_SIGHANDLER="false"))
    try:
        cli = [os.path.join(BIN, "replgate"), "ping", "--dir", d]
        wait_for(lambda: subprocess.run(cli, capture_output=True).returncode == 0, 15, "up answering")
        os.kill(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=10 * SLOW)
        check("replgate up: stopped" in err, err)
        check(subprocess.run(cli, capture_output=True).returncode != 0, "the broker still answers")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@test
def up_runs_several_workers_each_with_its_own_uids():
    import tempfile
    d = harness.scratch_dir("replgate-up-")
    port = free_port_pair()
    p = subprocess.Popen([os.path.join(BIN, "replgate"), "up", "--dir", d, "--port", str(port),
                          "--workers", "2", "--slots", "2", "--uid-base", "297000"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, env=dict(os.environ, ZSYS_SIGHANDLER="false"))
    try:
        cli = [os.path.join(BIN, "replgate"), "ping", "--dir", d, "--json"]

        def workers():
            r = subprocess.run(cli, capture_output=True, text=True)
            return r.returncode == 0 and json.loads(r.stdout)["stats"]["workers"] == 2
        wait_for(workers, 20, "two workers")
        args = []
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and int(open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()[1]) == p.pid:
                    args.append(open("/proc/%s/cmdline" % pid).read().split("\0"))
            except (OSError, ValueError, IndexError):
                pass
        names = sorted(a[a.index("--name") + 1] for a in args if "--name" in a)
        bases = sorted(a[a.index("--uid-base") + 1] for a in args if "--uid-base" in a)
        check(names == ["local-1", "local-2"] and bases == ["297000", "298000"], (names, bases))
        r = subprocess.run([os.path.join(BIN, "replgate"), "submit", "--dir", d, "print(6 * 7)"],
                           capture_output=True, text=True, timeout=30 * SLOW)
        check(r.returncode == 0 and r.stdout == "42\n", r)
        os.kill(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=10 * SLOW)
        check("2 workers" in err and "replgate up: stopped" in err, err)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


if __name__ == "__main__":
    try:
        rc = run_all("core")
    finally:
        if S:
            bad = S.stop()
            if bad:
                print("sanitizer reports:\n" + "\n".join(bad))
                print("core: 0 passed, 1 failed")
    raise SystemExit(rc)
