"""tests/test_cpu.py: a session's CPU bandwidth (issue 10). Background busy loops left by a
snippet stay charged to the session's cgroup and held to its quota between snippets: one CPU
by default, more when a policy rule's limits ask for it, never above the worker's
--max-cpus. session_cpu_ms, the session's running total, is read from the worker's own
results through a stand-in broker (the real broker does not store it yet).
Rates are measured on the host from the slot cgroups' usage counters, with slack and with
the session's CPU weights raised meanwhile, so the bounds hold on a loaded host too."""
import glob, json, os, time
import zmq
from harness import Stack, check, run_all, test, read_cert, free_port_pair, SLOW

UID_BASE = "251000"
CG = "/sys/fs/cgroup"
# Each snippet is a bash of its own: later snippets find the loops by the pids kept in `loops`.
LOOPS = "loops=(); for i in 1 2 3; do ( while :; do :; done ) & loops+=($!); done; echo started"
POLICY = {"version": 1, "rules": [
    {"name": "two", "match": {"session": "^two-"}, "action": "allow", "limits": {"cpus": 2}},
    {"name": "many", "match": {"session": "^many-"}, "action": "allow", "limits": {"cpus": 3}},
    {"name": "rest", "action": "allow"}]}

S = None


def shared():
    global S
    if S is None:
        S = Stack(policy=POLICY, worker_args=["--uid-base", UID_BASE, "--max-cpus", "2"])
    return S


def v1():
    return os.path.isdir(os.path.join(CG, "cpuacct"))


def boxes(worker_pid):
    """The worker's slot cgroups: {box name: directory of its CPU counter}."""
    base = os.path.join(CG, "cpuacct" if v1() else "", "replgate", "w%d" % worker_pid)
    return {os.path.basename(d): d for d in glob.glob(os.path.join(base, "box*"))}


def usage_ns(d):
    try:
        if v1():
            return int(open(os.path.join(d, "cpuacct.usage")).read())
        for line in open(os.path.join(d, "cpu.stat")):
            if line.startswith("usage_usec "):
                return int(line.split()[1]) * 1000
    except OSError:
        pass
    return 0


def hottest(worker_pid, seconds):
    """(box, CPU-seconds per wall second) of the box that used the most CPU over the window."""
    dirs = boxes(worker_pid)
    t0, u0 = time.monotonic(), {b: usage_ns(d) for b, d in dirs.items()}
    time.sleep(seconds)
    t1, u1 = time.monotonic(), {b: usage_ns(d) for b, d in dirs.items()}
    box = max(dirs, key=lambda b: u1[b] - u0[b])
    return box, (u1[box] - u0[box]) / 1e9 / (t1 - t0)


def cpu_dir(worker_pid, box):
    return os.path.join(CG, "cpu" if v1() else "", "replgate", "w%d" % worker_pid, box)


def quota(worker_pid, box):
    """The box's CPU quota in microseconds per 100 ms period."""
    d = cpu_dir(worker_pid, box)
    if v1():
        return int(open(os.path.join(d, "cpu.cfs_quota_us")).read())
    return int(open(os.path.join(d, "cpu.max")).read().split()[0])


def weights(worker_pid, box, times=None):
    """The CPU weights of the box and its ancestors up to replgate/; with times, sets each to
    that multiple of the default (or to the values of a dict times) and returns the old ones."""
    name, default = ("cpu.shares", 1024) if v1() else ("cpu.weight", 100)
    chain = [cpu_dir(worker_pid, box)]
    chain += [os.path.dirname(chain[0]), os.path.dirname(os.path.dirname(chain[0]))]
    old = {d: open(os.path.join(d, name)).read().strip() for d in chain}
    for d in chain if times is not None else ():
        value = times[d] if isinstance(times, dict) else str(default * times)
        open(os.path.join(d, name), "w").write(value)
    return old


def procs(d):
    return sorted(open(os.path.join(d, "cgroup.procs")).read().split())


def start_loops(session):
    c = shared().client()
    try:
        r = c.run(LOOPS, lang="shell", session=session)
        check(r["outcome"] == "ok" and r["stdout"] == "started\n" and r["sandbox"] != "none", r)
    finally:
        c.close()


def stop_loops(session):
    c = shared().client()
    try:
        r = c.run('kill "${loops[@]}" && echo stopped', lang="shell", session=session)
        check(r["outcome"] == "ok" and r["stdout"] == "stopped\n", r)
    finally:
        c.close()


def with_loops(session, measure):
    """Starts 3 background busy loops in session, then measure(worker pid, box). At the
    default weights the worker's groups compete like one process each, so on a busy host the
    share, not the quota, would cap the session: the weights are raised meanwhile."""
    s = shared()
    pid = s.workers[0].pid
    start_loops(session)
    box, _ = hottest(pid, 0.2)
    old = weights(pid, box, 16)
    try:
        measure(pid, box)
    finally:
        weights(pid, box, old)
        stop_loops(session)


@test
def background_loops_are_held_to_one_cpu():
    def measure(pid, box):
        hot, rate = hottest(pid, 2.0)
        check(hot == box, (hot, box))
        check(rate <= 1.2, "3 busy loops used %.2f CPU-s per second, quota is 1 CPU" % rate)
        check(rate >= 0.3, "the loops were not charged to the slot's cgroup (%.2f/s)" % rate)
        check(quota(pid, box) == 100000, quota(pid, box))
        # every controller holds the same processes: init, bash, the 3 loops (at least)
        acct = procs(boxes(pid)[box])
        check(len(acct) >= 5 and procs(cpu_dir(pid, box)) == acct, (acct, procs(cpu_dir(pid, box))))
    with_loops("one-a", measure)
    # inside, the cpu group is the cgroup namespace's root like the others: nothing to see
    c = shared().client()
    r = c.run("cat /proc/self/cgroup", lang="shell", session="one-a")
    c.close()
    check(r["outcome"] == "ok" and "replgate" not in r["stdout"], r)
    check(not v1() or ":cpu:/\n" in r["stdout"], r["stdout"])


