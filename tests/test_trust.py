"""tests/test_trust.py: the trust boundary between principals and between a snippet and the
record. Sessions belong to the principal that opened them; every result ends its request
whatever bytes it holds; a snippet cannot rewrite how it ended; a death between snippets is on
the record and the next snippet says its session started over."""
import base64, json, os, struct, subprocess, threading, time
import zmq
import harness
from harness import Stack, Client, FakeWorker, check, read_cert, run_all, test, SLOW

UID_BASE = 281000
S = None


def shared():
    global S
    if S is None:
        S = Stack(slots=8, worker_args=["--uid-base", str(UID_BASE)])
        for name in ("bob",):
            r = S.cli("keygen", name, "--role", "agent")
            check(r.returncode == 0, r.stderr)
    return S


def events(s, rid, kind=None):
    q = "select type, actor, data from events where request_id = ?"
    rows = s.sql(q, rid)
    return [(t, a, json.loads(d)) for t, a, d in rows if kind is None or t == kind]


@test
def sessions_belong_to_their_principal():
    s = shared()
    alice, bob, admin = s.client("agent"), s.client("bob"), s.client("admin")
    try:
        r = alice.run("secret = 'alice-only'; open('/work/alice.txt', 'w').write('a')\n"
                      "import builtins; _orig = builtins.compile", session="ops")
        check(r["outcome"] == "ok", r)
        # bob names alice's session: he gets an interpreter of his own
        r = bob.run("secret", session="ops")
        check(r["outcome"] == "error" and r["error_name"] == "NameError", r)
        r = bob.run("import os; sorted(os.listdir('/work'))", session="ops")
        check(r["value"] == "[]", r)
        # a hook bob plants in "his" ops cannot change what alice's snippets return
        r = bob.run("import builtins\nbuiltins.compile = lambda *a, **k: (_ for _ in ()).throw("
                    "RuntimeError('hijacked'))", session="ops")
        check(r["outcome"] == "ok", r)
        check(bob.run("1", session="ops")["error_value"] == "hijacked", "bob's hook is bob's")
        r = alice.run("secret + '!'", session="ops")
        check(r["outcome"] == "ok" and r["value"] == "'alice-only!'", r)
        check(r["session_cpu_ms"] >= r["cpu_ms"] > 0, r)     # stored with the result
        # an admin reads others' requests but never joins their interpreter
        r = admin.run("secret", session="ops")
        check(r["error_name"] == "NameError", r)
        r = admin.call("status", id=r["id"])
        check(r["ok"], r)
        # the record credits each principal with its own requests in its own session
        rows = s.sql("select principal, count(*) from requests where session = 'ops' group by principal")
        check(dict(rows) == {"agent": 2, "bob": 4, "admin": 1}, rows)
        # shell sessions too: same name, separate shells
        check(alice.run("X=alice; cd /tmp", lang="shell", session="sh")["outcome"] == "ok", "sh")
        r = bob.run('echo "[$X] $(pwd)"', lang="shell", session="sh")
        check(r["stdout"] == "[] /work\n", r)
    finally:
        alice.close(); bob.close(); admin.close()


