"""tests/test_pyclient.py: the Python client (client/python/replgate.py) against the real stack,
and against a fake broker that answers what a real one would not (pushed frames between
replies, stale rids, garbage, unknown error codes, silence). Tests of issue 14's broker ops
(interrupt, sessions, reset, close, stream, timeout_ms) skip while the broker refuses them."""
import base64, json, os, shutil, subprocess, sys, tempfile, threading, time
import zmq
from harness import BIN, SLOW, Skip, Stack, check, run_all, test, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.join(HERE, "..", "client", "python")
sys.path.insert(0, CLIENT_DIR)
import replgate  # noqa: E402

POLICY = {"version": 1, "defaults": {"quorum": 1, "ttl_s": 600}, "rules": [
    {"name": "no-evil", "match": {"code": "EVIL"}, "action": "deny", "message": "no evil here"},
    {"name": "net", "match": {"code": "socket"}, "action": "review"},
    {"name": "rest", "action": "allow"},
]}


def stack():
    s = Stack(policy=POLICY)
    p = s.cli("keygen", "alice", "--role", "approver")
    check(p.returncode == 0, p.stderr)
    return s


def done(s, *gates):
    for g in gates:
        g.close()
    check(not s.stop(), "sanitizer report")


def gate(s, name="agent", **kw):
    return replgate.Gate(dir=s.dir, key=s.key(name), **kw)


def parked_id(s, code):
    rows = wait_for(lambda: s.sql("SELECT id FROM requests WHERE state = 'pending_approval' AND code = ?", code),
                    what="a parked request")
    return rows[0][0]


def raises(cls, fn):
    """fn() must raise cls (a subclass passes; another exception fails the test): returns it."""
    try:
        fn()
    except cls as e:
        return e
    raise AssertionError("no %s" % cls.__name__)


def needs(fn, what):
    """Calls fn; a broker without issue 14's `what` (op or submit field) makes the test skip."""
    try:
        return fn()
    except (replgate.UnknownOp, replgate.UnknownKey) as e:
        if e.code == "unknown_op" or what in e.message:
            raise Skip("the broker has no %s yet (%s)" % (what, e.message))
        raise


@test
def runs_python_and_shell_and_keeps_state():
    s = stack()
    g = gate(s)
    try:
        check(g.ping()["principal"] == "agent", "the agent key")
        r = g.run("x = 20")
        check(isinstance(r, replgate.Request) and r.ok and r.state == "done" and r.value is None, r.row)
        r = g.run("print('hi'); x * 2 + 2")
        check(r.value == "42" and r.stdout == "hi\n" and r.execution_count == 2, r.row)
        check(r.wall_ms is not None and r.error is None and not r.session_reset, r.row)
        r = g.run("x", session="other")
        check(not r.ok and r.error.name == "NameError", "sessions never share state")
        r = g.run("cd /tmp; N=3; hello() { echo \"hi $1\"; }", lang="shell", session="ops")
        check(r.ok, r.row)
        r = g.run("pwd; hello $N; echo oops >&2", lang="shell", session="ops")
        check(r.stdout == "/tmp\nhi 3\n" and r.stderr == "oops\n" and r.lang == "shell", r.row)
        r = g.run("exit 3", lang="shell", session="ops")
        check(r.state == "done" and not r.ok and r.exit_code == 3, r.row)
        # a run longer than one long poll slice is waited for in slices
        r = g.run("import time; time.sleep(%.1f); 'late'" % (replgate.SLICE_S + 0.5))
        check(r.value == "'late'", r.row)
    finally:
        done(s, g)


@test
def a_failing_snippet_is_a_result_with_its_traceback():
    s = stack()
    g = gate(s)
    try:
        r = g.run("def f():\n    return 1 / 0\nf()")
        check(r.state == "done" and r.outcome == "error" and not r.ok, r.row)
        check(r.error.name == "ZeroDivisionError" and r.error.value == "division by zero", r.error)
        check("line 2, in f" in r.error.traceback, r.error.traceback)
        r = g.run("exit 7", lang="shell")
        check(r.outcome == "error" and r.exit_code == 7, r.row)
    finally:
        done(s, g)