@test
def a_policy_limit_of_two_cpus_lets_the_session_use_more():
    def measure(pid, box):
        rates = []
        for _ in range(4):          # a loaded host may steal a window; one good one is proof
            rates.append(hottest(pid, 1.0)[1])
            if rates[-1] > 1.3:
                break
        check(max(rates) > 1.3, "with cpus 2 the loops got only %s CPU-s per second" % rates)
        check(quota(pid, box) == 200000, quota(pid, box))
    with_loops("two-a", measure)


@test
def a_limit_above_max_cpus_is_an_error_naming_it():
    c = shared().client()
    try:
        r = c.run("echo never", lang="shell", session="many-a")
        check(r["outcome"] == "error" and r["error_name"] == "WorkerError", r)
        check("limits.cpus" in r["error_value"] and "2" in r["error_value"], r)
        check(r["stdout"] == "", r)
    finally:
        c.close()


@test
def policy_check_validates_cpus():
    s = shared()
    for cpus, ok in ((0.5, True), (2, True), (0, False), ("2", False), (5000, False)):
        path = s.write_policy({"version": 1, "rules": [
            {"name": "r", "action": "allow", "limits": {"cpus": cpus}}]}, "cpus.json")
        p = s.cli("policy", "check", path)
        check((p.returncode == 0) == ok, (cpus, p.returncode, p.stdout, p.stderr))
        if not ok:
            check("'cpus'" in p.stderr + p.stdout, (cpus, p.stderr))
    path = s.write_policy({"version": 1, "rules": [
        {"name": "r", "action": "allow", "limits": {"cpu": 1}}]}, "cpus.json")
    p = s.cli("policy", "check", path)
    check(p.returncode != 0 and "cpus" in p.stderr + p.stdout, p.stderr)


class FakeBroker:
    """The broker's side of the worker protocol, with the broker's own key pair."""

    def __init__(self, stack):
        cert = read_cert(os.path.join(stack.dir, "keys", "broker.cert"))
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.curve_server = True
        self.sock.curve_secretkey = cert["secret"].encode()
        self.sock.curve_publickey = cert["public"].encode()
        self.endpoint = "tcp://127.0.0.1:%d" % free_port_pair()
        self.sock.bind(self.endpoint)
        self.peer = None
        self.n = 0

    def recv(self, op, timeout=10.0):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            if self.sock.poll(200):
                self.peer, frame = self.sock.recv_multipart()
                msg = json.loads(frame)
                if msg.get("op") == op:
                    return msg
            if self.peer:               # keep the worker from declaring us dead
                self.send(op="heartbeat")
        raise AssertionError("no %s from the worker" % op)

    def send(self, **msg):
        self.sock.send_multipart([self.peer, json.dumps(msg).encode()])

    def run(self, code, session, **limits):
        self.n += 1
        self.send(op="run", id=self.n, owner="agent", session=session, lang="shell", code=code,
                  limits=dict({"timeout_ms": 10000}, **limits))
        r = self.recv("result")
        check(r["id"] == self.n, r)
        return r

    def idle(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.send(op="heartbeat")
            time.sleep(min(0.5, max(0, end - time.monotonic())))


@test
def session_cpu_ms_counts_what_runs_between_snippets():
    s = Stack(workers=0)
    fake = None
    try:
        fake = FakeBroker(s)
        s.start_worker("fake", extra=["--broker", fake.endpoint, "--uid-base", UID_BASE,
                                      "--slots", "1", "--warm", "0", "--prepare", "0",
                                      "--max-cpus", "2"])
        fake.recv("ready")
        r1 = fake.run("( while :; do :; done ) & echo started", "bg")
        check(r1["outcome"] == "ok" and r1["session_cpu_ms"] >= r1["cpu_ms"], r1)
        t0 = time.monotonic()
        fake.idle(1.5)
        r2 = fake.run("true", "bg")
        between = r2["session_cpu_ms"] - r1["session_cpu_ms"]
        wall_ms = (time.monotonic() - t0) * 1000
        check(between >= 0.25 * wall_ms and between <= 1.2 * wall_ms + 100,
              "between snippets the loop used %.0f ms of %.0f ms" % (between, wall_ms))
        check(r2["cpu_ms"] < between, r2)
        # the error names the limit; the session keeps running
        r3 = fake.run("true", "bg", cpus=3)
        check(r3["outcome"] == "error" and "limits.cpus" in r3["error"]["value"], r3)
        r3 = fake.run("true", "bg", cpus="1")
        check(r3["outcome"] == "error" and "limits.cpus" in r3["error"]["value"], r3)
        # a new session in the same (only) slot starts its own total
        fake.send(op="close", owner="agent", session="bg", lang="shell")
        r4 = fake.run("true", "fresh", cpus=0.5)
        check(r4["outcome"] == "ok" and r4["session_reset"] is False, r4)
        check(r4["session_cpu_ms"] < 1000 * SLOW, r4)
    finally:
        if fake:
            fake.sock.close()
        bad = s.stop()
        check(not bad, bad)


if __name__ == "__main__":
    import sys
    rc = run_all("test_cpu")
    if S:
        bad = S.stop()
        if bad:
            print("sanitizer reports:\n" + "\n".join(bad))
            rc = 1
    sys.exit(rc)
