"""tests/test_faults.py: the broker under storage faults (issue 11). A database that is locked
by another process, a full disk and a transition the database refuses: the loop keeps
answering, nothing acknowledged is stranded, `ping` and the database agree, and everything
that waited is written, in order, once the database takes writes again."""
import json, os, signal, sqlite3, subprocess, time
import harness
from harness import Stack, check, run_all, test, wait_for, SLOW

UID = ["--uid-base", "291000"]


def states(stack, db=None):
    con = sqlite3.connect("file:%s?mode=ro" % (db or stack.db), uri=True, timeout=10)
    try:
        return dict(con.execute("SELECT state, count(*) FROM requests GROUP BY state").fetchall())
    finally:
        con.close()


def agree(c, stack, db=None):
    """ping's counts are the database's: what waits to be written still counts where it was."""
    p = c.call("ping")
    s = states(stack, db)
    for state in ("queued", "running", "received"):
        check(p["stats"][state] == s.get(state, 0), ("ping and the database disagree", p, s))
    return p


def until_down(c):
    """Waits for ping to say the store refuses writes; returns that ping."""
    return wait_for(lambda: (lambda p: p if not p["store"]["writable"] else None)(c.call("ping")),
                    what="the store reported not writable")


def lift(s, c, r, drop, stdout):
    """Removes the injected fault (SQL statements `drop`), then the request r must end `done`
    with stdout, and ping and the database agree again."""
    for stmt in drop:
        s.sql(stmt)
    r = c.call("await", id=r["id"], timeout_ms=10000, timeout=15)
    check(r["state"] == "done" and r["stdout"] == stdout, r)
    wait_for(lambda: c.call("ping")["store"]["writable"], what="writable again")
    agree(c, s)


def pipeline(c, n, code, session):
    rids = []
    for i in range(n):
        c.n += 1
        rid = "p%d" % c.n
        c.send_raw(json.dumps({"op": "submit", "rid": rid, "lang": "python",
                               "session": "%s-%d" % (session, i % 4),
                               "code": code % i, "wait_ms": 60000}))
        rids.append(rid)
    return rids


def collect(c, rids, timeout):
    got, deadline = {}, time.time() + timeout * SLOW
    while len(got) < len(rids) and time.time() < deadline:
        r = c.recv(1.0)
        if r and r.get("rid") in rids:
            got[r["rid"]] = r
    return got


