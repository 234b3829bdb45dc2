"""tests/test_fleet.py: many workers (issue 16): placement by label without head-of-line
blocking, why a request waits and its end when no worker has its labels, the `workers`
listing, draining a worker, a worker killed mid-run and one that comes back, a key that is
not a worker's on the worker socket, and a worker in its own network namespace reaching the
broker over TCP like a remote host."""
import json, os, queue, re, subprocess, threading, time
from harness import BIN, Client, Skip, Stack, check, proc_env, run_all, test, wait_for, SLOW

UID_BASE = 299000               # each real worker gets its own range above it


def uid(n):
    return ["--uid-base", str(UID_BASE + 20 * n)]


GPU_POLICY = {"version": 1, "rules": [
    {"name": "gpu", "match": {"session": "^gpu-"}, "action": "allow", "placement": {"labels": ["gpu"]}},
    {"name": "gpu-code", "match": {"code": "use_gpu"}, "action": "allow", "placement": {"labels": ["gpu"]}},
    {"name": "all", "action": "allow"}]}


class FakeWorker:
    """A key speaking the worker protocol by hand, from a thread that owns its socket: it
    heartbeats every 500 ms (so it stays live while the test waits) and queues what the
    broker sends."""

    def __init__(self, stack, name, labels=None, memory_mb=None, key="worker", slots=4):
        # a client's DEALER with that key pair, on the worker endpoint
        self.sock = Client(stack.workers_ep, stack.key(key), os.path.join(stack.dir, "keys", "broker.cert")).sock
        self.inbox, self.outbox = queue.Queue(), queue.Queue()
        self.alive = True
        ready = {"op": "ready", "name": name, "slots": slots, "sandbox": "none", "sessions": [], "running": []}
        if labels is not None:
            ready["labels"] = labels
        if memory_mb is not None:
            ready["memory_mb"] = memory_mb
        self.send(ready)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        beat = 0
        while self.alive:
            while not self.outbox.empty():
                self.sock.send(self.outbox.get())
            if time.time() - beat > 0.5:
                self.sock.send(b'{"op":"heartbeat"}')
                beat = time.time()
            if self.sock.poll(50):
                m = json.loads(self.sock.recv())
                if m.get("op") != "heartbeat":
                    self.inbox.put(m)
        self.sock.close()

    def send(self, msg):
        self.outbox.put(msg if isinstance(msg, bytes) else json.dumps(msg).encode())

    def next(self, timeout=10):
        """The next message from the broker (not a heartbeat), or None."""
        try:
            return self.inbox.get(timeout=timeout * SLOW)
        except queue.Empty:
            return None

    def result(self, run, **fields):
        msg = {"op": "result", "id": run["id"], "session": run["session"], "lang": run["lang"],
               "owner": run["owner"], "outcome": "ok", "stdout": "", "stderr": ""}
        msg.update(fields)
        self.send(msg)

    def close(self):
        """Stops heartbeating and closes the socket: the broker finds it silent."""
        self.alive = False
        self.thread.join()


def workers(c):
    r = c.call("workers")
    check(r and r["ok"], r)
    return {w["name"]: w for w in r["workers"]}


def events(s, kind):
    return [(a, json.loads(d)) for a, d in s.sql("select actor, data from events where type = ? order by seq", kind)]


def teardown(s, *things):
    """Closes the clients and fake workers given (None is skipped), stops the stack and fails
    on a sanitizer report."""
    for thing in things:
        if thing:
            thing.close()
    check(not s.stop(), "sanitizer")


def submit(c, session, code, **kw):
    r = c.call("submit", lang="python", session=session, code=code, **kw)
    check(r and r["ok"], r)
    return r


def done(c, rid, timeout=30):
    r = c.call("await", id=rid, timeout_ms=int(timeout * 1000 * SLOW), timeout=timeout + 5)
    check(r and r["state"] in ("done", "lost", "cancelled"), r)
    return r