@test
def binary_output_ends_its_request_and_is_kept_byte_for_byte():
    s = shared()
    c = s.client()
    try:
        r = c.run("printf 'a\\0b'; printf 'x\\377\\376y' >&2", lang="shell", session="bin", timeout=10)
        check(r["state"] == "done" and r["outcome"] == "ok", r)
        check(r["stdout"] == "a\ufffdb" and base64.b64decode(r["stdout_base64"]) == b"a\0b", r)
        check(r["stderr"] == "x\ufffd\ufffdy" and base64.b64decode(r["stderr_base64"]) == b"x\xff\xfey", r)
        rows = s.sql("select typeof(stdout), stdout, typeof(stderr), stderr from requests where id = ?", r["id"])
        check(rows == [("blob", b"a\0b", "blob", b"x\xff\xfey")], rows)
        # a pipe gets exactly what the snippet printed
        raw = subprocess.run([os.path.join(harness.BIN, "replgate"), "wait", "--dir", s.dir, str(r["id"])],
                             capture_output=True, env=dict(os.environ, ZSYS_SIGHANDLER="false"))
        check(raw.returncode == 0 and raw.stdout == b"a\0b\n" and raw.stderr.startswith(b"x\xff\xfey"), raw)
        r = c.run("echo next", lang="shell", session="bin", timeout=10)
        check(r["outcome"] == "ok" and r["stdout"] == "next\n" and "stdout_base64" not in r, r)
        r = c.run("import sys; sys.stdout.buffer.write(b'p\\0q password=hunter2 \\xff'); "
                  "raise ValueError('v\\0w')", session="bin")
        check(r["state"] == "done" and r["error_value"] == "v\ufffdw", r)
        out = base64.b64decode(r["stdout_base64"])
        check(out == b"p\0q password=[MASKED:password] \xff", out)        # masked as bytes too
        check(s.cli("verify").returncode == 0, "verify")
        # retention hashes the bytes it removes, so the chain still verifies after it
        p = s.cli("prune", "--before", "2999-01-01")
        check(p.returncode == 0, p.stderr)
        v = s.cli("verify")
        check(v.returncode == 0, v.stdout + v.stderr)
    finally:
        c.close()


@test
def every_text_field_is_capped_and_flagged():
    s = shared()
    c = s.client()
    try:
        r = c.run("raise ValueError('x' * 20_000_000)", session="big", timeout=60)
        check(r["outcome"] == "error" and r["error_name"] == "ValueError", r["outcome"])
        cap = 1 << 20
        check(len(r["error_value"].encode()) <= cap and r["error_value_truncated"] is True, "value cap")
        check(len(r["traceback"].encode()) <= cap and r["traceback_truncated"] is True, "tb cap")
        check(r["value_truncated"] is False and r["error_name_truncated"] is False, r["value_truncated"])
        r = c.run("raise type('N' * 3_000_000, (Exception,), {})()", session="big", timeout=60)
        check(len(r["error_name"]) <= cap and r["error_name_truncated"] is True, "name cap")
        rows = s.sql("select error_value_truncated, traceback_truncated from requests where id = ?", r["id"])
        check(rows == [(0, 1)] or rows[0][1] == 1, rows)
    finally:
        c.close()


@test
def large_result_does_not_cost_another_principal_its_run():
    s = shared()
    alice, bob = s.client("agent"), s.client("bob")
    try:
        slow = bob.call("submit", lang="python", session="slow", code="import time; time.sleep(4); 'fine'")
        check(slow["ok"], slow)
        for _ in range(3):
            r = alice.run("raise ValueError('y' * 6_000_000)", session="huge", timeout=60)
            check(r["state"] == "done", r["state"])
        r = bob.call("await", id=slow["id"], timeout_ms=20000, timeout=25)
        check(r["ok"] and r["state"] == "done" and r["outcome"] == "ok" and r["value"] == "'fine'", r)
    finally:
        alice.close(); bob.close()


@test
def a_fake_reply_then_death_is_recorded_as_the_death():
    s = shared()
    c = s.client()
    try:
        fake = json.dumps({"status": "ok", "execution_count": 1, "value": "'all good'", "error": None}).encode()
        code = ("import os, struct\nos.write(4, struct.pack('>I', %d) + %r)\nos.kill(os.getpid(), 9)"
                % (len(fake), fake))
        for _ in range(3):
            r = c.run(code, session="liar", timeout=15)
            check(r["outcome"] == "killed" and r["signal"] == 9 and r["session_reset"], r)
            check(r["value"] is None, r)
        r = c.run("1 + 1", session="liar")
        check(r["outcome"] == "ok" and r["value"] == "2", r)
        # a shell snippet that writes a status line for itself does not set its status
        r = c.run('for fd in 10 11 12 13; do echo "S 0" >&$fd; done 2>/dev/null; false',
                  lang="shell", session="liar-sh", timeout=15)
        check(r["outcome"] == "error" and r["exit_code"] == 1, r)
        r = c.run("echo still-here", lang="shell", session="liar-sh", timeout=15)
        check(r["stdout"] == "still-here\n", r)
    finally:
        c.close()