@test
def a_denied_snippet_raises_denied_with_the_rule_message():
    s = stack()
    g = gate(s)
    try:
        e = raises(replgate.Denied, lambda: g.run("print('EVIL')"))
        check(e.reason == "no evil here" and e.rule == "no-evil" and e.code == "denied", vars(e))
        check(e.request.state == "denied" and e.denied_by is None, e.request.row)
        check("no evil here" in str(e) and isinstance(e, replgate.NotDone), str(e))
        # submit and result report it without raising
        r = g.submit("'EVIL again'")
        check(r.state == "denied" and r.terminal and not r.ok and r.decision_message == "no evil here", r.row)
        check(g.result(r.id).state == "denied", "status")
        check(raises(replgate.Denied, lambda: g.wait(r.id)).request.id == r.id, "wait raises too")
        check(s.sql("SELECT count(*) FROM requests WHERE stdout IS NOT NULL AND code LIKE '%EVIL%'")[0][0] == 0,
              "nothing ran")
    finally:
        done(s, g)


@test
def run_waits_while_an_approver_approves_through_the_cli():
    s = stack()
    g = gate(s)
    try:
        code = "import socket; 'approved'"
        out = {}

        def approve():
            rid = parked_id(s, code)
            out["cli"] = s.cli("approve", str(rid), "--reason", "checked", "--key", s.key("alice"))
        t = threading.Thread(target=approve)
        t.start()
        r = g.run(code, wait=30, reason="need a socket")
        t.join()
        check(out["cli"].returncode == 0, out["cli"].stderr)
        check(r.ok and r.value == "'approved'", r.row)
        check([a["approver"] for a in r.approvals] == ["alice"] and r.approvals[0]["reason"] == "checked",
              r.approvals)
        check(r.row["reason"] == "need a socket", r.row)
    finally:
        done(s, g)


@test
def wait_ends_with_still_pending_then_a_human_deny_raises_denied():
    s = stack()
    g = gate(s)
    try:
        req = g.submit("import socket  # parked")
        check(req.state == "pending_approval" and not req.terminal, req.row)
        t0 = time.time()
        e = raises(replgate.StillPending, lambda: g.wait(req.id, timeout=0.3))
        check(time.time() - t0 < 2 * SLOW, "the wait's timeout holds: %.1f s" % (time.time() - t0))
        check(e.state == "pending_approval" and e.approvals == [] and e.quorum == 1, vars(e))
        expires = s.sql("SELECT json_extract(review, '$.expires_at') FROM requests WHERE id = ?", req.id)[0][0]
        check(e.expires_at == expires and e.request.id == req.id, (e.expires_at, expires))
        e = raises(replgate.StillPending, lambda: g.run("import socket  # parked too", wait=0))
        check(e.request.state == "pending_approval", e.request.row)
        p = s.cli("deny", str(req.id), "--reason", "no network here", "--key", s.key("alice"))
        check(p.returncode == 0, p.stderr)
        e = raises(replgate.Denied, lambda: g.wait(req.id, timeout=10))
        check(e.reason == "no network here" and e.denied_by == "alice", vars(e))
    finally:
        done(s, g)


@test
def cancel_a_parked_request():
    s = stack()
    g = gate(s)
    try:
        req = g.submit("import socket  # to cancel")
        r = g.cancel(req.id)
        check(r.state == "cancelled", r.row)
        e = raises(replgate.Cancelled, lambda: g.wait(req.id, timeout=5))
        check(e.code == "cancelled" and e.request.id == req.id, vars(e))
        e = raises(replgate.BadState, lambda: g.cancel(req.id))
        check(e.code == "bad_state" and e.reply["ok"] is False, e.reply)
        raises(replgate.NotFound, lambda: g.cancel(10 ** 9))
    finally:
        done(s, g)


@test
def idempotency_key_returns_the_first_request_and_conflicts_on_other_code():
    s = stack()
    g = gate(s)
    try:
        a = g.run("n = 1; n", key="job-1")
        b = g.run("n = 1; n", key="job-1")
        check(a.id == b.id and b.duplicate and not a.duplicate and b.value == "1", (a.row, b.row))
        check(s.sql("SELECT count(*) FROM requests WHERE idem_key = 'job-1'")[0][0] == 1, "one request")
        e = raises(replgate.Conflict, lambda: g.run("n = 2; n", key="job-1"))
        check(e.code == "conflict" and "key" in e.message, e.message)
        check(g.run("n").value == "1", "the conflicting snippet did not run")
    finally:
        done(s, g)