@test
def placement_by_label_without_head_of_line_blocking():
    s = Stack(workers=0, slots=2, policy=GPU_POLICY)
    s.start_worker("plain", extra=uid(0))
    s.wait_workers(1)
    c, admin = s.client(), s.client("admin")
    fw = None
    try:
        gpu = submit(c, "gpu-1", "train()")
        st = c.call("status", id=gpu["id"])
        check(st["state"] == "queued" and st["waiting"] == "no live worker has labels gpu", st)
        stats = c.call("ping")["stats"]
        check(stats["unplaceable"] == 1 and stats["unplaceable_by_labels"] == {"gpu": 1}, stats)
        # a label-less snippet behind it runs at once on the plain worker
        r = done(c, submit(c, "s1", "6 * 7")["id"])
        check(r["state"] == "done" and r["value"] == "42" and r["worker"] == "plain", r)
        check(c.call("status", id=gpu["id"])["state"] == "queued", "the gpu request ran on a plain worker")
        # a worker with the label takes it; the run's limits do not carry the labels
        fw = FakeWorker(s, "gpu1", labels=["gpu", "big-mem"], memory_mb=65536)
        run = fw.next()
        check(run and run["op"] == "run" and run["id"] == gpu["id"] and "labels" not in run["limits"], run)
        fw.result(run, value="1")
        r = done(c, gpu["id"])
        check(r["state"] == "done" and r["worker"] == "gpu1", r)
        check(json.loads(s.sql("select limits from requests where id = ?", gpu["id"])[0][0])["labels"] == ["gpu"],
              "labels not stored with the request")
        check("waiting" not in c.call("status", id=gpu["id"]), "a finished request says it waits")
        check(c.call("ping")["stats"]["unplaceable"] == 0, "still counted")
        # the fleet as the admin sees it
        ws = workers(admin)
        g, p = ws["gpu1"], ws["plain"]
        check(g["labels"] == ["gpu", "big-mem"] and g["memory_mb"] == 65536 and g["state"] == "live"
              and g["address"] == "127.0.0.1" and g["sandbox"] == "none" and g["sessions"] == 1
              and g["slots"] == 4 and g["running"] == 0 and g["last_heartbeat"].endswith("Z"), g)
        check(p["labels"] == [] and p["memory_mb"] > 0 and p["sessions"] == 1 and p["slots"] == 2, p)
        joined = [d for a, d in events(s, "worker_joined") if d["worker"] == "gpu1"]
        check(joined and joined[0]["labels"] == ["gpu", "big-mem"] and joined[0]["memory_mb"] == 65536, joined)
        r = c.call("workers")
        check(not r["ok"] and r["error"]["code"] == "forbidden", r)
        # a session on plain whose next snippet needs gpu moves there, starting over
        moved = submit(c, "s1", "use_gpu = 1")
        run = fw.next()
        check(run and run["id"] == moved["id"] and run["session"] == "s1", run)
        fw.result(run)
        r = done(c, moved["id"])
        check(r["worker"] == "gpu1" and r["session_reset"] and r["reset_reason"].startswith("moved:")
              and "labels gpu" in r["reset_reason"], r)
        ev = [(a, d) for a, d in events(s, "session_closed") if d["session"] == "s1"]
        check(len(ev) == 1 and ev[0][0] == "broker" and ev[0][1]["worker"] == "plain", ev)
        check(workers(admin)["plain"]["sessions"] == 0, "s1 still on plain")
        check(s.cli("verify").returncode == 0, "verify")
    finally:
        teardown(s, c, admin, fw)