# A shell snippet's own descriptors above 2: a status line to each it can write, and a fence
# nonce read from each it can read echoed to the writers.
OWN = r"""w=()
for f in /proc/$$/fd/*; do n=${f##*/}; (( n > 2 )) && { printf 'S 0\n' >&$n; } 2>/dev/null && w+=($n); done
for f in /proc/$$/fd/*; do
    n=${f##*/}; (( n > 2 )) || continue
    IFS= read -r -t 2 -d '' nonce <&$n 2>/dev/null && for x in "${w[@]}"; do printf 'F %s\n' "$nonce" >&$x; done
done
echo "own: ${w[*]:-none}"
"""
# Then, from a child: looks through every descriptor of every process it can see for a
# pipe other than its own output, writes a status line to each it can open for writing, takes a
# fence nonce from each it can read and echoes it, and tries to write the memory of the shell's
# parent and of the init. Prints what it reached.
REACH = r"""
import os, select, stat
mine = {os.fstat(f).st_ino for f in (0, 1, 2)}
reached, writers, readers = [], [], []
for pid in [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:
    try:
        fds = os.listdir('/proc/%s/fd' % pid)
    except OSError:
        continue
    for fd in fds:
        path = '/proc/%s/fd/%s' % (pid, fd)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not stat.S_ISFIFO(st.st_mode) or st.st_ino in mine:
            continue
        for flags, into in ((os.O_WRONLY, writers), (os.O_RDONLY, readers)):
            try:
                into.append(os.open(path, flags | os.O_NONBLOCK))
                reached.append(path)
            except OSError:
                pass
for w in writers:
    try: os.write(w, b'S 0\n')
    except OSError: pass
for r in readers:
    if select.select([r], [], [], 1.0)[0]:
        try: nonce = os.read(r, 64).split(b'\0')[0]
        except OSError: continue
        for w in writers:
            try: os.write(w, b'F ' + nonce + b'\n')
            except OSError: pass
shell = os.getppid()
host = open('/proc/%d/stat' % shell).read().rsplit(')', 1)[1].split()[1]
for target in ('/proc/1/mem', '/proc/%s/mem' % host):
    try:
        os.close(os.open(target, os.O_RDWR))
        reached.append(target)
    except OSError:
        pass
print('reached:', ' '.join(sorted(set(reached))) or 'nothing')
"""


@test
def a_shell_snippet_reaches_no_protocol_descriptor():
    """Each snippet is a bash of its own: the worker's pipes stay with the shell host, which
    no process of the session may open, read or write (it is not dumpable)."""
    s = shared()
    c = s.client()
    try:
        r = c.run(OWN + "python3 - <<'EOF'\n%s\nEOF\nls /proc/self/fd | tr '\\n' ' '; false" % REACH,
                  lang="shell", session="reach", timeout=30)
        check(r["exit_code"] == 1 and r["outcome"] == "error", r)
        check(r["stdout"].startswith("own: none\nreached: nothing\n0 1 2 3 "), r)
        r = c.run("echo still-here", lang="shell", session="reach", timeout=15)
        check(r["stdout"] == "still-here\n" and not r["session_reset"], r)
    finally:
        c.close()


@test
def a_shell_snippet_that_kills_the_next_bash_loses_nothing():
    """The bash that waits for a session's next snippet is a process of the session: one the
    session's own background job kills is replaced, with the session's state."""
    s = shared()
    c = s.client()
    try:
        # Once this snippet's bash is gone, the job kills the one waiting for the next.
        r = c.run("x=5; me=$BASHPID; (self=$BASHPID; while kill -0 $me 2>/dev/null; do sleep 0.02; done\n"
                  "for try in $(seq 100); do for p in /proc/[0-9]*; do p=${p#/proc/}\n"
                  "  [ \"$p\" = \"$self\" ] && continue\n"
                  "  grep -qa replgate-shell /proc/$p/cmdline 2>/dev/null && [ \"$(cat /proc/$p/comm)\" = bash ] \\\n"
                  "    && kill -9 $p && echo $p >> /tmp/killed\n"
                  "done; [ -s /tmp/killed ] && break; sleep 0.02; done) >/dev/null 2>&1 &", lang="shell",
                  session="next", timeout=15)
        check(r["outcome"] == "ok", r)
        time.sleep(3 * SLOW)
        r = c.run("cat /tmp/killed | wc -l; echo x=$x", lang="shell", session="next", timeout=15)
        check(r["stdout"] == "1\nx=5\n" and r["outcome"] == "ok" and not r["session_reset"], r)
    finally:
        c.close()