@test
def locked_database_keeps_the_loop_answering():
    """Another process holds the write lock for 6 s: pings stay fast, the worker is not
    declared lost, runs under way finish and are recorded, submits get `busy`."""
    s = Stack(worker_args=UID)
    try:
        c = s.client()
        check(c.run("x = 1", session="lk-0")["outcome"] == "ok", "warm up")
        rids = pipeline(c, 4, "import time; time.sleep(1.5); %d", "lk")
        time.sleep(0.5)                        # running now
        a = s.client("admin")
        behind = c.call("submit", lang="python", code="'behind'", session="lk-0")
        check(behind["state"] == "queued", behind)
        lock = sqlite3.connect(s.db, timeout=10, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        t_lock = time.time()
        pings, busy = [], 0
        r = a.call("cancel", id=behind["id"])
        check(not r["ok"] and r["error"]["code"] == "busy", ("cancel while locked", r))
        while time.time() - t_lock < 6:
            t0 = time.time()
            r = a.call("ping", timeout=5)
            pings.append(time.time() - t0)
            check(r is not None, "no pong while the database was locked")
            b = a.call("submit", lang="python", code="1", session="other")
            if b and not b["ok"]:
                check(b["error"]["code"] == "busy", b)
                busy += 1
            time.sleep(0.1)
        p = a.call("ping")
        check(p["store"]["writable"] is False and "locked" in p["store"]["error"], p)
        check(p["stats"]["workers"] == 1, ("the worker was declared lost", p))
        lock.execute("ROLLBACK")
        lock.close()
        check(max(pings) < 1.0 * SLOW, ("a ping waited for the lock", max(pings)))
        check(busy > 0, "no submit was refused while nothing could be recorded")
        got = collect(c, rids, 20)
        check(len(got) == 4, ("runs under way were not all answered", got))
        for r in got.values():
            check(r["ok"] and r["state"] == "done" and r["outcome"] == "ok", r)
        wait_for(lambda: a.call("ping")["store"]["writable"], what="writable again")
        check(not s.sql("SELECT 1 FROM events WHERE type = 'worker_lost'"), "worker_lost recorded")
        r = a.call("await", id=behind["id"], timeout_ms=10000, timeout=15)
        check(r["state"] == "done" and r["value"] == "'behind'", r)
        agree(a, s)
        check(c.run("x + 1", session="lk-0")["value"] == "2", "session state kept")
        c.close()
        a.close()
    finally:
        check(not s.stop(), "sanitizer report")


@test
def a_full_disk_strands_nothing():
    """The disk fills while runs are under way: their results wait in memory (ping counts them
    as running, as the database does), nothing new is accepted or dispatched, and once space is
    freed every result is written, then the queued requests run."""
    mnt = harness.scratch_dir("replgate-full-")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt]).returncode != 0:
        check(False, "cannot mount a tmpfs (needs root)")
    s = None
    try:
        db = os.path.join(mnt, "replgate.db")
        s = Stack(broker_args=["--db", db], worker_args=UID, slots=2)
        c = s.client()
        check(c.run("'warm'", session="full-0")["outcome"] == "ok", "warm up")
        # 2 slots, 4 sessions: two run, two wait in the queue.
        rids = pipeline(c, 4, "import time; time.sleep(2); print('out %d')", "full")
        time.sleep(0.7)
        filler = os.path.join(mnt, "filler")
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=64k"], capture_output=True)
        a = s.client("admin")
        # Keep writing until the database notices (SQLite's cache absorbs a little).
        for i in range(40):
            a.call("submit", lang="python", code="'%s'" % ("y" * 4000), session="fill")
            if not a.call("ping")["store"]["writable"]:
                break
        wait_for(lambda: a.call("ping")["store"]["waiting"] >= 1, 10, "a result waiting")
        p = agree(a, s, db)
        check(p["store"]["writable"] is False and p["stats"]["running"] >= 1, p)
        r = a.call("submit", lang="python", code="1", session="late")
        check(r and not r["ok"] and r["error"]["code"] == "busy", r)
        time.sleep(2.5)                        # nothing is dispatched meanwhile
        agree(a, s, db)
        check(states(s, db).get("queued", 0) >= 1, states(s, db))
        os.unlink(filler)
        got = collect(c, rids, 30)
        check(len(got) == 4, ("not every request ended", got))
        for i, r in sorted((int(k[1:]), v) for k, v in got.items()):
            check(r["state"] == "done" and r["outcome"] == "ok", r)
        outs = sorted(r["stdout"] for r in got.values())
        check(outs == ["out %d\n" % i for i in range(4)], outs)
        wait_for(lambda: a.call("ping")["store"]["writable"], what="writable again")
        agree(a, s, db)
        view = harness.scratch_dir("replgate-view-")
        os.symlink(db, os.path.join(view, "replgate.db"))
        v = subprocess.run([os.path.join(os.environ.get("REPLGATE_BIN", "bin"), "replgate"),
                            "verify", "--dir", view], capture_output=True, text=True)
        check(v.returncode == 0, v.stdout + v.stderr)
        c.close()
        a.close()
    finally:
        if s:
            check(not s.stop(), "sanitizer report")
        subprocess.run(["umount", "-l", mnt])


TRIGGER = ("CREATE TRIGGER inject_fault BEFORE UPDATE OF state ON requests "
           "WHEN NEW.state = '%s' BEGIN SELECT RAISE (ABORT, 'injected'); END")


@test
def a_refused_start_leaves_the_request_queued_until_it_commits():
    s = Stack(worker_args=UID)
    try:
        c = s.client()
        check(c.run("1", session="inj")["outcome"] == "ok", "warm up")
        s.sql(TRIGGER % "running")
        r = c.call("submit", lang="python", code="print('late')", session="inj")
        check(r["ok"] and r["state"] == "queued", r)
        p = until_down(c)
        check("running" not in str(states(s)) and p["stats"]["queued"] == 1, (p, states(s)))
        agree(c, s)
        lift(s, c, r, ["DROP TRIGGER inject_fault"], "late\n")
        c.close()
    finally:
        check(not s.stop(), "sanitizer report")


