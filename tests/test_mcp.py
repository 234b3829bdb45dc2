"""tests/test_mcp.py: `replgate mcp`, the MCP server on stdio, against a real broker and worker.

Most tests drive it with a client nobody here wrote: the official MCP TypeScript SDK
(@modelcontextprotocol/sdk, pinned in tests/mcp/package-lock.json, installed by `npm ci` into
tests/mcp/node_modules on first use), remote-controlled through tests/mcp/client.mjs. The raw_*
tests speak JSON-RPC on the server's stdio themselves, for what a well-behaved client never sends.
Tests of the broker ops of issue 14 that a broker may not have yet (interrupt, sessions, reset,
timeout_ms) say SKIPPED when it answers unknown_op or unknown_key."""
import base64, json, os, queue, re, shutil, subprocess, threading, time
from harness import BIN, SLOW, Stack, check, run_all, test, wait_for

MCP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mcp")
CLIENT = os.path.join(MCP_DIR, "client.mjs")
POLICY = {"version": 1, "defaults": {"quorum": 1, "ttl_s": 3600}, "rules": [
    {"name": "no-rm", "match": {"code": "rm\\s+-rf"}, "action": "deny", "message": "no recursive deletes"},
    {"name": "net", "match": {"code": "socket"}, "action": "review"},
    {"name": "rest", "action": "allow"},
]}
PARKED = "import socket; 'approved'"


def install_sdk():
    """The SDK at the version tests/mcp/package.json pins, installed once from the lock file."""
    want = json.load(open(os.path.join(MCP_DIR, "package.json")))["dependencies"]["@modelcontextprotocol/sdk"]
    marker = os.path.join(MCP_DIR, "node_modules", "@modelcontextprotocol", "sdk", "package.json")
    if os.path.exists(marker) and json.load(open(marker))["version"] == want:
        return
    for tool in ("node", "npm"):
        check(shutil.which(tool), "%s is missing: `make deps` installs nodejs and npm" % tool)
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=MCP_DIR,
                       capture_output=True, text=True, timeout=600)
    check(r.returncode == 0, "npm ci in tests/mcp failed:\n%s%s" % (r.stdout, r.stderr))


def lines_of(stream, q):
    for line in iter(stream.readline, b""):
        q.put(line)
    q.put(None)


class Sdk:
    """The SDK's client running `replgate mcp --dir STACK ARGS` as its stdio server."""

    def __init__(self, s, *args):
        install_sdk()
        self.log = open(os.path.join(s.dir, "mcp-client.log"), "ab")
        self.p = subprocess.Popen(["node", CLIENT, os.path.join(BIN, "replgate"), "mcp", "--dir", s.dir] + list(args),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                  env=dict(os.environ, ZSYS_SIGHANDLER="false"))
        self.q, self.seen, self.n = queue.Queue(), [], 0
        threading.Thread(target=lines_of, args=(self.p.stdout, self.q), daemon=True).start()
        r = self.do("connect")
        check(r["ok"], r)
        self.server = r["result"]

    def start(self, op, **kw):
        self.n += 1
        tag = kw.pop("tag", "c%d" % self.n)
        self.p.stdin.write((json.dumps(dict(kw, op=op, tag=tag)) + "\n").encode())
        self.p.stdin.flush()
        return tag

    def wait(self, tag, kind="ok", timeout=30.0):
        """The next line of that tag with that key (ok: the command ended; progress)."""
        deadline = time.time() + timeout * SLOW
        while True:
            for e in self.seen:
                if e.get("tag") == tag and kind in e:
                    self.seen.remove(e)
                    return e
            try:
                line = self.q.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                raise AssertionError("no %s for %s within %ss; unclaimed: %s" % (kind, tag, timeout, self.seen))
            check(line is not None, "the SDK client ended; see mcp-client.log")
            self.seen.append(json.loads(line))

    def pending(self, tag):
        """True if nothing ended the command of that tag so far."""
        try:
            self.wait(tag, timeout=0.01)
        except AssertionError:
            return True
        return False

    def do(self, op, timeout=30.0, **kw):
        return self.wait(self.start(op, **kw), timeout=timeout)

    def call(self, tool, timeout=30.0, **args):
        r = self.do("call", tool=tool, args=args, timeout=timeout)
        check(r["ok"], r)
        return r["result"]

    def errors(self):
        """What the SDK could not place so far."""
        while not self.q.empty():
            line = self.q.get()
            if line is not None:
                self.seen.append(json.loads(line))
        return [e["message"] for e in self.seen if e.get("tag") == "client-error"]

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=10)
        finally:
            if self.p.poll() is None:
                self.p.kill()
            self.log.close()