@test
def death_between_snippets_is_an_event_and_resets():
    s = shared()
    c = s.client()
    try:
        r = c.run("import os, threading\nx = 5\n"
                  "threading.Timer(0.3, lambda: os.kill(os.getpid(), 9)).start()", session="dies")
        check(r["outcome"] == "ok", r)
        deadline = time.time() + 10 * SLOW
        ended = []
        while time.time() < deadline and not ended:
            ended = s.sql("select actor, data from events where type = 'session_ended'"
                          " and json_extract(data, '$.session') = 'dies'")
            time.sleep(0.1)
        check(ended, "no session_ended event")
        data = json.loads(ended[0][1])
        check(data["principal"] == "agent" and data["signal"] == 9, data)
        r = c.run("x", session="dies")
        check(r["error_name"] == "NameError" and r["session_reset"] is True, r)
        check("signal 9" in (r["reset_reason"] or ""), r)
        r = c.run("x = 1; x", session="dies")
        check(r["session_reset"] is False and r["reset_reason"] is None, r)
        check(s.cli("verify").returncode == 0, "verify")
    finally:
        c.close()


@test
def eviction_is_never_silent():
    s = Stack(slots=2, worker_args=["--uid-base", str(UID_BASE + 100)])
    c = s.client()
    try:
        for name in ("e1", "e2", "e3"):
            check(c.run("v = %r" % name, session=name)["outcome"] == "ok", name)
        r = c.run("v", session="e1")
        check(r["error_name"] == "NameError" and r["session_reset"] is True, r)
        check("evicted" in r["reset_reason"], r)
        ev = s.sql("select count(*) from events where type = 'evicted'"
                   " and json_extract(data, '$.reason') like '%evicted%'")
        check(ev[0][0] >= 1, ev)
    finally:
        c.close()
        check(not s.stop(), "sanitizer")


@test
def refused_results_still_end_their_request():
    s = Stack(workers=0)
    fw = FakeWorker(s, "fake")
    s.wait_workers(1)
    c = s.client()
    try:
        head = '{"op":"result","id":%d'
        bad = [
            lambda i: (head % i + ',"session":').encode(),                                # not JSON
            lambda i: (head % i + ',"session":"s","lang":"python","outcome":"great"}').encode(),  # bad value
            lambda i: (head % i + ',"session":"s","lang":"python","outcome":"ok","stdout":7}').encode(),
            lambda i: (head % i + ',"session":"s","lang":"python","outcome":"ok","stdout":"').encode()
            + b"z" * (48 * 1024 * 1024) + b'"}',                                          # over the cap
        ]
        for make in bad:
            sub = c.call("submit", lang="python", session="s", code="1")
            check(sub["ok"], sub)
            run = fw.next("run")
            check(run and run["id"] == sub["id"] and run["owner"] == "agent", run)
            fw.send(make(run["id"]))
            close = fw.next("close")
            check(close and close["session"] == "s" and close["owner"] == "agent", close)
            r = c.call("await", id=sub["id"], timeout_ms=10000, timeout=15)
            check(r["state"] == "done" and r["outcome"] == "error"
                  and r["error_name"] == "ResultRefused" and r["session_reset"], r)
        # a result from a worker that is not running the request changes nothing
        sub = c.call("submit", lang="python", session="s", code="2")
        run = fw.next("run")
        other = FakeWorker(s, "other")
        time.sleep(0.3)
        other.send({"op": "result", "id": run["id"], "session": "s", "lang": "python", "outcome": "ok",
                    "owner": "agent", "stdout": "forged"})
        time.sleep(0.3)
        check(c.call("status", id=sub["id"])["state"] == "running", "other worker ended it")
        fw.send({"op": "result", "id": run["id"], "session": "s", "lang": "python", "outcome": "ok",
                 "owner": "agent", "stdout": "real"})
        r = c.call("await", id=sub["id"], timeout_ms=10000, timeout=15)
        check(r["state"] == "done" and r["stdout"] == "real", r)
        other.close()
        check(s.broker.poll() is None, "broker died")
        check(s.cli("verify").returncode == 0, "verify")
    finally:
        c.close()
        fw.close()
        check(not s.stop(), "sanitizer")