@test
def a_granted_run_carries_its_network_beside_its_limits():
    # issue 15: the rule's grant, normalised, is the run's own `network`; its egress limits
    # stay in `limits`; a run without a grant has no `network` at all
    policy = {"version": 1, "rules": [
        {"name": "net", "match": {"code": "FETCH"}, "action": "allow", "placement": {"labels": ["net"]},
         "limits": {"egress_connections": 3, "egress_bytes": 4096},
         "network": {"allow": ["PyPI.org.:443", "[2001:DB8::1]:8443"], "methods": ["GET", "CONNECT"]}},
        {"name": "all", "action": "allow"}]}
    s = Stack(workers=0, policy=policy)
    c = s.client()
    fw = FakeWorker(s, "net1", labels=["net"])
    try:
        s.wait_workers(1)
        r = submit(c, "n", "FETCH = 1")
        run = fw.next()
        check(run and run["op"] == "run" and run["id"] == r["id"], run)
        check(run["network"] == {"allow": ["pypi.org:443", "[2001:db8::1]:8443"], "methods": ["GET", "CONNECT"]}
              and "network" not in run["limits"] and "labels" not in run["limits"]
              and run["limits"]["egress_connections"] == 3 and run["limits"]["egress_bytes"] == 4096, run)
        fw.result(run)
        check(done(c, r["id"])["state"] == "done", "the granted run ended")
        stored = json.loads(s.sql("select limits from requests where id = ?", r["id"])[0][0])
        check(stored["network"] == run["network"] and stored["labels"] == ["net"], stored)
        r = submit(c, "m", "1 + 1")
        run = fw.next()
        check(run and run["id"] == r["id"] and "network" not in run, run)
        fw.result(run)
        done(c, r["id"])
    finally:
        teardown(s, c, fw)


@test
def a_request_no_worker_can_take_is_cancelled_after_the_wait():
    s = Stack(workers=0, policy=GPU_POLICY, broker_args=["--placement-wait-ms", "1500"])
    c = s.client()
    fw = None
    try:
        plain = submit(c, "s1", "1")            # no worker at all: label-less requests wait on
        gpu = submit(c, "gpu-1", "train()")
        t0 = time.time()
        st = c.call("status", id=plain["id"])
        check(st["state"] == "queued" and st["waiting"] == "no live worker", st)
        r = done(c, gpu["id"], timeout=10)
        check(r["state"] == "cancelled" and 1.0 <= time.time() - t0 <= 6 * SLOW, (r, time.time() - t0))
        ev = s.sql("select actor, json_extract(data, '$.message') from events where request_id = ? "
                   "and type = 'cancelled'", gpu["id"])
        check(ev and ev[0][0] == "broker" and "labels gpu" in ev[0][1] and "--placement-wait-ms" in ev[0][1], ev)
        time.sleep(0.5)
        check(c.call("status", id=plain["id"])["state"] == "queued", "a label-less request was cancelled")
        # while a worker has the labels, nothing is cancelled however long it waits
        fw = FakeWorker(s, "gpu1", labels=["gpu"], slots=1)
        run = fw.next()
        check(run and run["id"] == plain["id"], run)
        gpu2 = submit(c, "gpu-2", "train()")    # waits for gpu1's only slot
        time.sleep(2.5 * SLOW)
        check(c.call("status", id=gpu2["id"])["state"] == "queued", "cancelled although a worker has gpu")
        fw.result(run)
        run = fw.next()
        check(run and run["id"] == gpu2["id"], run)
        check(s.cli("verify").returncode == 0, "verify")
    finally:
        teardown(s, c, fw)