@test
def certs_are_read_from_czmq_files_and_bad_ones_are_refused():
    s = stack()
    g = None
    try:
        agent = replgate.load_cert(s.key("agent"))
        import zmq.auth
        public, secret = zmq.auth.load_certificate(s.key("agent") + "_secret")
        check(agent.public.encode() == public and agent.secret.encode() == secret, "as zmq.auth reads it")
        check(agent.metadata == {"name": "agent", "role": "agent"}, agent.metadata)
        check(replgate.load_cert(s.key("agent") + "_secret") == agent, "the _secret path works too")
        tmp = tempfile.mkdtemp()
        shutil.copy(os.path.join(s.dir, "keys", "broker.cert"), tmp)    # as a remote agent gets it
        broker = replgate.load_cert(os.path.join(tmp, "broker.cert"))
        check(broker.secret is None and broker.metadata["role"] == "broker", broker)
        # defaults like the CLI: REPLGATE_DIR, DIR/endpoint, agent.cert, broker.cert
        old = os.environ.get("REPLGATE_DIR")
        os.environ["REPLGATE_DIR"] = s.dir
        try:
            g = replgate.Gate()
        finally:
            os.environ.pop("REPLGATE_DIR") if old is None else os.environ.__setitem__("REPLGATE_DIR", old)
        check(g.endpoint == s.clients_ep and g.ping()["principal"] == "agent", g.endpoint)
        check(replgate.Gate(dir=s.dir, key=replgate.load_cert(s.key("admin"))).ping()["role"] == "admin",
              "a Cert object as key")
        bad = {
            "tab.cert": 'curve\n\tpublic-key = "%s"\n' % agent.public,
            "short.cert": 'curve\n    public-key = "abc"\n',
            "deep.cert": 'curve\n        public-key = "%s"\n' % agent.public,
            "nokey.cert": 'metadata\n    name = "x"\n',
            "junk.cert": '\x00\x01 = = =\n',
        }
        for name, text in bad.items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
            e = raises(replgate.ConfigError, lambda: replgate.load_cert(os.path.join(tmp, name)))
            check(name in str(e), str(e))
        for kw in ({"key": os.path.join(tmp, "missing.cert")},
                   {"key": os.path.join(tmp, "broker.cert")},      # no secret half
                   {"server_key": os.path.join(tmp, "short.cert")}):
            raises(replgate.ConfigError, lambda: replgate.Gate(dir=s.dir, **kw))
        # ZPL as the spec allows it: comments, single quotes, bare values, blank lines
        with open(os.path.join(tmp, "hand.cert"), "w") as f:
            f.write("# by hand\n\nmetadata\n    name = 'h'   # a comment\n    role = agent\ncurve\n"
                    "    public-key = \"%s\"\n" % agent.public)
        hand = replgate.load_cert(os.path.join(tmp, "hand.cert"))
        check(hand.metadata == {"name": "h", "role": "agent"} and hand.public == agent.public, hand)
        shutil.rmtree(tmp)
    finally:
        done(s, *([g] if g else []))


@test
def no_answer_raises_timeout_quickly_and_the_gate_recovers():
    s = stack()
    try:
        wrong = replgate.Gate(dir=s.dir, server_key=s.key("agent"), timeout=1.0)   # not the broker's key
        public, secret = zmq.curve_keypair()
        stranger = replgate.Gate(dir=s.dir, key=replgate.Cert(public.decode(), secret.decode()), timeout=1.0)
        for g, what in ((wrong, "wrong server key"), (stranger, "untrusted key")):
            for call in (g.ping, lambda: g.run("1")):
                t0 = time.time()
                e = raises(replgate.Timeout, call)
                took = time.time() - t0
                check(isinstance(e, TimeoutError) and e.code == "no_answer", e)
                check(took < (replgate.SLICE_S + 2) * SLOW, "%s: %.1f s" % (what, took))
            g.close()
        check(s.sql("SELECT count(*) FROM requests")[0][0] == 0, "nothing was recorded")
    finally:
        done(s)


@test
def binary_output_is_exact_in_bytes():
    s = stack()
    g = gate(s)
    try:
        r = g.run("import sys; sys.stdout.buffer.write(b'\\xff\\x00a'); sys.stdout.flush()")
        check(r.stdout_bytes == b"\xff\x00a" and "\ufffd" in r.stdout and "stdout_base64" in r.row, r.row)
        r = g.run("printf 'caf\\xc3\\xa9 \\x80' >&2; printf 'ok'", lang="shell")
        check(r.stderr_bytes == b"caf\xc3\xa9 \x80" and r.stdout_bytes == b"ok", r.row)
    finally:
        done(s, g)


