"""tests/test_privsep.py: the worker's privilege separation (issue 12; worker/front.h). The
front, which speaks to the broker, runs under its own uid with no capabilities, no new
privileges, a seccomp filter and an empty root, and holds no secret; either process's death
ends the other; a malformed or out-of-range message from the front ends the worker."""
import ctypes, json, os, re, signal, socket, struct, time
import harness
from harness import Stack, check, run_all, test, wait_for, ASAN, SLOW

UID_BASE = 295000
SLOTS, WARM, PREPARE = 4, 1, 2
FRONT_UID = UID_BASE + SLOTS + 2 * WARM + PREPARE     # one past the last sandbox box
SECRET = "Pv7-" + "privsep-" + "e11c0d3"              # built from pieces: no snippet holds it


def stack(uid_base=UID_BASE):
    path = os.path.join(harness.scratch_dir("replgate-privsep-"), "secrets.json")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        json.dump({"PRIVSEP_TOKEN": SECRET}, f)
    return Stack(slots=SLOTS, worker_args=["--secrets", path, "--uid-base", str(uid_base),
                                           "--warm", str(WARM), "--prepare", str(PREPARE)])


def status(pid):
    out = {}
    for line in open("/proc/%d/status" % pid):
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def front_of(back_pid):
    """The back's child of the same program in our user namespace: its front."""
    exe, ours = os.readlink("/proc/%d/exe" % back_pid), os.readlink("/proc/self/ns/user")
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and int(status(int(p))["PPid"]) == back_pid \
                    and os.readlink("/proc/%s/exe" % p) == exe and os.readlink("/proc/%s/ns/user" % p) == ours:
                return int(p)
        except (OSError, KeyError, ValueError):
            pass
    return None


def alive(pid):
    try:
        return status(pid)["State"][0] != "Z"
    except OSError:
        return False


def memory_holds(pid, needle, chunk=4 << 20):
    """True if needle is in any readable mapping of pid (read as root through /proc/PID/mem),
    mappings of 1 GiB and more aside (AddressSanitizer's shadow: no data of ours)."""
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            lo, hi, perms = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
            if perms[0] != "r" or "[vvar]" in line or "[vsyscall]" in line or hi - lo >= 1 << 30:
                continue
            tail = b""
            for at in range(lo, hi, chunk):
                try:
                    mem.seek(at)
                    data = tail + mem.read(min(chunk, hi - at))
                except OSError:
                    break
                if needle in data:
                    return True
                tail = data[-len(needle):]
    return False


def done(s):
    check(not s.stop(), "sanitizer report")