@test
def a_refused_result_is_kept_and_written_later():
    s = Stack(worker_args=UID)
    try:
        c = s.client()
        check(c.run("1", session="inj")["outcome"] == "ok", "warm up")
        s.sql(TRIGGER % "done")
        r = c.call("submit", lang="python", code="print('kept')", session="inj", wait_ms=1500)
        check(r["ok"] and r["state"] == "running", r)
        p = agree(c, s)
        check(p["stats"]["running"] == 1 and p["store"]["waiting"] >= 1, p)
        lift(s, c, r, ["DROP TRIGGER inject_fault"], "kept\n")
        check(c.run("print('next')", session="inj")["stdout"] == "next\n", "next run")
        c.close()
    finally:
        check(not s.stop(), "sanitizer report")


# A commit that fails although every statement in it succeeded: a deferred foreign key that a
# trigger breaks when the `done` event is appended. SQLite checks it only at the outermost
# COMMIT, so it fails the group the worker's result was written in, not the write itself.
FAIL_COMMIT = ("CREATE TABLE inject (r INTEGER REFERENCES requests (id) DEFERRABLE INITIALLY DEFERRED);"
               "CREATE TRIGGER inject_commit AFTER INSERT ON events WHEN NEW.type = 'done' "
               "BEGIN INSERT INTO inject VALUES (-1); END;")


@test
def a_group_whose_commit_fails_keeps_its_writes():
    """Results arrive in a group that fails to commit: nobody is told `done`, ping and the
    database agree the run is still running, and the result is written once commits work."""
    s = Stack(worker_args=UID)
    try:
        c = s.client()
        check(c.run("1", session="grp")["outcome"] == "ok", "warm up")
        con = sqlite3.connect(s.db, timeout=10)
        con.executescript(FAIL_COMMIT)
        con.close()
        r = c.call("submit", lang="python", code="print('grouped')", session="grp", wait_ms=1500)
        check(r["ok"] and r["state"] == "running", ("answered before its commit", r))
        p = agree(c, s)
        check(p["stats"]["running"] == 1 and p["store"]["waiting"] >= 1, p)
        check("committing a group" in p["store"]["error"], ("the result was not written in a group", p))
        lift(s, c, r, ["DROP TRIGGER inject_commit", "DROP TABLE inject"], "grouped\n")
        check(c.run("print('next')", session="grp")["stdout"] == "next\n", "next run")
        c.close()
    finally:
        check(not s.stop(), "sanitizer report")


def fail_commit_on(event_type):
    """SQL that fails every commit whose transaction appends an event of event_type."""
    return FAIL_COMMIT.replace("'done'", "'%s'" % event_type)


def inject(s, sql):
    con = sqlite3.connect(s.db, timeout=10)
    con.executescript(sql)
    con.close()


def lift_commit_failure(s, c):
    s.sql("DROP TRIGGER inject_commit")
    s.sql("DROP TABLE inject")
    wait_for(lambda: c.call("ping")["store"]["writable"], what="writable again")