def text(result):
    return "".join(c["text"] for c in result["content"] if c["type"] == "text")


def stack():
    s = Stack(policy=POLICY)
    for name, role in [("alice", "approver"), ("bob", "agent")]:
        p = s.cli("keygen", name, "--role", role)
        check(p.returncode == 0, p.stderr)
    return s


def done(s, *clients):
    for c in clients:
        c.close()
    check(not s.stop(), "sanitizer report")


def broker_lacks(s, op, **fields):
    """The reason to skip when the broker does not know op (or a field of it) yet, else None."""
    c = s.client("agent")
    r = c.call(op, **fields)
    c.close()
    if r and not r["ok"] and r["error"]["code"] in ("unknown_op", "unknown_key"):
        return "the broker answers %s to %s: enable once issue 14's broker part is merged" % (r["error"]["code"], op)
    return None


def skipped(why):
    print("   SKIPPED: %s" % why, flush=True)


def parked_id(sdk, tag):
    """The request id a parked call's first progress notification names."""
    p = sdk.wait(tag, "progress")["progress"]
    m = re.match(r"request (\d+) waiting for approval: 0 of 1, (\d+) min left$", p["message"])
    check(m and 55 <= int(m.group(2)) <= 60, p)
    return int(m.group(1))


def status(s, rid):
    c = s.client("agent")
    try:
        return c.call("status", id=rid)
    finally:
        c.close()


@test
def sdk_lists_tools_runs_python_and_shell_and_keeps_state():
    s = stack()
    sdk = bob = None
    try:
        sdk = Sdk(s)
        check(sdk.server["server"]["name"] == "replgate" and "tools" in sdk.server["capabilities"], sdk.server)
        tools = {t["name"]: t for t in sdk.do("list")["result"]["tools"]}
        check(sorted(tools) == ["cancel", "interrupt", "python", "reset_session", "result", "sessions", "shell"], tools)
        for t in tools.values():
            check(t["inputSchema"]["type"] == "object" and t["outputSchema"]["type"] == "object" and t["description"], t)
        check(tools["python"]["inputSchema"]["required"] == ["code"], tools["python"])
        r = sdk.call("python", code="x = 20")
        check(not r.get("isError") and text(r) == "(no output)", r)
        r = sdk.call("python", code="print('half'); x * 2 + 2")     # the session kept x
        check(text(r) == "half\n42" and r["structuredContent"]["value"] == "42", r)
        check(r["structuredContent"]["stdout"] == "half\n" and r["structuredContent"]["state"] == "done", r)
        r = sdk.call("python", code="x", session="other")           # sessions never share state
        check(r["isError"] is True and "NameError" in text(r), r)
        r = sdk.call("python", code="import sys; sys.stderr.write('warn\\n'); 1/0")
        check(r["isError"] is True and "stderr:\nwarn\n" in text(r) and "ZeroDivisionError" in text(r), r)
        check(r["structuredContent"]["outcome"] == "error", r)
        r = sdk.call("shell", code="cd /tmp; N=3; hello() { echo \"hi $1\"; }", session="ops")
        check(not r.get("isError"), r)
        r = sdk.call("shell", code="pwd; hello $N", session="ops", reason="where am I")
        check(text(r) == "/tmp\nhi 3\n" and r["structuredContent"]["reason"] == "where am I", r)
        r = sdk.call("shell", code="exit 3", session="ops")
        check(r["isError"] is True and r["structuredContent"]["exit_code"] == 3, r)
        # every call is the key's principal: the policy and the record see that agent
        bob = Sdk(s, "--key", s.key("bob"))
        r = bob.call("python", code="'who'")
        check(r["structuredContent"]["principal"] == "bob", r)
        rows = s.sql("select principal, count(*) from requests group by principal order by principal")
        check(rows == [("agent", 7), ("bob", 1)], rows)
        check(not sdk.errors() and not bob.errors(), (sdk.errors(), bob.errors()))
    finally:
        done(s, *[c for c in (sdk, bob) if c])