@test
def drain_finishes_runs_and_closes_idle_sessions():
    s = Stack(workers=0)
    s.start_worker("wa", extra=uid(0))
    s.wait_workers(1)
    c, admin = s.client(), s.client("admin")
    fw = None
    try:
        check(done(c, submit(c, "idle", "x = 41")["id"])["worker"] == "wa", "not on wa")
        busy = submit(c, "busy", "import time; time.sleep(3); 'finished'")
        wait_for(lambda: c.call("status", id=busy["id"])["state"] == "running", what="busy runs")
        s.start_worker("wb", extra=uid(1))
        s.wait_workers(2)
        for who, fields, code in (("agent", {"name": "wa"}, "forbidden"), ("admin", {"name": "nope"}, "not_found")):
            cl = s.client(who)
            r = cl.call("drain", **fields)
            cl.close()
            check(not r["ok"] and r["error"]["code"] == code, r)
        r = admin.call("drain", name="wa")
        check(r["ok"] and r["worker"]["name"] == "wa" and r["worker"]["state"] == "draining", r)
        # the idle session is closed now, on the record with the admin as actor
        closed = wait_for(lambda: [(a, d) for a, d in events(s, "session_closed") if d["session"] == "idle"],
                          what="idle session closed")
        check(closed[0][0] == "admin" and closed[0][1]["reason"] == "drained" and closed[0][1]["worker"] == "wa", closed)
        check(events(s, "worker_draining")[0][0] == "admin", "no worker_draining event")
        check(not events(s, "worker_drained"), "drained while a snippet runs")
        # the running snippet finishes there; then its session is closed too, and wa is empty
        r = done(c, busy["id"])
        check(r["state"] == "done" and r["value"] == "'finished'" and r["worker"] == "wa", r)
        wait_for(lambda: events(s, "worker_drained"), what="worker_drained")
        check(events(s, "worker_drained")[0] == ("admin", {"worker": "wa"}), events(s, "worker_drained"))
        check([d["reason"] for a, d in events(s, "session_closed") if d["session"] == "busy"] == ["drained"],
              "busy session not closed after its run")
        wa = workers(admin)["wa"]
        check(wa["state"] == "draining" and wa["drained"] is True and wa["sessions"] == 0, wa)
        wait_for(lambda: "drained: nothing runs here" in open(os.path.join(s.dir, "worker-wa.log")).read(),
                 what="wa was told it is drained")
        # the idle session's next snippet starts over on wb and says why
        r = done(c, submit(c, "idle", "x")["id"])
        check(r["worker"] == "wb" and r["session_reset"] and "drained" in r["reset_reason"]
              and r["error_name"] == "NameError", r)
        check(done(c, submit(c, "new", "1")["id"])["worker"] == "wb", "a new session went to wa")
        # the messages themselves, seen by a worker: drain at once, drained once it is empty
        fw = FakeWorker(s, "fk", memory_mb=1 << 30)   # more memory than any host: new sessions prefer it
        wait_for(lambda: "fk" in workers(admin), what="fk joined")
        f1 = submit(c, "f1", "1")
        run = fw.next()
        check(run and run["op"] == "run" and run["id"] == f1["id"], run)
        check(admin.call("drain", name="fk")["ok"], "drain fk")
        m = fw.next()
        check(m == {"op": "drain"}, m)
        check(fw.next(timeout=1) is None, "drained before its run ended")
        fw.result(run)
        check(fw.next() == {"op": "close", "owner": "agent", "session": "f1", "lang": "python"}, "no close")
        check(fw.next() == {"op": "drained"}, "no drained")
        check(s.cli("verify").returncode == 0, "verify")
    finally:
        teardown(s, c, admin, fw)


@test
def a_real_worker_offers_labels_and_memory_and_leaves_once_drained():
    s = Stack(workers=0, slots=2, policy=GPU_POLICY)
    s.start_worker("plain", extra=uid(0))
    gpu = s.start_worker("gpu-box", extra=uid(1) + ["--labels", "gpu,big-mem", "--offer-memory-mb", "4096",
                                                  "--exit-when-drained"])
    s.wait_workers(2)
    c, admin = s.client(), s.client("admin")
    try:
        listed = workers(admin)
        check(listed["gpu-box"]["labels"] == ["gpu", "big-mem"] and listed["gpu-box"]["memory_mb"] == 4096, listed)
        check(listed["plain"]["labels"] == [] and listed["plain"]["memory_mb"] > 0, listed["plain"])
        r = done(c, submit(c, "gpu-1", "import os; os.getuid()")["id"])
        check(r["state"] == "done" and r["worker"] == "gpu-box", r)
        check(done(c, submit(c, "plain-1", "1")["id"])["state"] == "done", "plain")
        p = s.cli("workers")
        check(p.returncode == 0 and re.search(r"gpu-box\s+127\.0\.0\.1\s+gpu,big-mem\s+0/2\s+4096", p.stdout),
              p.stdout)
        check(len(json.loads(s.cli("workers", "--json").stdout)["workers"]) == 2, "json")
        p = s.cli("workers", "--key", s.key("agent"))
        check(p.returncode == 3 and "forbidden" in p.stderr, (p.returncode, p.stderr))
        p = s.cli("drain", "gpu-box")
        check(p.returncode == 0 and "draining gpu-box" in p.stdout, p.stdout + p.stderr)
        check(gpu.wait(timeout=15 * SLOW) == 0, "the drained worker did not leave with status 0")
        # bad labels are refused at the command line
        p = subprocess.run([os.path.join(BIN, "replgate-worker"), "--key", s.key("worker"), "--server-key",
                            os.path.join(s.dir, "keys", "broker.cert"), "--labels", "gpu,no spaces"],
                           capture_output=True, text=True, timeout=10)
        check(p.returncode == 2 and "--labels" in p.stderr, p.stderr)
    finally:
        teardown(s, c, admin)