@test
def a_client_pass_whose_commit_fails_answers_busy_and_undoes_itself():
    """The writes of a pass over the client socket commit together. When that commit fails:
    a submit is answered `busy` (once, with its rid, a long poll and a stream included) and
    left no row; a cancel is answered `busy` and its request stays queued, in memory as in
    the database, and later runs in its session's order."""
    s = Stack(worker_args=UID)
    try:
        c = s.client()
        check(c.run("1", session="cp")["outcome"] == "ok", "warm up")
        first = c.call("submit", lang="python", session="cp", code="import time; time.sleep(3)")
        second = c.call("submit", lang="python", session="cp", code="print('second')")
        third = c.call("submit", lang="python", session="cp", code="print('third')")
        check(second["state"] == "queued" and third["state"] == "queued", (second, third))
        before = s.sql("SELECT count(*) FROM requests")[0][0]
        inject(s, fail_commit_on("cancelled"))
        r = c.call("cancel", id=second["id"])
        check(r and not r["ok"] and r["error"]["code"] == "busy", ("a cancel that did not commit", r))
        p = agree(c, s)
        check(p["stats"]["queued"] == 2 and "committing a group" in p["store"]["error"], p)
        lift_commit_failure(s, c)
        inject(s, fail_commit_on("received"))
        for extra in ({}, {"wait_ms": 3000}, {"wait_ms": 3000, "stream": True}):
            c.n += 1
            rid = "sub%d" % c.n
            c.send_raw(json.dumps(dict({"op": "submit", "rid": rid, "lang": "python",
                                        "session": "cp-new", "code": "print('never')"}, **extra)))
            got = c.recv(10)
            check(got and got.get("rid") == rid and not got["ok"]
                  and got["error"]["code"] == "busy", ("a submit that did not commit", extra, got))
            lift_commit_failure(s, c)
            inject(s, fail_commit_on("received"))
        lift_commit_failure(s, c)
        check(s.sql("SELECT count(*) FROM requests")[0][0] == before, "a row of a refused submit")
        check(c.recv(0.5) is None, "a second answer to a refused submit")
        # The cancelled-then-restored request runs, before the one queued after it.
        r2 = c.call("await", id=second["id"], timeout_ms=10000, timeout=15)
        r3 = c.call("await", id=third["id"], timeout_ms=10000, timeout=15)
        check(r2["state"] == "done" and r2["stdout"] == "second\n", r2)
        check(r3["state"] == "done" and r3["stdout"] == "third\n", r3)
        order = [row[0] for row in s.sql("SELECT request_id FROM events WHERE type = 'running' "
                                          "AND request_id IN (%d, %d) ORDER BY seq"
                                          % (second["id"], third["id"]))]
        check(order == [second["id"], third["id"]], ("session order", order))
        check(c.call("await", id=first["id"], timeout_ms=10000, timeout=15)["state"] == "done", "first")
        r = c.call("submit", lang="python", session="cp-new", code="print('now')", wait_ms=10000)
        check(r["ok"] and r["stdout"] == "now\n", r)
        agree(c, s)
        c.close()
    finally:
        check(not s.stop(), "sanitizer report")


@test
def starts_whose_commit_fails_are_not_sent_and_run_later_once_in_order():
    """The starts of a pass commit with the rest of the pass, before any `run` is sent. When
    that commit fails, no worker gets the runs: they stay queued (ping and the database
    agree) and run once, in their session's order, when commits work again."""
    s = Stack(worker_args=UID)
    try:
        c = s.client()
        check(c.run("n = 0", session="st")["outcome"] == "ok", "warm up")
        c.call("submit", lang="python", session="st", code="import time; time.sleep(1)")
        a = c.call("submit", lang="python", session="st", code="n += 1; print(n)")
        b = c.call("submit", lang="python", session="st", code="n *= 10; print(n)")
        check(a["state"] == "queued" and b["state"] == "queued", (a, b))
        inject(s, fail_commit_on("running"))
        p = until_down(c)
        check("committing a group" in p["store"]["error"], p)
        # The sleep's result may have shared the failed commit: it is kept, and written
        # alone on the next try; the starts keep failing.
        wait_for(lambda: (lambda p: p["stats"]["running"] == 0 and not p["store"]["writable"])(
            c.call("ping")), what="the result written, the starts not")
        p = agree(c, s)
        check(p["stats"]["queued"] == 2 and p["stats"]["running"] == 0, p)
        time.sleep(1.0)                        # a run sent anyway would have run meanwhile
        lift_commit_failure(s, c)
        ra = c.call("await", id=a["id"], timeout_ms=10000, timeout=15)
        rb = c.call("await", id=b["id"], timeout_ms=10000, timeout=15)
        check(ra["state"] == "done" and ra["stdout"] == "1\n", ("ran more than once?", ra))
        check(rb["state"] == "done" and rb["stdout"] == "10\n", rb)
        agree(c, s)
        # A submit whose session is free starts in the pass that records it: one commit for
        # the submit, its decision and its start. When that commit fails, nothing of it is.
        inject(s, fail_commit_on("running"))
        r = c.call("submit", lang="python", session="idle", code="print('x')", wait_ms=3000)
        check(r and not r["ok"] and r["error"]["code"] == "busy", ("one commit for all three", r))
        check(s.sql("SELECT count(*) FROM requests WHERE session = 'idle'")[0][0] == 0, "a row left")
        lift_commit_failure(s, c)
        r = c.call("submit", lang="python", session="idle", code="print('x')", wait_ms=10000)
        check(r["ok"] and r["stdout"] == "x\n", r)
        agree(c, s)
        v = subprocess.run([os.path.join(os.environ.get("REPLGATE_BIN", "bin"), "replgate"),
                            "verify", "--dir", s.dir], capture_output=True, text=True)
        check(v.returncode == 0, v.stdout + v.stderr)
        c.close()
    finally:
        check(not s.stop(), "sanitizer report")