@test
def sdk_denied_call_bad_arguments_and_malformed_input():
    s = stack()
    sdk = None
    try:
        sdk = Sdk(s)
        r = sdk.call("shell", code="rm -rf /tmp/x")
        check(r["isError"] is True and r["structuredContent"]["state"] == "denied", r)
        check("denied by policy rule no-rm: no recursive deletes" in text(r), text(r))
        # bad arguments are JSON-RPC errors (-32602) the SDK raises; the server goes on serving
        for tool, args, what in [("python", {"code": 5}, "code must be a string"),
                                 ("python", {}, "code is missing"),
                                 ("python", {"code": "1", "sesion": "x"}, "unknown argument sesion"),
                                 ("python", {"code": "1", "timeout_s": 0}, "timeout_s must be above 0"),
                                 ("result", {"id": 0}, "id must be at least 1"),
                                 ("reset_session", {"session": "s", "lang": "ruby"}, "lang must be one of"),
                                 ("python", {"code": "1", "session": "no spaces"}, "bad_value"),
                                 ("perl", {"code": "1"}, "unknown tool perl")]:
            r = sdk.do("call", tool=tool, args=args)
            check(not r["ok"] and r["error"]["code"] == -32602 and what in r["error"]["message"], (tool, args, r))
        # malformed JSON and bytes that are not UTF-8, behind the SDK's back, each get an error
        # with id null (JSON-RPC 2.0: the id could not be read), which this SDK's schema refuses
        # and reports; a request with an id but no valid method gets -32600 with its id
        for raw in (b"{not json\n", b'{"jsonrpc": "2.0", "id": 99, "method": "\xff"}\n',
                    b'{"jsonrpc": "2.0", "id": 98, "method": 5}\n'):
            sdk.do("raw", data_b64=base64.b64encode(raw).decode())
        wait_for(lambda: len(sdk.errors()) == 3, what="three errors the SDK could not place")
        nulls, (other,) = sdk.errors()[:2], sdk.errors()[2:]
        check(all("expected string, received null" in e for e in nulls), nulls)
        check(re.search(r'unknown message ID: \{"jsonrpc":"2.0","id":98,"error":\{"code":-32600,', other), other)
        r = sdk.call("python", code="6 * 7")
        check(text(r) == "42", r)
        check(s.sql("select count(*) from requests")[0][0] == 2, "a refused call was submitted")
    finally:
        done(s, *[c for c in (sdk,) if c])


@test
def sdk_parked_call_reports_progress_and_runs_once_approved_from_the_cli():
    s = stack()
    sdk = None
    try:
        sdk = Sdk(s)
        parked = sdk.start("call", tool="python", args={"code": PARKED, "reason": "needs the network"}, progress=True)
        rid = parked_id(sdk, parked)
        # another call while that one waits: answered at once, the parked one still waiting
        r = sdk.call("python", code="1 + 1")
        check(text(r) == "2" and sdk.pending(parked), r)
        sdk.wait(parked, "progress", timeout=15)       # progress goes on while it waits
        p = s.cli("approve", str(rid), "--reason", "fine", "--key", s.key("alice"))
        check(p.returncode == 0, p.stderr)
        r = sdk.wait(parked, timeout=30)
        check(r["ok"] and not r["result"].get("isError") and text(r["result"]) == "'approved'", r)
        approvals = r["result"]["structuredContent"]["approvals"]
        check([a["approver"] for a in approvals] == ["alice"], approvals)
    finally:
        done(s, *[c for c in (sdk,) if c])


@test
def sdk_cancel_withdraws_a_parked_call():
    s = stack()
    sdk = None
    try:
        sdk = Sdk(s)
        tag = sdk.start("call", tool="python", args={"code": PARKED}, progress=True)
        rid = parked_id(sdk, tag)
        sdk.do("abort", target=tag)
        r = sdk.wait(tag)
        check(not r["ok"], r)                          # the SDK ends an aborted call itself
        wait_for(lambda: status(s, rid)["state"] == "cancelled", what="request %d cancelled" % rid)
        r = sdk.call("python", code="'still serving'")
        check(text(r) == "'still serving'", r)
        check(not sdk.errors(), ("the server answered a cancelled call", sdk.errors()))
    finally:
        done(s, *[c for c in (sdk,) if c])