@test
def error_codes_map_to_classes():
    for code, cls in replgate.ERRORS.items():
        e = replgate.error_from_reply({"rid": 1, "ok": False, "error": {"code": code, "message": "m"}})
        check(type(e) is cls and e.code == code and isinstance(e, replgate.ReplgateError), (code, e))
    stable = ("bad_json not_object bad_utf8 too_large bad_frames unknown_op unknown_key missing_field "
              "bad_type bad_value forbidden not_found bad_state duplicate too_many busy internal conflict")
    check(sorted(replgate.ERRORS) == sorted(stable.split()), sorted(replgate.ERRORS))
    e = replgate.error_from_reply({"ok": False, "error": {"code": "brand_new", "message": "later"}})
    check(type(e) is replgate.ReplgateError and e.code == "brand_new" and "later" in str(e), e)
    for hostile in ({"ok": False}, {"ok": False, "error": "text"}, {"ok": False, "error": {"code": 7}}):
        e = replgate.error_from_reply(hostile)
        check(isinstance(e, replgate.ReplgateError), hostile)
    check(replgate.Busy.retry_after > 0, "a retry hint")
    s = stack()
    g = gate(s)
    try:
        for call, cls in ((lambda: g.result(10 ** 9), replgate.NotFound),
                          (lambda: g.call("pending"), replgate.Forbidden),
                          (lambda: g.call("no_such_op"), replgate.UnknownOp),
                          (lambda: g.run("1", lang="cobol"), replgate.BadValue),
                          (lambda: g.call("submit", lang="python", code="1", session="s", bogus=1),
                           replgate.UnknownKey)):
            e = raises(replgate.ReplgateError, call)
            check(type(e) is cls, (cls, type(e), e))
        check(g.ping()["ok"], "the connection still works")
    finally:
        done(s, g)


class FakeBroker:
    """A CURVE ROUTER on loopback answering each request with `script(msg)`: a list of frames
    (dicts or bytes) to send back, in order, None for silence."""

    def __init__(self, script):
        self.public, secret = zmq.curve_keypair()
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.curve_server = True
        self.sock.curve_secretkey = secret
        self.sock.linger = 0
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = "tcp://127.0.0.1:%d" % port
        self.script, self.seen, self.stop = script, [], False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            if not self.sock.poll(50):
                continue
            ident, body = self.sock.recv_multipart()
            msg = json.loads(body)
            self.seen.append((ident, msg))
            for frame in self.script(msg) or []:
                self.sock.send_multipart([ident, frame if isinstance(frame, bytes) else json.dumps(frame).encode()])

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()
        self.ctx.term()