@test
def a_worker_that_never_answers_does_not_strand_the_run():
    s = Stack(workers=0, broker_args=["--timeout-ms", "500"])
    fw = FakeWorker(s, "mute")
    s.wait_workers(1)
    c = s.client()
    try:
        sub = c.call("submit", lang="python", session="m", code="1")
        run = fw.next("run")
        check(run and run["limits"]["timeout_ms"] == 500, run)
        t0 = time.time()
        close = fw.next("close", timeout=10)          # heartbeats keep it alive meanwhile
        check(close and close["session"] == "m", close)
        r = c.call("await", id=sub["id"], timeout_ms=5000, timeout=10)
        check(r["state"] == "done" and r["outcome"] == "timeout"
              and r["error_name"] == "WorkerTimeout" and r["session_reset"], r)
        check(2.0 <= time.time() - t0 + 0.5 <= 6 * SLOW, time.time() - t0)
        check(c.call("ping")["stats"]["running"] == 0, "slot still taken")
        # its late answer changes nothing
        fw.send({"op": "result", "id": run["id"], "session": "m", "lang": "python", "owner": "agent",
                 "outcome": "ok", "stdout": "late"})
        time.sleep(0.3)
        check(c.call("status", id=sub["id"])["outcome"] == "timeout", "late result recorded")
        check(s.cli("verify").returncode == 0, "verify")
    finally:
        c.close()
        fw.close()
        check(not s.stop(), "sanitizer")


@test
def probing_leaves_a_trace():
    s = shared()
    alice = s.client("agent")
    try:
        own = alice.run("1", session="p")
    finally:
        alice.close()
    before = s.sql("select coalesce(max(seq), 0) from events")[0][0]
    probes = [("bob", "status", {"id": own["id"]}, "not_found"),
              ("bob", "approve", {"id": own["id"]}, "forbidden"),
              ("agent", "cancel", {"id": own["id"]}, "bad_state")]
    for who, op, fields, code in probes:
        c = s.client(who)
        r = c.call(op, **fields)
        check(r and not r["ok"] and r["error"]["code"] == code, (op, r))
        c.close()
    time.sleep(1.3)     # aggregated per connection and second
    rows = s.sql("select actor, json_extract(data, '$.code'), json_extract(data, '$.count') from events"
                 " where type = 'rejected' and seq > ?", before)
    for who, op, fields, code in probes:
        check(any(a == who and c == code for a, c, n in rows), (who, code, rows))


@test
def pending_comes_a_page_at_a_time():
    s = Stack(workers=0, policy={"version": 1, "rules": [{"name": "all", "action": "review"}]})
    c, admin = s.client(), s.client("admin")
    try:
        ids = [c.call("submit", lang="python", session="pg%d" % (i % 3), code="%d" % i, wait_ms=0)["id"]
               for i in range(250)]
        r = admin.call("pending")
        check(len(r["requests"]) == 100 and r["more"] is True and r["after"] == ids[99], (len(r["requests"]), r["more"]))
        r = admin.call("pending", limit=500, after=ids[99])
        check([q["id"] for q in r["requests"]] == ids[100:] and r["more"] is False, r["more"])
        r = admin.call("pending", limit=10, after=0, session="pg1")
        check(len(r["requests"]) == 10 and all(q["session"] == "pg1" for q in r["requests"]), r["after"])
        check(admin.call("pending", limit=501)["error"]["code"] == "bad_value", "limit bound")
        # the command line pages through all of them
        p = s.cli("pending", "--json")
        check(p.returncode == 0 and len(p.stdout.splitlines()) == 250, (p.returncode, len(p.stdout.splitlines())))
    finally:
        c.close()
        admin.close()
        check(not s.stop(), "sanitizer")