@test
def front_is_unprivileged_and_holds_no_secret():
    s = stack()
    try:
        back = s.workers[0].pid
        c = s.client()
        r = c.run("import os; os.environ['PRIVSEP_TOKEN']", session="sec")
        check(r["outcome"] == "ok" and SECRET not in json.dumps(r) and "MASKED" in r["value"], r)
        front = front_of(back)
        check(front is not None, "the worker has no front process")
        st = status(front)
        check(st["Uid"].split() == [str(FRONT_UID)] * 4 and st["Gid"].split() == [str(FRONT_UID)] * 4,
              (st["Uid"], st["Gid"]))
        check(st["Groups"] == "", st["Groups"])
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            check(int(st[cap], 16) == 0, (cap, st[cap]))
        check(st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", (st["NoNewPrivs"], st["Seccomp"]))
        check(status(back)["Uid"].split()[0] == "0", "the back is not root")
        # an empty, deleted root: nothing to read, nothing to make (sanitizer builds keep
        # the host's, which LeakSanitizer reads)
        if not ASAN:
            check(os.listdir("/proc/%d/root/" % front) == [], os.listdir("/proc/%d/root/" % front))
            check(os.readlink("/proc/%d/root" % front).endswith("(deleted)"), os.readlink("/proc/%d/root" % front))
        # the secret is in the back's memory (the search works) and nowhere in the front's
        check(SECRET.encode() not in open("/proc/%d/environ" % front, "rb").read(), "secret in environ")
        check(memory_holds(back, SECRET.encode()), "the search finds nothing even in the back")
        check(not memory_holds(front, SECRET.encode()), "the secret is in the front's memory")
        # only the socketpair and stdio are open
        fds = sorted(int(f) for f in os.listdir("/proc/%d/fd" % front))
        check(fds[:4] == [0, 1, 2, 3] and os.readlink("/proc/%d/fd/3" % front).startswith("socket:"),
              [(f, os.readlink("/proc/%d/fd/%d" % (front, f))) for f in fds])
        c.close()
    finally:
        done(s)


@test
def killing_the_front_stops_the_worker_and_runs_are_lost():
    s = stack()
    try:
        c = s.client()
        r = c.call("submit", lang="shell", code="sleep 30", session="doomed", wait_ms=300)
        check(r["state"] == "running", r)
        back = s.workers[0]
        front = front_of(back.pid)
        os.kill(front, signal.SIGKILL)
        back.wait(timeout=10 * SLOW)
        check(back.returncode == 1, back.returncode)
        r = c.call("await", id=r["id"], timeout_ms=8000, timeout=10)
        check(r["state"] == "lost", r)
        log = open(os.path.join(s.dir, "worker-w0.log")).read()
        check("closed the socketpair; stopping the worker" in log, log[-2000:])
        # no session of the worker outlives it
        wait_for(lambda: not [p for p in os.listdir("/proc") if p.isdigit() and alive(int(p))
                              and UID_BASE <= int(status(int(p))["Uid"].split()[0]) <= FRONT_UID],
                 what="the sessions to end")
        c.close()
    finally:
        done(s)


@test
def killing_the_back_stops_the_front():
    s = stack()
    try:
        back = s.workers[0]
        front = front_of(back.pid)
        check(front and alive(front), front)
        back.send_signal(signal.SIGKILL)
        back.wait()
        wait_for(lambda: not alive(front), timeout=5, what="the front to die with the back")
        s.workers = []
    finally:
        done(s)


def inject(front, datagram):
    """Sends datagram into the back as if the front had: a copy of the front's end of the
    socketpair, taken with pidfd_getfd (as root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(front)
    fd = libc.syscall(438, pidfd, 3, 0)            # pidfd_getfd
    os.close(pidfd)
    check(fd >= 0, "pidfd_getfd: errno %d" % ctypes.get_errno())
    sock = socket.socket(fileno=fd)
    try:
        sock.send(datagram)
    finally:
        sock.close()


def name(text):
    return struct.pack("=I", len(text)) + text + b"\0"


def run_body(limits, lang=b"python", flags=0, grant=b""):
    """A RUN body (worker/wire.h): id, eight limits, flags, then the names, the code and the
    network grant (worker/grant.h; empty for none)."""
    return (struct.pack("=10q", 7, *limits, flags) + name(b"agent") + name(b"s") + name(lang)
            + name(b"1") + name(grant))


def refused(datagram, reason):
    s = stack()
    try:
        c = s.client()
        check(c.run("1 + 1")["value"] == "2", "the worker does not serve")
        back = s.workers[0]
        front = front_of(back.pid)
        inject(front, datagram)
        back.wait(timeout=10 * SLOW)
        check(back.returncode == 1, back.returncode)
        log = open(os.path.join(s.dir, "worker-w0.log")).read()
        check(reason in log, log[-2000:])
        wait_for(lambda: not alive(front), timeout=5, what="the front to be killed")
        c.close()
    finally:
        done(s)


@test
def malformed_message_from_the_front_stops_the_worker():
    # a RUN whose body is one byte short of what its header announces
    body = run_body([10000, 1 << 20, 512, 128, 64, 1000, 256, 1 << 30])
    refused(struct.pack("=B3xI", 1, len(body)) + body[:-1], "sent a malformed message")


@test
def out_of_range_run_from_the_front_stops_the_worker():
    # well-formed, but asking for more memory than the worker's --max-memory-mb
    body = run_body([10000, 1 << 20, 1 << 20, 128, 64, 1000, 256, 1 << 30])
    refused(struct.pack("=B3xI", 1, len(body)) + body, "outside the worker's names or limits")


@test
def forged_grant_from_the_front_stops_the_worker():
    # a compromised front smuggles a second item into a grant entry, and one with a NUL
    body = run_body([10000, 1 << 20, 512, 128, 64, 1000, 256, 1 << 30], grant=b"allow a:1 method GET\n")
    refused(struct.pack("=B3xI", 1, len(body)) + body, "sent a malformed message")
    body = run_body([10000, 1 << 20, 512, 128, 64, 1000, 256, 1 << 30], grant=b"allow a:1\n\0allow b:2\n")
    refused(struct.pack("=B3xI", 1, len(body)) + body, "sent a malformed message")


@test
def workers_without_a_uid_base_take_ranges_of_their_own():
    """Two workers on one host, neither told --uid-base: each locks its own range under
    /run/replgate (released when it dies, even by SIGKILL), so their uids never meet."""
    import fcntl
    s = Stack(workers=0, slots=SLOTS)
    env = dict(os.environ)
    os.environ.pop("REPLGATE_TEST_UID_BASE", None)      # the harness must not pick one for us
    try:
        ws = [s.start_worker("own-%d" % i, extra=["--warm", str(WARM), "--prepare", str(PREPARE)])
              for i in range(2)]
    finally:
        os.environ.clear()
        os.environ.update(env)
    try:
        s.wait_workers(2)
        fronts = [wait_for(lambda w=w: front_of(w.pid), 10, "a front") for w in ws]
        uids = [int(status(f)["Uid"].split()[0]) for f in fronts]
        bases = [u - (SLOTS + 2 * WARM + PREPARE) for u in uids]
        check(all(b >= 200000 and (b - 200000) % 1000 == 0 for b in bases) and abs(bases[0] - bases[1]) >= 1000,
              ("ranges", bases))

        def held(base):
            fd = os.open("/run/replgate/uids-%d.lock" % base, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return False
            except BlockingIOError:
                return True
            finally:
                os.close(fd)
        check(all(held(b) for b in bases), "ranges not locked")
        ws[0].kill()
        ws[0].wait()
        wait_for(lambda: not held(bases[0]), 10, "the dead worker's range to be free")
        check(held(bases[1]), "the live worker's range stays held")
        c = s.client()
        # once the broker found the killed one silent, the other serves alone
        wait_for(lambda: c.call("ping")["stats"]["workers"] == 1, 10, "the killed worker to be lost")
        check(c.run("import os; os.getuid()", session="own")["outcome"] == "ok", "the other still serves")
        c.close()
    finally:
        check(not s.stop(), "sanitizer report")


if __name__ == "__main__":
    raise SystemExit(run_all("privsep"))