@test
def pushed_frames_garbage_and_stale_replies_are_never_taken_for_replies():
    def script(msg):
        rid = msg["rid"]
        if msg["op"] == "ping":
            return [{"rid": rid, "ok": False, "error": {"code": "brand_new", "message": "not yet"}}]
        if msg["op"] == "status":
            return None                                          # silence
        if msg["op"] == "submit" and msg.get("stream"):
            split = "wörld\n".encode()
            return [
                {"op": "output", "id": 7, "stream": "stdout", "seq": 0, "data": "héllo "},
                {"op": "output", "id": 7, "stream": "stdout", "seq": 1,
                 "data_base64": base64.b64encode(split[:2]).decode()},     # ö cut in two
                {"op": "event", "rid": rid, "seq": 3, "type": "started"},  # pushed, even with our rid
                {"rid": rid + 1000, "ok": True, "id": 666, "state": "done"},    # a stale reply
                b"\xff not json", b"[1, 2]", b"\"text\"",
                {"op": "output", "id": 7, "stream": "stderr", "seq": 2, "data": "warn\n"},
                {"op": "output", "id": 7, "stream": "stdout", "seq": 3,
                 "data_base64": base64.b64encode(split[2:]).decode()},
                {"op": "output", "id": 8, "stream": "stdout", "seq": 0, "data": "someone else's"},
                {"rid": rid, "ok": True, "id": 7, "state": "done", "outcome": "ok",
                 "stdout": "héllo wörld\n", "stderr": "warn\n", "duplicate": False},
            ]
        if msg["op"] == "interrupt":
            return [{"rid": rid, "ok": True, "id": 9, "state": "running"}]
        return [{"rid": rid, "ok": True, "id": 9, "state": "done", "outcome": "ok"}]
    fake = FakeBroker(script)
    tmp = tempfile.mkdtemp()
    try:
        public, secret = zmq.curve_keypair()
        for name, text in (("me.cert", 'metadata\n    name = "me"\ncurve\n    public-key = "%s"\n' % public.decode()),
                           ("me.cert_secret", 'curve\n    public-key = "%s"\n    secret-key = "%s"\n'
                            % (public.decode(), secret.decode())),
                           ("fake.cert", 'curve\n    public-key = "%s"\n' % fake.public.decode())):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        g = replgate.Gate(key=os.path.join(tmp, "me.cert"), server_key=os.path.join(tmp, "fake.cert"),
                          broker=fake.endpoint, timeout=1.0)
        got = []
        r = g.run("print('hello')", on_output=lambda stream, text: got.append((stream, text)))
        check(r.id == 7 and r.ok and r.stdout == "héllo wörld\n", r.row)
        text = {k: "".join(t for s_, t in got if s_ == k) for k in ("stdout", "stderr")}
        check(text == {"stdout": "héllo wörld\n", "stderr": "warn\n"}, got)
        check(fake.seen[-1][1]["stream"] is True and "timeout_ms" not in fake.seen[-1][1], fake.seen[-1])
        r = g.run("1", timeout=2.5)
        check("stream" not in fake.seen[-1][1] and fake.seen[-1][1]["timeout_ms"] == 2500, fake.seen[-1])
        e = raises(replgate.ReplgateError, g.ping)
        check(type(e) is replgate.ReplgateError and e.code == "brand_new", e)
        first = fake.seen[-1][0]
        raises(replgate.Timeout, lambda: g.result(1))
        check(g.interrupt(9).state == "running", "a new connection after the timeout")
        check(fake.seen[-1][0] != first, "the timed-out connection was dropped")
        g.close()
    finally:
        fake.close()
        shutil.rmtree(tmp)


@test
def threads_share_a_gate_with_a_connection_each():
    s = stack()
    g = gate(s)
    try:
        out, errors = {}, []

        def work(n):
            try:
                out[n] = [g.run("v = %d; v * 2" % n, session="t%d" % n).value for _ in range(20)]
            except Exception as e:   # reported below
                errors.append(e)
        threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30 * SLOW)
        check(not any(t.is_alive() for t in threads) and not errors, ("threads stuck or failed", errors))
        check(out == {n: [str(n * 2)] * 20 for n in range(4)}, out)
        check(len(g._conns) == 4, "one connection per thread")
    finally:
        done(s, g)


@test
def installs_offline_with_pip_and_imports_from_there():
    s = stack()
    work = tempfile.mkdtemp()
    try:
        src = os.path.join(work, "src")
        shutil.copytree(CLIENT_DIR, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        target = os.path.join(work, "site")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                            "--no-deps", "--target", target, src], capture_output=True, text=True, env=env,
                           timeout=120 * SLOW)
        check(p.returncode == 0, p.stdout + p.stderr)
        check(os.path.exists(os.path.join(target, "replgate.py")), os.listdir(target))
        probe = ("import replgate, sys; assert replgate.__file__.startswith(sys.argv[1]), replgate.__file__; "
                 "print(replgate.Gate(dir=sys.argv[2]).run('6 * 7').value)")
        p = subprocess.run([sys.executable, "-c", probe, target, s.dir], capture_output=True, text=True,
                           env=dict(env, PYTHONPATH=target), cwd=work, timeout=60 * SLOW)
        check(p.returncode == 0 and p.stdout.strip() == "42", p.stdout + p.stderr)
    finally:
        shutil.rmtree(work)
        done(s)


@test
def the_readme_example_runs():
    text = open(os.path.join(HERE, "..", "README.md")).read()
    section = text[text.index("## Python client"):]
    code = section[section.index("```python\n") + 10:section.index("```\n", section.index("```python"))]
    check(len(code.strip().splitlines()) <= 10, "a ten-line example")
    s = Stack(policy=POLICY)
    try:
        code = code.replace('dir="var"', "dir=%r" % s.dir).replace("wait=60", "wait=0.5")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60 * SLOW,
                           env=dict(os.environ, PYTHONPATH=CLIENT_DIR))
        check(p.returncode == 0, p.stderr)
        check(p.stdout.startswith("True 'hi\\n' 42\nZeroDivisionError\nparked: [] 20"), p.stdout)
    finally:
        done(s)