@test
def a_second_worker_cannot_take_a_live_workers_name():
    s = Stack(slots=2, worker_args=["--uid-base", str(UID_BASE + 200)])
    c = s.client()
    try:
        check(c.run("kept = 7", session="keep")["outcome"] == "ok", "first run")
        impostor = s.start_worker("w0", extra=["--uid-base", str(UID_BASE + 300)])
        time.sleep(2.5)
        check(impostor.poll() is None, "impostor exited")
        r = c.run("kept", session="keep")
        check(r["value"] == "7" and r["session_reset"] is False, r)
        check(c.call("ping")["stats"]["workers"] == 1, "two workers")
        lost = s.sql("select count(*) from events where type = 'worker_lost'")[0][0]
        check(lost == 0, "the live worker was evicted")
        # once the first one is gone, the second takes the name within a few seconds
        s.workers[0].kill()
        s.workers[0].wait()
        deadline = time.time() + 15 * SLOW
        while time.time() < deadline and s.sql("select count(*) from events where type = 'worker_joined'")[0][0] < 2:
            time.sleep(0.2)
        check(s.sql("select count(*) from events where type = 'worker_lost'")[0][0] == 1, "first not lost")
        r = c.run("kept", session="keep", timeout=20)
        check(r["state"] == "done" and r["error_name"] == "NameError" and r["session_reset"], r)
    finally:
        c.close()
        check(not s.stop(), "sanitizer")


@test
def the_64_mib_boundary_is_exact():
    s = shared()
    c = s.client()
    try:
        c.send_raw(b" " * (64 * 1024 * 1024))
        r = c.recv(30)
        check(r is not None and r["error"]["code"] == "too_large", r)
        c.send_raw(b" " * (64 * 1024 * 1024 + 1))      # over it: the connection is dropped
        check(c.recv(3) is None, "answered past the limit")
    finally:
        c.close()
    c = s.client()
    try:
        check(c.call("ping")["ok"], "broker still serves")
    finally:
        c.close()


@test
def a_client_that_stops_reading_loses_no_acknowledgment():
    s = Stack(workers=0)
    cert, server = read_cert(s.key("agent")), read_cert(os.path.join(s.dir, "keys", "broker.cert"))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 50)
    sock.setsockopt(zmq.RCVBUF, 4096)
    sock.curve_secretkey, sock.curve_publickey = cert["secret"].encode(), cert["public"].encode()
    sock.curve_serverkey = server["public"].encode()
    sock.connect(s.clients_ep)
    try:
        n = 5000
        for i in range(n):
            sock.send(json.dumps({"op": "submit", "rid": i, "lang": "python", "session": "pl",
                                  "code": "x = %d" % i}).encode())
        time.sleep(2 * SLOW)                        # not reading: its pipe fills up
        acked, busy = set(), 0
        while sock.poll(2000 * SLOW):
            r = json.loads(sock.recv())
            if r["ok"]:
                acked.add(r["id"])
            else:
                check(r["error"]["code"] == "busy", r)
                busy += 1
        recorded = {i for (i,) in s.sql("select id from requests where principal = 'agent'")}
        check(len(acked) + busy == n, ("replies missing", len(acked), busy))
        check(recorded == acked, ("recorded but not acknowledged", len(recorded - acked)))
        check(busy > 0, "the backlog was never reached: the test proves nothing")
        c = s.client()
        check(c.call("ping")["ok"], "broker still serves")
        c.close()
    finally:
        sock.close()
        check(not s.stop(), "sanitizer")


if __name__ == "__main__":
    try:
        rc = run_all("trust")
    finally:
        if S:
            S.stop()
    raise SystemExit(rc)
