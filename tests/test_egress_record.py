"""tests/test_egress_record.py: the record of a run's egress (issue 15, the broker's side). A
worker key speaking the protocol by hand answers runs with results that carry `egress` and
`egress_totals`: each connection becomes an `egress` event of its request, in order, before its
`done`; the totals land in the request's columns and the history view; verify, replay and
export show them. A result whose egress record is malformed is refused whole, and its request
still ends."""
import json, os, sqlite3, subprocess, time
from harness import Stack, FakeWorker, check, run_all, test, wait_for

S = None

ENTRIES = [
    {"host": "files.example.com", "address": "93.184.216.34", "port": 443, "method": "CONNECT",
     "bytes_out": 517, "bytes_in": 4096, "ms": 12.5, "outcome": "allowed"},
    {"host": "169.254.169.254", "port": 80, "method": "GET", "bytes_out": 0, "bytes_in": 0,
     "ms": 0.1, "outcome": "denied", "reason": "link-local address \u202egpj.exe"},
    {"host": "pypi.org", "address": "151.101.0.223", "port": 80, "method": "GET", "bytes_out": 80,
     "bytes_in": 1200, "ms": 3, "outcome": "allowed"},
]
TOTALS = {"connections": 3, "denied": 1, "bytes_out": 597, "bytes_in": 5296, "dropped": 4}


def compact(msg):
    # as the worker writes it: the broker reads a refused result's id from the frame's start
    return json.dumps(msg, separators=(",", ":")).encode()


def result(run, **extra):
    msg = {"op": "result", "id": run["id"], "session": run["session"], "lang": run["lang"],
           "owner": run["owner"], "outcome": "ok", "stdout": "fetched\n"}
    msg.update(extra)
    return msg


class Net:
    """A broker with one fake worker, and an agent connected to it."""

    def __init__(self):
        self.stack = Stack(workers=0)
        self.worker = FakeWorker(self.stack, "fake")
        self.stack.wait_workers(1)
        self.agent = self.stack.client()

    def answer(self, session, code, make):
        """Submits code, answers its run with make(run), returns (submit id, the await reply)."""
        sub = self.agent.call("submit", lang="python", session=session, code=code)
        check(sub and sub["ok"], sub)
        run = self.worker.next("run")
        check(run and run["id"] == sub["id"], run)
        self.worker.send(compact(make(run)))
        return sub["id"], self.agent.call("await", id=sub["id"], timeout_ms=10000, timeout=15)


def shared():
    global S
    if S is None:
        S = Net()
        S.granted_id, S.granted = S.answer("net", "fetch('https://files.example.com/x')",
                                           lambda run: result(run, egress=ENTRIES, egress_totals=TOTALS))
        S.plain_id, S.plain = S.answer("net", "1 + 1", lambda run: result(run, stdout="2\n"))
    return S