@test
def sdk_cancel_interrupts_a_running_call():
    s = stack()
    sdk = None
    try:
        why = broker_lacks(s, "interrupt", id=1)
        if why:
            return skipped(why)
        sdk = Sdk(s)
        sdk.call("python", code="kept = 'yes'", session="long")
        tag = sdk.start("call", tool="python", args={"code": "import time\nfor _ in range(600): time.sleep(0.05)",
                                                      "session": "long"}, progress=True)
        p = sdk.wait(tag, "progress")["progress"]
        m = re.match(r"request (\d+) running for \d+ s$", p["message"])
        check(m, p)
        sdk.do("abort", target=tag)
        rid = int(m.group(1))
        row = wait_for(lambda: (lambda r: r if r["state"] == "done" else None)(status(s, rid)), timeout=15,
                       what="request %d ended" % rid)
        check(row["outcome"] == "interrupted", row)
        r = sdk.call("python", code="kept", session="long")  # the session kept its state
        check(text(r) == "'yes'", r)
    finally:
        done(s, *[c for c in (sdk,) if c])


@test
def approval_wait_bound_then_result_and_cancel_tools():
    s = stack()
    sdk = None
    try:
        sdk = Sdk(s, "--approval-wait", "2")
        t0 = time.time()
        r = sdk.call("python", code=PARKED)
        rid = r["structuredContent"]["id"]
        check(1.5 <= time.time() - t0 < 10 * SLOW, time.time() - t0)
        check(not r.get("isError") and r["structuredContent"]["state"] == "pending_approval", r)
        check(("request %d waiting for approval: 0 of 1" % rid) in text(r) and ('{"id": %d}' % rid) in text(r), text(r))
        r = sdk.call("result", id=rid)                 # as it is now
        check(r["structuredContent"]["state"] == "pending_approval", r)
        tag = sdk.start("call", tool="result", args={"id": rid, "wait_s": 60})
        time.sleep(0.5)
        p = s.cli("approve", str(rid), "--key", s.key("alice"))
        check(p.returncode == 0, p.stderr)
        r = sdk.wait(tag)
        check(r["ok"] and text(r["result"]) == "'approved'", r)
        # the cancel tool withdraws another parked request; a second cancel fails: it ended
        other = sdk.call("python", code=PARKED)["structuredContent"]["id"]
        r = sdk.call("cancel", id=other)
        check(not r.get("isError") and r["structuredContent"]["state"] == "cancelled", r)
        r = sdk.call("cancel", id=other)
        check(r["isError"] is True and "bad_state" in text(r), r)
        r = sdk.call("result", id=424242)
        check(r["isError"] is True and "not_found" in text(r), r)
    finally:
        done(s, *[c for c in (sdk,) if c])


@test
def sdk_sessions_reset_session_and_timeout():
    s = stack()
    sdk = None
    try:
        why = broker_lacks(s, "sessions") or broker_lacks(s, "submit", lang="python", code="1", session="t",
                                                          timeout_ms=1000)
        if why:
            return skipped(why)
        sdk = Sdk(s)
        sdk.call("python", code="y = 1", session="s1")
        r = sdk.call("sessions")
        mine = [x for x in r["structuredContent"]["sessions"] if x["session"] == "s1"]
        check(len(mine) == 1 and mine[0]["lang"] == "python" and "s1 (python" in text(r), r)
        r = sdk.call("reset_session", session="s1")
        check(r["structuredContent"]["reset"] is True and not r.get("isError"), r)
        r = sdk.call("python", code="y", session="s1")
        check(r["isError"] is True and "NameError" in text(r), r)
        r = sdk.call("python", code="import time; time.sleep(5)", timeout_s=0.5)
        check(r["isError"] is True and r["structuredContent"]["outcome"] == "timeout", r)
    finally:
        done(s, *[c for c in (sdk,) if c])