@test
def a_killed_worker_loses_its_runs_its_sessions_move_and_it_comes_back():
    s = Stack(workers=0)
    wa = s.start_worker("wa", extra=uid(0))
    s.wait_workers(1)
    c, admin = s.client(), s.client("admin")
    try:
        check(done(c, submit(c, "a", "x = 1")["id"])["worker"] == "wa", "not on wa")
        long = submit(c, "along", "import time; time.sleep(30)")
        wait_for(lambda: c.call("status", id=long["id"])["state"] == "running", what="long runs")
        s.start_worker("wb", extra=uid(1))
        s.wait_workers(2)
        b = done(c, submit(c, "b", "y = 2")["id"])     # wa has a slot less free: wb takes it
        check(b["worker"] == "wb", b)
        wa.kill()
        wa.wait()
        r = done(c, long["id"], timeout=15)
        check(r["state"] == "lost", r)
        lost = wait_for(lambda: workers(admin)["wa"]["state"] == "lost" and workers(admin)["wa"], what="wa lost")
        check("silent" in lost["why"] and lost["running"] == 0 and lost["lost_at"].endswith("Z"), lost)
        # wa's idle session is placed anew on wb and says why; wb's own is undisturbed
        r = done(c, submit(c, "a", "x")["id"])
        check(r["worker"] == "wb" and r["session_reset"] and "wa was lost" in r["reset_reason"]
              and r["error_name"] == "NameError", r)
        r = done(c, submit(c, "b", "y")["id"])
        check(r["worker"] == "wb" and r["value"] == "2" and not r["session_reset"], r)
        # it comes back under the same name: one live entry, and it takes work again
        s.start_worker("wa", extra=uid(0))
        wait_for(lambda: workers(admin)["wa"]["state"] == "live", what="wa back")
        check([w["name"] for w in admin.call("workers")["workers"]].count("wa") == 1, "wa listed twice")
        slow = submit(c, "b", "import time; time.sleep(2)")     # wb busier: wa takes the next
        wait_for(lambda: c.call("status", id=slow["id"])["state"] == "running", what="slow runs")
        check(done(c, submit(c, "c", "3")["id"])["worker"] == "wa", "wa took no work")
        check(len(events(s, "worker_lost")) == 1 and len(events(s, "worker_joined")) == 3, "events")
        check(s.cli("verify").returncode == 0, "verify")
    finally:
        teardown(s, c, admin)


@test
def a_key_that_is_not_a_worker_key_is_refused_on_the_worker_socket():
    s = Stack(workers=0)
    c, admin = s.client(), s.client("admin")
    fake = FakeWorker(s, "evil", key="agent", labels=["gpu"])
    try:
        before = s.sql("select coalesce(max(seq), 0) from events")[0][0]
        r = submit(c, "s", "1")
        time.sleep(1.0)
        check(fake.next(timeout=0.5) is None, "the broker spoke to a non-worker key")
        check(workers(admin) == {} and c.call("ping")["stats"]["workers"] == 0, "listed as a worker")
        st = c.call("status", id=r["id"])
        check(st["state"] == "queued" and st["waiting"] == "no live worker", st)
        rows = wait_for(lambda: s.sql("select actor, json_extract(data, '$.code') from events "
                                      "where type = 'rejected' and seq > ?", before), what="rejected event")
        check(("agent", "forbidden") in rows, rows)
        check(not events(s, "worker_joined"), "a worker joined")
    finally:
        teardown(s, c, admin, fake)