# Issue 14's broker ops: these skip while the broker answers unknown_op / unknown_key.

@test
def interrupt_ends_a_run_and_keeps_the_session():
    s = stack()
    g = gate(s)
    try:
        g.run("kept = 5")
        req = g.submit("import time\nfor i in range(300): time.sleep(0.1)")
        wait_for(lambda: g.result(req.id).state == "running", what="the run to start")
        r = needs(lambda: g.interrupt(req.id), "interrupt")
        check(r.id == req.id and r.state == "running", r.row)
        r = g.wait(req.id, timeout=10)
        check(r.state == "done" and r.outcome == "interrupted" and not r.ok, r.row)
        check(g.run("kept").value == "5", "the session kept its state")
        for bad_id, cls in ((req.id, replgate.BadState), (10 ** 9, replgate.NotFound),
                            (g.submit("import socket # parked").id, replgate.BadState)):
            raises(cls, lambda: g.interrupt(bad_id))
    finally:
        done(s, g)


@test
def sessions_lists_the_callers_interpreters():
    s = stack()
    g, admin = gate(s), gate(s, "admin")
    try:
        g.run("a = 1", session="one")
        g.run("a = 1", session="one")
        g.run("true", lang="shell", session="two")
        mine = needs(g.sessions, "sessions")
        by = {(x.session, x.lang): x for x in mine}
        check(set(by) == {("one", "python"), ("two", "shell")}, mine)
        check(by[("one", "python")].execution_count == 2 and by[("one", "python")].state == "idle", mine)
        check(all(x.principal == "agent" and x.worker == "w0" for x in mine), mine)
        admin.run("1", session="adm")
        everyone = admin.sessions()
        check({(x.principal, x.session) for x in everyone} >= {("agent", "one"), ("admin", "adm")}, everyone)
        check(("admin", "adm") not in {(x.principal, x.session) for x in g.sessions()}, "an agent sees its own")
    finally:
        done(s, g, admin)


@test
def reset_and_close_a_session():
    s = stack()
    g = gate(s)
    try:
        g.run("x = 1", session="r")
        r = needs(lambda: g.reset("r"), "reset")
        check(r["reset"] is True and r["session"] == "r" and r["lang"] == "python", r)
        r = g.run("x", session="r")
        check(r.error and r.error.name == "NameError", r.row)
        g.run("y = 1", session="c")
        r = needs(lambda: g.close_session("c"), "close")
        check(r["closed"] is True, r)
        check(g.run("'y' in globals()", session="c").value == "False", "a new interpreter")
        for call in (lambda: g.reset("nosuch"), lambda: g.close_session("nosuch", "shell")):
            raises(replgate.NotFound, call)
        check(s.sql("SELECT count(*) FROM events WHERE type IN ('session_reset', 'session_closed')")[0][0] >= 2,
              "recorded")
    finally:
        done(s, g)


@test
def output_streams_while_a_snippet_runs():
    s = stack()
    g = gate(s)
    try:
        got = []
        code = "import sys, time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.2)\nprint('e', file=sys.stderr)"
        r = needs(lambda: g.run(code, on_output=lambda stream, text: got.append((stream, text, time.time()))),
                  "stream")
        ended = time.time()
        text = {k: "".join(t for s_, t, _ in got if s_ == k) for k in ("stdout", "stderr")}
        check(text == {"stdout": r.stdout, "stderr": r.stderr} and r.stdout == "0\n1\n2\n", (got, r.row))
        check(got[0][2] < ended - 0.3, "output came while it ran: %s" % got)
    finally:
        done(s, g)


@test
def timeout_limits_the_run():
    s = stack()
    g = gate(s)
    try:
        r = needs(lambda: g.run("import time; time.sleep(5)", timeout=0.5), "timeout_ms")
        check(r.outcome == "timeout" and not r.ok and r.wall_ms < 3000, r.row)
        check("maximum" in raises(replgate.BadValue, lambda: g.run("1", timeout=10 ** 6)).message, "names the maximum")
    finally:
        done(s, g)


if __name__ == "__main__":
    sys.exit(run_all("pyclient"))