class Raw:
    """`replgate mcp` on pipes, spoken to line by line."""

    def __init__(self, s, *args):
        self.p = subprocess.Popen([os.path.join(BIN, "replgate"), "mcp", "--dir", s.dir] + list(args),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=open(os.path.join(s.dir, "mcp-raw.log"), "ab"),
                                  env=dict(os.environ, ZSYS_SIGHANDLER="false"))
        self.q = queue.Queue()
        threading.Thread(target=lines_of, args=(self.p.stdout, self.q), daemon=True).start()

    def send(self, msg):
        self.p.stdin.write(msg if isinstance(msg, bytes) else (json.dumps(msg) + "\n").encode())
        self.p.stdin.flush()

    def recv(self, timeout=10.0):
        try:
            line = self.q.get(timeout=timeout * SLOW)
        except queue.Empty:
            return None
        check(line is not None, "the server ended")
        msg = json.loads(line)                      # stdout holds JSON-RPC lines and nothing else
        check(msg.get("jsonrpc") == "2.0", msg)
        return msg

    def ask(self, id, method, params=None):
        self.send({"jsonrpc": "2.0", "id": id, "method": method, **({"params": params} if params is not None else {})})
        return self.recv()

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def error_of(msg, code, id=None):
    check(msg and msg.get("id") == id and msg["error"]["code"] == code, (code, id, msg))
    return msg["error"]["message"]


@test
def raw_jsonrpc_errors_and_the_server_keeps_serving():
    s = stack()
    m = Raw(s)
    try:
        init = lambda v: m.ask(1, "initialize", {"protocolVersion": v, "capabilities": {},
                                                 "clientInfo": {"name": "raw", "version": "0"}})
        check(init("2025-06-18")["result"]["protocolVersion"] == "2025-06-18", "2025-06-18")
        check(init("2025-03-26")["result"]["protocolVersion"] == "2025-03-26", "2025-03-26")
        check(init("1999-01-01")["result"]["protocolVersion"] == "2025-06-18", "unknown version")
        error_of(m.ask(2, "initialize", {}), -32602, 2)
        m.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        for line, code, id in [(b"{oops\n", -32700, None), (b'"\xc3\x28"\n', -32700, None),
                               (b"\x00\n", -32700, None), (b"[]\n", -32600, None),
                               (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]\n', -32600, None),
                               (b"5\n", -32600, None), (b'{"id": 3, "method": "ping"}\n', -32600, 3),
                               (b'{"jsonrpc": "1.0", "id": "a", "method": "ping"}\n', -32600, "a"),
                               (b'{"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}\n', -32600, None),
                               (b'{"jsonrpc": "2.0", "id": 4}\n', -32600, 4),
                               (b'{"jsonrpc": "2.0", "id": 5, "method": 7}\n', -32600, 5),
                               (b'{"jsonrpc": "2.0", "id": 6, "method": "ping", "params": [1]}\n', -32602, 6)]:
            m.send(line)
            error_of(m.recv(), code, id)
        check("nope" in error_of(m.ask(7, "nope"), -32601, 7), "method named")
        error_of(m.ask(8, "tools/call", {"arguments": {}}), -32602, 8)
        error_of(m.ask(9, "tools/call", {"name": "python", "arguments": []}), -32602, 9)
        # nothing answers a notification, a response or a blank line
        m.send({"jsonrpc": "2.0", "method": "notifications/whatever", "params": {}})
        m.send({"jsonrpc": "2.0", "id": 77, "result": {}})
        m.send(b"\r\n  \n")
        check(m.ask(10, "ping") == {"jsonrpc": "2.0", "id": 10, "result": {}}, "ping after the silent ones")
        # a line over 4 MiB is answered once and skipped, in whatever pieces it comes
        m.send(b'{"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {"name": "python", "arguments": {"code": "')
        for _ in range(5):
            m.send(b"x" * (1 << 20))
        m.send(b'"}}}\n')
        check("too large" in error_of(m.recv(), -32600), "oversize")
        check(m.ask(12, "ping")["result"] == {}, "serving after the oversize line")
        r = m.ask(13, "tools/call", {"name": "python", "arguments": {"code": "'x' * 3"}})
        check(r["result"]["content"] == [{"type": "text", "text": "'xxx'"}], r)
        check(m.recv(0.5) is None, "an unexpected message")
    finally:
        m.close()
        done(s)