def sh(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True)


@test
def three_workers_one_in_its_own_network_namespace():
    if os.geteuid() != 0 or sh("ip", "netns", "list").returncode != 0 or sh("nsenter", "--version").returncode:
        raise Skip("needs root, `ip netns` (iproute2) and nsenter (util-linux) for a worker with its "
                   "own network namespace")
    tag = "%d" % (os.getpid() % 100000)
    ns, host_if, ns_if = "rgfleet" + tag, "rgfh" + tag, "rgfn" + tag
    octet = os.getpid() % 200 + 20
    host_ip, ns_ip = "10.213.%d.1" % octet, "10.213.%d.2" % octet
    s = None
    try:
        for cmd in (["ip", "netns", "add", ns],
                    ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
                    ["ip", "link", "set", ns_if, "netns", ns],
                    ["ip", "addr", "add", host_ip + "/30", "dev", host_if],
                    ["ip", "link", "set", host_if, "up"],
                    ["ip", "netns", "exec", ns, "ip", "addr", "add", ns_ip + "/30", "dev", ns_if],
                    ["ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up"],
                    ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]):
            r = sh(*cmd)
            if r.returncode != 0:
                raise Skip("cannot set up the network namespace: %s: %s" % (" ".join(cmd), r.stderr.strip()))
        s = Stack(workers=0)
        # the broker's worker endpoint on the veth address, where a remote host would reach it
        s.workers_ep = "tcp://%s:%d" % (host_ip, s.port + 1)
        s.broker_args += ["--workers", s.workers_ep]
        s.kill_broker()
        s.start_broker()
        # nsenter joins the namespace's network alone: `ip netns exec` also remounts /sys for
        # it, which hides the cgroup hierarchies the sandbox needs.
        remote = subprocess.Popen(
            ["nsenter", "--net=/run/netns/" + ns, os.path.join(BIN, "replgate-worker"), "--broker", s.workers_ep,
             "--key", s.key("worker"), "--server-key", os.path.join(s.dir, "keys", "broker.cert"),
             "--name", "remote", "--slots", "2"] + uid(2),
            stdout=subprocess.DEVNULL, stderr=s._log("worker-remote"), env=proc_env())
        s.workers.append(remote)
        s.wait_workers(1)
        c, admin = s.client(), s.client("admin")
        try:
            r = done(c, submit(c, "r", "import socket; socket.gethostname() and 'remote ok'")["id"])
            check(r["state"] == "done" and r["worker"] == "remote" and r["value"] == "'remote ok'", r)
            s.start_worker("wa", extra=uid(0))
            s.start_worker("wb", extra=uid(1))
            s.wait_workers(3)
            ws = workers(admin)
            check(sorted(ws) == ["remote", "wa", "wb"] and all(w["state"] == "live" for w in ws.values()), ws)
            check(ws["remote"]["address"] == ns_ip, ws["remote"])
            check(ws["wa"]["address"] == host_ip and ws["wb"]["address"] == host_ip, ws)
            check(ws["remote"]["sessions"] == 1 and ws["remote"]["slots"] == 2, ws["remote"])
            # its session stays there, over the network
            r = done(c, submit(c, "r", "'again'")["id"])
            check(r["worker"] == "remote" and not r["session_reset"], r)
            check(s.cli("verify").returncode == 0, "verify")
        finally:
            c.close()
            admin.close()
    finally:
        if s:
            check(not s.stop(), "sanitizer")
        sh("ip", "link", "del", host_if)
        sh("ip", "netns", "del", ns)


if __name__ == "__main__":
    raise SystemExit(run_all("fleet"))