@test
def a_refused_decision_is_made_later():
    """The submit is recorded but its decision cannot be: it is acknowledged as `received`,
    counted so by ping, and decided (then run) once the database takes the write."""
    s = Stack(worker_args=UID)
    try:
        c = s.client()
        check(c.run("1", session="dec")["outcome"] == "ok", "warm up")
        s.sql(TRIGGER % "queued")
        r = c.call("submit", lang="python", code="print('decided')", session="dec")
        check(r["ok"] and r["state"] == "received", r)
        p = agree(c, s)
        check(p["stats"]["received"] == 1 and not p["store"]["writable"], p)
        r2 = c.call("submit", lang="python", code="1", session="dec")
        check(not r2["ok"] and r2["error"]["code"] == "busy", r2)
        lift(s, c, r, ["DROP TRIGGER inject_fault"], "decided\n")
        c.close()
    finally:
        check(not s.stop(), "sanitizer report")


@test
def an_unwritable_database_file_stops_work_without_growing_the_wal():
    """The main file turns immutable at run time: commits would still land in the WAL, which
    no checkpoint could empty. The broker stops taking work, says so, and the WAL stays put."""
    s = Stack(worker_args=UID)
    imm = False
    try:
        c = s.client()
        check(c.run("1", session="imm")["outcome"] == "ok", "warm up")
        imm = subprocess.run(["chattr", "+i", s.db]).returncode == 0
        check(imm, "chattr +i (needs root on ext4/xfs/tmpfs)")
        c.run("2", session="imm")            # a commit for the checkpointer to fail on
        p = until_down(c)
        check("checkpoint" in p["store"]["error"], p)
        wal = os.path.getsize(s.db + "-wal")
        for i in range(200):
            r = c.call("submit", lang="python", code="'%s'" % ("z" * 2000), session="imm")
            check(r and not r["ok"] and r["error"]["code"] == "busy", r)
        check(os.path.getsize(s.db + "-wal") == wal, "the WAL grew while nothing was accepted")
        subprocess.run(["chattr", "-i", s.db])
        imm = False
        wait_for(lambda: c.call("ping")["store"]["writable"], what="writable again")
        check(c.run("3", session="imm")["value"] == "3", "runs again")
        c.close()
    finally:
        if imm:
            subprocess.run(["chattr", "-i", s.db])
        check(not s.stop(), "sanitizer report")


@test
def a_broker_that_stalls_gets_its_worker_back():
    """The broker stops (SIGSTOP) for longer than a worker waits for its heartbeats: the
    worker drops the quiet connection, starts a new one and announces itself on it, and once
    the broker goes on, snippets run again."""
    s = Stack()
    stopped = False
    try:
        c = s.client()
        check(c.run("1", session="before")["outcome"] == "ok", "warm up")
        os.kill(s.broker.pid, signal.SIGSTOP)
        stopped = True
        time.sleep(4.5)                     # past the worker's 3 s of silence
        os.kill(s.broker.pid, signal.SIGCONT)
        stopped = False
        log = os.path.join(s.dir, "worker-w0.log")
        wait_for(lambda: "silent for" in open(log).read(), what="the worker's reconnect")

        def runs():
            r = c.call("submit", lang="python", code="6 * 7", session="after", wait_ms=5000, timeout=10)
            return r and r.get("ok") and r.get("value") == "42"
        wait_for(runs, timeout=30, what="a snippet after the stall")
        check(s.workers[0].poll() is None, "the worker died")
        c.close()
    finally:
        if stopped:
            os.kill(s.broker.pid, signal.SIGCONT)
        check(not s.stop(), "sanitizer report")


if __name__ == "__main__":
    run_all("faults")