@test
def raw_progress_only_when_asked_and_no_answer_after_cancel():
    s = stack()
    m = Raw(s)
    try:
        m.send({"jsonrpc": "2.0", "id": "quiet", "method": "tools/call",
                "params": {"name": "python", "arguments": {"code": PARKED}}})
        check(m.recv(2.5) is None, "progress without a progressToken")
        m.send({"jsonrpc": "2.0", "id": "loud", "method": "tools/call",
                "params": {"name": "python", "arguments": {"code": PARKED}, "_meta": {"progressToken": 7}}})
        p = m.recv()
        check(p["method"] == "notifications/progress" and p["params"]["progressToken"] == 7, p)
        first = p["params"]["progress"]
        p = m.recv(10)
        check(p["params"]["progress"] > first, ("progress must increase", first, p))
        # cancelled at once, before the broker answered its submit: stopped once it does
        m.send({"jsonrpc": "2.0", "id": "early", "method": "tools/call",
                "params": {"name": "python", "arguments": {"code": PARKED}, "_meta": {"progressToken": 8}}})
        m.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "early"}})
        wait_for(lambda: s.sql("select count(*) from requests")[0][0] == 3, what="three requests")
        ids = [r[0] for r in s.sql("select id from requests order by id")]
        # cancelling an unknown or finished request changes nothing; these two stop, unanswered
        m.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "nobody"}})
        for id in ("quiet", "loud"):
            m.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id, "reason": "t"}})
        wait_for(lambda: all(status(s, i)["state"] == "cancelled" for i in ids), what="all three cancelled")
        while True:                                     # progress sent before the cancellation
            msg = m.recv(0.5)
            if msg is None:
                break
            check(msg.get("method") == "notifications/progress" and msg["params"]["progressToken"] == 7, msg)
        check(m.ask(1, "ping")["result"] == {}, "ping")
        check(m.recv(6) is None, "an answer or progress after the cancellation")
    finally:
        m.close()
        done(s)


@test
def raw_end_of_stdin_exits_at_once_and_cancels_nothing():
    s = stack()
    m = Raw(s)
    try:
        m.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "python", "arguments": {"code": PARKED}}})
        wait_for(lambda: s.sql("select state from requests") == [("pending_approval",)], what="parked")
        t0 = time.time()
        m.p.stdin.close()
        check(m.p.wait(timeout=5 * SLOW) == 0, "exit status")
        check(time.time() - t0 < 2 * SLOW, "slow exit")
        check(s.sql("select state from requests") == [("pending_approval",)], "EOF cancelled the request")
    finally:
        m.close()
        done(s)


@test
def command_line_and_unreachable_broker():
    s = stack()
    try:
        for args in (["--approval-wait", "soon"], ["--approval-wait", "2d"], ["--approval-wait", "-1"],
                     ["extra"], ["--json"]):
            p = s.cli("mcp", *args, input="")
            check(p.returncode == 2 and p.stdout == "", (args, p.returncode, p.stdout, p.stderr))
        p = s.cli("mcp", "--approval-wait", "10m", input="")
        check(p.returncode == 0 and p.stdout == "", (p.returncode, p.stdout, p.stderr))
        p = s.cli("mcp", "--key", "/nonexistent/key.cert", input="")
        check(p.returncode == 2 and "no key file" in p.stderr, p.stderr)     # local set-up, not the broker
        m = Raw(s, "--broker", "tcp://127.0.0.1:1")
        try:
            t0 = time.time()
            r = m.ask(1, "tools/call", {"name": "python", "arguments": {"code": "1"}})
            check(r is None or "result" in r, r)
            r = r or m.recv(10)
            check(r["result"]["isError"] is True and "no answer from the broker" in text(r["result"]), r)
            check(time.time() - t0 < 15 * SLOW, "took %.1fs" % (time.time() - t0))
        finally:
            m.close()
    finally:
        done(s)


if __name__ == "__main__":
    raise SystemExit(run_all("test_mcp"))