def cli_ok(s, *args):
    p = s.stack.cli(*args)
    check(p.returncode == 0, (args, p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
    return p


@test
def connections_are_events_before_the_end():
    s = shared()
    check(s.granted["state"] == "done" and s.granted["outcome"] == "ok", s.granted)
    rows = s.stack.sql("select type, actor, data from events where request_id = ? order by seq", s.granted_id)
    types = [t for t, _, _ in rows]
    check(types == ["received", "queued", "running", "egress", "egress", "egress", "done"], types)
    egress = [(actor, json.loads(data)) for t, actor, data in rows if t == "egress"]
    check([a for a, _ in egress] == ["fake"] * 3, egress)
    check([d for _, d in egress] == ENTRIES, egress)
    done = json.loads(rows[-1][2])
    check(done["egress_connections"] == 3 and done["egress_dropped"] == 4, done)
    # a run without a grant: no event, the columns stay NULL
    check(s.stack.sql("select count(*) from events where type = 'egress' and request_id = ?",
                      s.plain_id)[0][0] == 0, "egress event of a run without egress")


@test
def totals_are_columns_and_in_history():
    s = shared()
    cols = "egress_connections, egress_denied, egress_bytes_out, egress_bytes_in"
    want = (3, 1, 597, 5296)
    check(s.stack.sql("select %s from requests where id = ?" % cols, s.granted_id)[0] == want, "row")
    check(s.stack.sql("select %s from history where id = ?" % cols, s.granted_id)[0] == want, "view")
    check(s.stack.sql("select %s from requests where id = ?" % cols, s.plain_id)[0] == (None,) * 4, "plain")
    check(s.stack.sql("pragma user_version")[0][0] >= 5, "schema version")      # columns of 5
    rows = [json.loads(l) for l in cli_ok(s, "history", "--json", "--session", "net").stdout.splitlines() if l]
    row = [r for r in rows if r["id"] == s.granted_id]
    check(row and row[0]["egress_bytes_in"] == 5296 and row[0]["egress_denied"] == 1, rows)


@test
def verify_passes_with_egress_events():
    s = shared()
    p = cli_ok(s, "verify", "--json")
    report = json.loads(p.stdout)
    check(report["ok"] and report["schema"] == [] and "bad" not in report, report)


@test
def replay_shows_each_connection_in_place():
    s = shared()
    text = cli_ok(s, "replay", "net", "--no-wait").stdout
    lines = [
        "[egress] CONNECT files.example.com:443 -> 93.184.216.34, 517 B out, 4096 B in, 12.5 ms, allowed",
        "[egress] GET 169.254.169.254:80 -> (unresolved), 0 B out, 0 B in, 0.1 ms, denied: link-local address",
        "[egress] GET pypi.org:80 -> 151.101.0.223, 80 B out, 1200 B in, 3.0 ms, allowed",
    ]
    at = text.find(">>> fetch(")
    check(at >= 0, text)
    for piece in lines + ["fetched", ">>> 1 + 1", "2"]:    # after its code, before its output
        i = text.find(piece, at)
        check(i >= 0, ("missing or out of order", piece, text))
        at = i + len(piece)
    check(text.count("[egress]") == 3, text)
    # rendered for a terminal: the reason's bidi override is a marker, not an override
    esc = cli_ok(s, "replay", "net", "--no-wait", "--escape").stdout
    check("\u202e" not in esc and "\u27e8U+202E\u27e9" in esc, esc)
    rows = [json.loads(l) for l in cli_ok(s, "replay", "net", "--json").stdout.splitlines() if l]
    check(rows[0]["egress"] == ENTRIES and rows[1]["egress"] == [], rows)


@test
def export_includes_egress_events_and_totals():
    s = shared()
    events = [json.loads(l) for l in cli_ok(s, "export", "--events", "--format", "jsonl",
                                            "--session", "net").stdout.splitlines() if l]
    egress = [e for e in events if e["type"] == "egress"]
    check(len(egress) == 3 and all(e["request_id"] == s.granted_id and e["actor"] == "fake" for e in egress), egress)
    check([json.loads(e["data"]) for e in egress] == ENTRIES, egress)
    done = [e for e in events if e["type"] == "done" and e["request_id"] == s.granted_id]
    check(done and egress[-1]["seq"] < done[0]["seq"], "egress after done")
    rows = [json.loads(l) for l in cli_ok(s, "export", "--format", "jsonl", "--session", "net").stdout.splitlines() if l]
    row = [r for r in rows if r["id"] == s.granted_id][0]
    check(row["egress_connections"] == 3 and row["egress_bytes_out"] == 597, row)
    csv = cli_ok(s, "export", "--session", "net").stdout
    check("egress_connections,egress_denied,egress_bytes_out,egress_bytes_in" in csv.splitlines()[0], csv[:400])


@test
def outcome_egress_limit_is_stored():
    s = shared()
    totals = dict(TOTALS, connections=5, denied=0, dropped=0)
    rid, r = s.answer("lim", "loop()", lambda run: result(run, outcome="egress_limit", egress=ENTRIES[:1],
                                                          egress_totals=totals,
                                                          stderr="[replgate: egress limit]\n"))
    check(r["state"] == "done" and r["outcome"] == "egress_limit", r)
    check(s.stack.sql("select outcome, egress_connections from requests where id = ?", rid)[0]
          == ("egress_limit", 5), "row")
    p = s.stack.cli("status", str(rid))
    check(p.returncode == 6, (p.returncode, p.stdout, p.stderr))      # a limit ended it
    cli_ok(s, "verify")


@test
def readme_queries_run_as_written():
    """Every `sqlite3 var/replgate.db ...` line of the README runs as written against a real
    database, and its egress queries find this file's connections."""
    s = shared()
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
    lines = [l.strip() for l in open(readme, encoding="utf-8")
             if l.startswith("sqlite3 var/replgate.db ")]
    check(len(lines) >= 10, ("README queries found", len(lines)))
    outputs = {}
    for line in lines:
        cmd = line.replace("var/replgate.db", s.stack.db, 1)
        p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=30)
        check(p.returncode == 0 and not p.stderr, (line, p.returncode, p.stderr))
        outputs[line] = p.stdout
    totals = [out for line, out in outputs.items() if "egress_connections is not null" in line]
    events = [out for line, out in outputs.items() if "type = 'egress'" in line]
    check(totals and "%d|" % s.granted_id in totals[0] and "|3|1|597|5296" in totals[0], totals)
    check(events and "files.example.com|443|allowed" in events[0]
          and "169.254.169.254|80|denied|link-local" in events[0], events)


def bad_results():
    """(name, result) pairs a broker must refuse."""
    e = ENTRIES[0]
    many = [dict(e) for _ in range(1001)]
    return [
        ("wrong type", {"egress": [dict(e, port="443")], "egress_totals": TOTALS}),
        ("unknown key", {"egress": [dict(e, note="x")], "egress_totals": TOTALS}),
        ("1001 entries", {"egress": many, "egress_totals": TOTALS}),
        ("non-ASCII host", {"egress": [dict(e, host="f\u00e9les.example.com")], "egress_totals": TOTALS}),
        ("negative bytes", {"egress": [dict(e, bytes_in=-1)], "egress_totals": TOTALS}),
        ("control in host", {"egress": [dict(e, host="a\x1b[2Jb")], "egress_totals": TOTALS}),
        ("reason when allowed", {"egress": [dict(e, reason="x")], "egress_totals": TOTALS}),
        ("not an array", {"egress": e, "egress_totals": TOTALS}),
        ("totals negative", {"egress": [e], "egress_totals": dict(TOTALS, bytes_out=-5)}),
        ("totals unknown key", {"egress": [e], "egress_totals": dict(TOTALS, extra=1)}),
        ("totals missing key", {"egress": [e], "egress_totals": {"connections": 1}}),
    ]


@test
def malformed_egress_refuses_the_result_and_ends_the_request():
    s = shared()
    for name, extra in bad_results():
        rid, r = s.answer("bad", "fetch()", lambda run: result(run, **extra))
        check(r["state"] == "done" and r["outcome"] == "error" and r["error_name"] == "ResultRefused"
              and "egress" in r["error_value"], (name, r))
        check(s.worker.next("close") is not None, (name, "no close"))
        check(s.stack.sql("select count(*) from events where type = 'egress' and request_id = ?", rid)[0][0] == 0,
              (name, "an entry of a refused result was recorded"))
        check(s.stack.sql("select egress_connections from requests where id = ?", rid)[0][0] is None, name)
    check(s.stack.broker.poll() is None, "broker died")
    check(s.agent.call("ping")["ok"], "broker does not answer")
    cli_ok(s, "verify")


@test
def a_locked_database_keeps_the_connections_before_the_end():
    """The result arrives while another process holds the write lock: its events and its end
    wait in the backlog and are written later, in order."""
    n = Net()
    try:
        sub = n.agent.call("submit", lang="python", session="lk", code="fetch()")
        run = n.worker.next("run")
        check(run and run["id"] == sub["id"], run)
        lock = sqlite3.connect(n.stack.db, timeout=10, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            n.worker.send(compact(result(run, egress=ENTRIES, egress_totals=TOTALS)))
            for _ in range(8):                      # heartbeats keep the fake worker alive
                time.sleep(0.2)
                n.worker.send({"op": "heartbeat"})
            p = n.agent.call("ping")
            check(p["store"]["writable"] is False, p)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        r = n.agent.call("await", id=sub["id"], timeout_ms=10000, timeout=15)
        check(r["state"] == "done" and r["outcome"] == "ok", r)
        wait_for(lambda: n.agent.call("ping")["store"]["writable"], what="writable again")
        types = [t for (t,) in n.stack.sql("select type from events where request_id = ? order by seq", sub["id"])]
        check(types == ["received", "queued", "running", "egress", "egress", "egress", "done"], types)
        check(n.stack.cli("verify").returncode == 0, "verify")
    finally:
        n.agent.close()
        n.worker.close()
        check(not n.stack.stop(), "sanitizer")


if __name__ == "__main__":
    try:
        code = run_all("egress_record")
    finally:
        if S:
            S.agent.close()
            S.worker.close()
            S.stack.stop()
    raise SystemExit(code)
