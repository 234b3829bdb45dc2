"""tests/test_sandbox.py: the hostile suite. One test per escape class of
reference/sandbox.md section 2 (and the attacks issue 3 names), each submitted as a snippet
through the real broker and worker. Every test asserts that the attack failed and then, in
unaffected(), that the host, the broker and another session are as they were."""
import glob, os, re, shutil, signal, subprocess, time
from harness import Stack, check, run_all, test, wait_for, SLOW

S = None
CANARY = "replgate host canary %d\n" % os.getpid()
UID_BASE = 230000   # this suite's workers: their own host uid range

# Python prelude: raw system calls through libc, returning (result, errno).
PRE = r"""
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r, ctypes.get_errno()
"""


def shared():
    global S
    if S is None:
        S = Stack(slots=40, worker_args=["--uid-base", str(UID_BASE)])
        S.host_file = os.path.join(S.dir, "host-canary.txt")
        with open(S.host_file, "w") as f:
            f.write(CANARY)
        S.host_mtime = os.stat(S.host_file).st_mtime_ns
        c = S.client()
        r = c.run("canary_value = 12345", session="canary")
        check(r["outcome"] == "ok" and r["sandbox"] != "none", r)
        c.close()
    return S


def unaffected(s=None):
    """The broker answers, the worker lives, the canary session kept its state, the host
    file is untouched."""
    s = s or shared()
    admin = s.client("admin")
    r = admin.call("ping")
    check(r and r["ok"] and r["stats"]["workers"] >= 1, ("broker ping", r))
    admin.close()
    check(all(w.poll() is None for w in s.workers), "a worker died")
    c = s.client()
    r = c.run("canary_value", session="canary")
    check(r["outcome"] == "ok" and r["value"] == "12345",
          ("canary session", {k: r.get(k) for k in ("outcome", "value", "error_name", "error_value", "session_reset", "stderr")}))
    c.close()
    check(open(s.host_file).read() == CANARY and os.stat(s.host_file).st_mtime_ns == s.host_mtime,
          "host canary file changed")


def run(code, session, lang="python", **kw):
    c = shared().client()
    try:
        return c.run(PRE + code if lang == "python" else code, lang=lang, session=session, **kw)
    finally:
        c.close()


def ok(r, want=None):
    check(r["outcome"] == "ok", r)
    if want is not None:
        check(r["value"] == want, (want, r))
    return r


def host_pids_with_uid(lo, hi):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            for line in open("/proc/%s/status" % p):
                if line.startswith("Uid:"):
                    uid = int(line.split()[1])
                    if lo <= uid < hi:
                        out.append(int(p))
        except OSError:
            pass
    return out


# 1 ---------------------------------------------------------------------------------------
@test
def host_root_is_not_mapped():
    r = ok(run("""
out = [os.getuid(), os.getgid(), os.getgroups()]
for path in ("/etc/shadow", "/proc/1/root/etc/shadow"):
    try:
        open(path).read(); out.append("read " + path)
    except OSError as e:
        out.append(e.errno)
try:
    os.open("/proc/sys/kernel/core_pattern", os.O_WRONLY); out.append("core_pattern writable")
except OSError as e:
    out.append(e.errno)
out""", "s-root"))
    v = eval(r["value"])
    check(v[:3] == [1000, 1000, []], v)
    check(all(isinstance(x, int) for x in v[3:]), v)
    # from the host: the interpreters run as unprivileged uids of the worker's range
    pids = host_pids_with_uid(UID_BASE, UID_BASE + 100)
    check(pids, "no session process runs under the slot uids")
    unaffected()


# 2 ---------------------------------------------------------------------------------------
@test
def no_capabilities_left():
    r = ok(run("""
caps = {l.split(':')[0]: l.split()[1] for l in open('/proc/self/status') if l.startswith('Cap')}
r, e = sc(165, b"none", b"/tmp", b"tmpfs", 0, 0)          # mount
[caps, r, e, open('/proc/self/status').read().count('NoNewPrivs:\\t1')]""", "s-caps"))
    caps, rc, err, nnp = eval(r["value"])
    check(all(int(v, 16) == 0 for k, v in caps.items()), caps)
    check(rc == -1 and err == 1 and nnp == 1, r["value"])
    r = run("unshare -Ur true; echo rc=$?", "s-caps-sh", lang="shell")
    check("rc=0" not in r["stdout"], r)
    unaffected()


# 3 ---------------------------------------------------------------------------------------
@test
def no_nested_namespaces():
    r = ok(run("""
CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS = 0x10000000, 0x40000000, 0x20000
out = [sc(272, f)[1] for f in (CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS)]   # unshare
out.append(sc(56, CLONE_NEWUSER | 17, 0, 0, 0, 0)[1])                        # clone
out.append(sc(435, 0, 0)[1])                                                 # clone3
out.append(sc(308, 0, 0)[1])                                                 # setns
out""", "s-ns"))
    check(eval(r["value"]) == [1, 1, 1, 1, 38, 1], r["value"])
    unaffected()


# 4 ---------------------------------------------------------------------------------------
@test
def no_mount_games():
    r = ok(run("""
out = [sc(165, b"none", b"/work", b"tmpfs", 0, 0)[1],   # mount
       sc(166, b"/usr", 2)[1],                         # umount2 of a read-only bind
       sc(155, b"/tmp", b"/tmp")[1],                   # pivot_root
       sc(161, b"/tmp")[1],                            # chroot
       sc(430, b"tmpfs", 0)[1],                        # fsopen
       sc(428, -100, b"/usr", 0)[1],                   # open_tree
       sc(442, -100, b"/usr", 0, 0, 0)[1]]             # mount_setattr
try:
    open('/usr/replgate-x', 'w'); out.append('usr writable')
except OSError as e:
    out.append(e.errno)
out""", "s-mount"))
    v = eval(r["value"])
    check(v[:7] == [1] * 7 and v[7] in (errno_erofs(), 13), v)
    unaffected()


def errno_erofs():
    return 30


# 5 ---------------------------------------------------------------------------------------
@test
def no_cgroup_release_agent():
    r = ok(run("""
[sc(165, b"cgroup", b"/tmp", b"cgroup", 0, b"memory")[1], os.path.exists('/sys'),
 open('/proc/self/cgroup').read()]""", "s-cg"))
    e, sys_exists, cg = eval(r["value"])
    check(e == 1 and not sys_exists, r["value"])
    # the cgroup namespace hides where the box lives on the host
    check("replgate" not in cg, cg)
    unaffected()


# 6 ---------------------------------------------------------------------------------------
@test
def no_ptrace_or_process_vm():
    r = ok(run("""
import subprocess
p = subprocess.Popen(['sleep', '30'])
buf = ctypes.create_string_buffer(8)
iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
out = [sc(101, 16, 1, 0, 0)[1],                   # PTRACE_ATTACH to our init
       sc(101, 16, p.pid, 0, 0)[1],               # ... to our own child
       sc(310, p.pid, iov, 1, iov, 1, 0)[1],      # process_vm_readv
       sc(312, os.getpid(), p.pid, 0, 0, 0)[1]]   # kcmp
pfd = sc(434, p.pid, 0)[0]                        # pidfd_open is harmless ...
out.append(sc(438, pfd, 0, 0)[1])                 # ... pidfd_getfd is not
try:
    open('/proc/1/mem', 'rb').read(1); out.append('init memory readable')
except OSError as e:
    out.append(e.errno)
p.kill(); p.wait()
out""", "s-ptrace"))
    v = eval(r["value"])
    check(v[:5] == [1] * 5 and isinstance(v[5], int), v)
    unaffected()


# 7 ---------------------------------------------------------------------------------------
@test
def no_keyrings():
    r = ok(run("""
[sc(248, b"user", b"replgate", b"secret", 6, -2)[1],   # add_key into the session keyring
 sc(250, 0, -3, 0, 0, 0)[1],                           # keyctl GET_KEYRING_ID
 sc(249, b"user", b"replgate", 0, 0)[1]]               # request_key""", "s-keys"))
    check(eval(r["value"]) == [1, 1, 1], r["value"])
    unaffected()


# 8 ---------------------------------------------------------------------------------------
@test
def no_bpf_perf_userfaultfd():
    r = ok(run("""
attr = ctypes.create_string_buffer(128)
[sc(321, 0, attr, 128)[1], sc(298, attr, 0, -1, -1, 0)[1], sc(323, 0)[1]]""", "s-bpf"))
    check(eval(r["value"]) == [1, 1, 1], r["value"])
    unaffected()


# 9 ---------------------------------------------------------------------------------------
@test
def no_io_uring():
    r = ok(run("""
params = ctypes.create_string_buffer(120)
[sc(425, 8, params)[1], sc(426, 0, 0, 0, 0, 0, 0)[1], sc(427, 0, 0, 0, 0)[1]]""", "s-uring"))
    check(eval(r["value"]) == [1, 1, 1], r["value"])
    unaffected()


# 10 --------------------------------------------------------------------------------------
@test
def no_tiocsti_or_tioclinux():
    r = ok(run("""
c = ctypes.c_char(b'x')
[sc(16, fd, cmd, ctypes.byref(c))[1] for fd in (0, 1, 2) for cmd in (0x5412, 0x5412 | (1 << 32), 0x541C)]""",
               "s-tty"))
    check(set(eval(r["value"])) == {1}, r["value"])
    unaffected()


# 11 --------------------------------------------------------------------------------------
@test
def proc_sys_dev_are_minimal():
    r = ok(run("""
pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
try:
    open('/proc/sys/kernel/hostname', 'w').write('pwned'); w = 'written'
except OSError as e:
    w = e.errno
[pids[0], len(pids), w, os.path.exists('/sys'), sorted(os.listdir('/dev')), os.uname().nodename]""", "s-proc"))
    first, count, w, sys_exists, dev, host = eval(r["value"])
    check(first == 1 and count <= 4 and isinstance(w, int) and not sys_exists, r["value"])
    check(dev == sorted(["null", "zero", "full", "random", "urandom", "fd", "stdin", "stdout", "stderr"]), dev)
    check(host == "replgate" and os.uname().nodename != "replgate", host)
    unaffected()


# 12 --------------------------------------------------------------------------------------
@test
def only_protocol_descriptors_survive():
    r = ok(run("""
fds = sorted(int(f) for f in os.listdir('/proc/self/fd'))
[fds, {f: os.readlink('/proc/self/fd/%d' % f) for f in fds if f < 5}]""", "s-fd"))
    fds, links = eval(r["value"])
    # 0-4 plus the descriptor listdir itself holds while it reads
    check(fds[:5] == [0, 1, 2, 3, 4] and len(fds) <= 6, fds)
    check(links[0] == "/dev/null" and all("pipe:" in links[i] for i in (1, 2, 3, 4)), links)
    r = ok(run("ls /proc/self/fd | tr '\\n' ' '", "s-fd-sh", lang="shell"))
    # the shell's snippet runs with 3 and 4 closed: 0-2 and ls's own directory
    check(r["stdout"].split() == ["0", "1", "2", "3"], r["stdout"])
    unaffected()


# 13 --------------------------------------------------------------------------------------
@test
def environment_is_a_whitelist():
    r = ok(run("sorted(os.environ)", "s-env"))
    allowed = {"PATH", "HOME", "LANG", "PYTHONUNBUFFERED", "PAGER", "TERM", "USER", "LC_CTYPE"}
    check(set(eval(r["value"])) <= allowed, r["value"])
    r = ok(run("env", "s-env-sh", lang="shell"))
    check("ZSYS" not in r["stdout"] and "REPLGATE" not in r["stdout"], r["stdout"])
    unaffected()


# 14 --------------------------------------------------------------------------------------
@test
def fork_bomb_hits_the_pids_limit():
    r = run("""
import time
kids, err = [], None
for i in range(2000):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno; break
    if pid == 0:
        time.sleep(30); os._exit(0)
    kids.append(pid)
n = len(kids)
for k in kids:
    os.kill(k, 9); os.waitpid(k, 0)
(n, err)""", "s-forkbomb")
    n, err = eval(r["value"])
    check(err == 11 and n < 128, r["value"])           # EAGAIN at pids.max
    check(r.get("pids_limited", True), r)
    r = run(":(){ :|:& };: ; sleep 1; echo survived", "s-forkbomb-sh", lang="shell",
            timeout=20)
    check(r["state"] == "done", r)
    unaffected()


# 15 --------------------------------------------------------------------------------------
@test
def memory_bomb_is_reported_as_oom():
    r = run("b = bytearray(1 << 30)", "s-oom")
    check(r["outcome"] == "oom" and r["session_reset"] is True, r)
    check(r["max_rss_kb"] and r["max_rss_kb"] > 400 * 1024, r["max_rss_kb"])
    r = ok(run("'after'", "s-oom"), "'after'")
    unaffected()


# 16 --------------------------------------------------------------------------------------
@test
def daemonized_sleep_dies_with_the_session():
    marker = "4242.%d" % os.getpid()
    r = run("setsid nohup sleep %s >/dev/null 2>&1 & disown; echo started" % marker, "s-daemon",
            lang="shell")
    check(r["outcome"] == "ok", r)

    def sleepers():
        out = []
        for p in os.listdir("/proc"):
            try:
                if p.isdigit() and marker in open("/proc/%s/cmdline" % p).read():
                    out.append(p)
            except OSError:
                pass
        return out
    deadline = time.time() + 3 * SLOW      # it was started in the background: let it exec
    while not sleepers() and time.time() < deadline:
        time.sleep(0.02)
    check(sleepers(), "the daemon did not start")
    r = run("exit 0", "s-daemon", lang="shell")
    check(r["session_reset"] is True, r)
    deadline = time.time() + 5
    while sleepers() and time.time() < deadline:
        time.sleep(0.05)
    check(not sleepers(), "the daemonized sleep outlived its session")
    unaffected()


# 17 --------------------------------------------------------------------------------------
@test
def disk_fill_is_capped():
    r = ok(run("""
out = []
with open('/tmp/fill', 'wb') as f:
    try:
        while True:
            f.write(b'x' * (1 << 20))
    except OSError as e:
        out.append(e.errno)
out.append(os.path.getsize('/tmp/fill') >> 20)
os.unlink('/tmp/fill')
n = 0
try:
    while True:
        open('/work/i%d' % n, 'w').close(); n += 1
except OSError as e:
    out += [e.errno, n]
for i in range(n):
    os.unlink('/work/i%d' % i)
try:
    with open('/tmp/huge', 'wb') as f:
        f.seek(200 << 20); f.write(b'x')
    out.append('huge')
except OSError as e:
    out.append(e.errno)
out""", "s-disk", timeout=60))
    v = eval(r["value"])
    check(v[0] in (28, 27) and v[1] <= 64 and v[2] == 28 and v[3] <= 5000 and v[4] == 27, v)
    unaffected()


# 18 --------------------------------------------------------------------------------------
@test
def output_flood_is_capped():
    r = run("yes | head -c 200000000", "s-flood", lang="shell")
    check(r["outcome"] in ("ok", "output_limit") and r["stdout_truncated"] is True
          and len(r["stdout"]) <= 1 << 20, (r["outcome"], len(r["stdout"])))
    unaffected()


# 19 --------------------------------------------------------------------------------------
@test
def descriptor_and_thread_exhaustion_is_capped():
    r = ok(run("""
import threading
fds, n = [], 0
try:
    while True:
        fds.append(os.open('/dev/null', os.O_RDONLY))
except OSError as e:
    err = e.errno
for f in fds:
    os.close(f)
stop = threading.Event(); ts = []
try:
    for i in range(1000):
        t = threading.Thread(target=stop.wait); t.start(); ts.append(t)
except RuntimeError:
    pass
stop.set()
for t in ts:
    t.join()
(err, len(fds), len(ts))""", "s-exhaust"))
    err, nfds, nthreads = eval(r["value"])
    check(err == 24 and nfds < 256 and nthreads < 128, r["value"])
    unaffected()


# 20 --------------------------------------------------------------------------------------
@test
def planted_symlinks_redirect_nothing():
    s = shared()
    r = ok(run("""
targets = ['/etc/shadow', %r, '/proc/1/root/etc/shadow', '/root/.ssh/id_rsa']
for i, t in enumerate(targets):
    for d in ('/tmp', '/work'):
        os.symlink(t, '%%s/link%%d' %% (d, i))
try:
    os.symlink('/etc/shadow', '/etc/link')
    planted_etc = True
except OSError:
    planted_etc = False
out = []
for i in range(len(targets)):
    try:
        out.append(open('/work/link%%d' %% i).read()[:20])
    except OSError as e:
        out.append(e.errno)
(planted_etc, out)""" % s.db, "s-link"))
    planted_etc, out = eval(r["value"])
    check(not planted_etc and all(isinstance(x, int) for x in out), r["value"])
    # the worker reads back only pipes: the next results carry nothing of the targets
    r = ok(run("import sys; sys.stdout.write(open('/work/link0').read() if os.path.exists('/work/link0') else 'dangling')",
               "s-link"))
    check(r["stdout"] == "dangling", r["stdout"])
    r = run("exec 1>/tmp/link0; echo hijack", "s-link-sh", lang="shell")
    check("root:" not in (r["stdout"] + r["stderr"]), r)
    unaffected()


# 21 --------------------------------------------------------------------------------------
@test
def no_side_channels_between_sessions():
    r = ok(run("""
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(b'\\0replgate-side'); srv.listen(1)
libc.shmget.restype = ctypes.c_int
shm = libc.shmget(4242, 4096, 0o1666)
vs = sc(41, 40, 1, 0)[1]                  # socket(AF_VSOCK)
alg = sc(41, 38, 5, 0)[1]                 # socket(AF_ALG)
(shm >= 0, vs, alg, os.path.exists('/dev/shm'))""", "s-side-a"))
    shm_ok, vs, alg, devshm = eval(r["value"])
    check(shm_ok and vs == 1 and alg == 1 and not devshm, r["value"])
    r = ok(run("""
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    c.connect(b'\\0replgate-side'); seen = 'connected'
except OSError as e:
    seen = e.errno
libc.shmget.restype = ctypes.c_int
(seen, libc.shmget(4242, 4096, 0o666))""", "s-side-b"))
    seen, shm = eval(r["value"])
    check(seen == 111 and shm == -1, r["value"])      # ECONNREFUSED; no such segment
    unaffected()


# 22 --------------------------------------------------------------------------------------
@test
def foreign_syscall_abis_are_killed():
    r = run("sc(0x40000000 + 39)", "s-x32")          # x32 getpid
    check(r["outcome"] == "killed" and r["signal"] == 31 and r["session_reset"], r)
    r = run("""
import mmap
code = b'\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3'    # mov eax, 20 (i386 getpid); int 0x80; ret
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
f()""", "s-i386")
    # SIGSYS from the filter; SIGSEGV where the kernel has int 0x80 switched off (#GP)
    check(r["outcome"] == "killed" and r["signal"] in (31, 11) and r["session_reset"], r)
    unaffected()


# 23 --------------------------------------------------------------------------------------
@test
def setuid_and_core_dumps_gain_nothing():
    r = run("ulimit -c; su -c id root </dev/null; echo su=$?; ls -l /usr/bin/passwd | cut -c1-10; "
            "passwd -S root </dev/null; id -u", "s-suid", lang="shell")
    out = r["stdout"]
    check(out.startswith("0\n") and "su=0" not in out and out.strip().endswith("1000"), out)
    r = run("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "s-core")
    check(r["outcome"] == "killed" and r["signal"] == 11, r)
    check(not [f for f in os.listdir(shared().dir) if f.startswith("core")], "a core file")
    unaffected()


# issue 3's named attacks beyond the table ----------------------------------------------
@test
def no_network_not_even_the_broker():
    s = shared()
    r = ok(run("""
out = []
for host, port in (('127.0.0.1', %d), ('127.0.0.1', %d), ('8.8.8.8', 53), ('::1', %d)):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    c = socket.socket(fam, socket.SOCK_STREAM); c.settimeout(2)
    try:
        c.connect((host, port)); out.append('connected')
    except OSError as e:
        out.append(e.errno)
import fcntl, struct
ifs = [n for i, n in socket.if_nameindex()]
(out, ifs)""" % (s.port, s.port + 1, s.port), "s-net"))
    out, ifs = eval(r["value"])
    check(all(isinstance(x, int) for x in out) and ifs == ["lo"], r["value"])
    unaffected()


@test
def broker_database_is_out_of_reach():
    s = shared()
    r = ok(run("""
out = []
for p in (%r, %r, '/var/lib', '/proc/1/cwd/replgate.db'):
    try:
        open(p, 'rb').read(16); out.append('read ' + p)
    except OSError as e:
        out.append(e.errno)
out""" % (s.db, s.dir), "s-db"))
    check(all(isinstance(x, int) for x in eval(r["value"])), r["value"])
    unaffected()


@test
def writes_stay_in_work_and_tmp():
    r = ok(run("""
out = []
for p in ('/x', '/etc/passwd', '/usr/bin/x', '/proc/sys/vm/drop_caches', '/dev/x', %r):
    try:
        with open(p, 'w') as f: f.write('1')
        out.append('wrote ' + p)
    except OSError as e:
        out.append(e.errno)
open('/work/ok', 'w').write('1'); open('/tmp/ok', 'w').write('1')
out""" % shared().host_file, "s-write"))
    check(all(isinstance(x, int) for x in eval(r["value"])), r["value"])
    unaffected()


@test
def sessions_cannot_reach_each_other():
    ok(run("open('/work/mine', 'w').write('A secret'); open('/tmp/mine', 'w').write('A'); "
           "import subprocess; keep = subprocess.Popen(['sleep', '60']); a_state = 'kept'", "s-iso-a"))
    r = ok(run("""
import signal
seen = [os.path.exists('/work/mine'), os.path.exists('/tmp/mine'),
        sorted(int(p) for p in os.listdir('/proc') if p.isdigit())]
for pid in range(2, 400):
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
seen""", "s-iso-b"))
    here_a_file, here_tmp, pids = eval(r["value"])
    check(not here_a_file and not here_tmp and max(pids) < 400, r["value"])
    r = ok(run("[a_state, keep.poll(), open('/work/mine').read()]", "s-iso-a"))
    check(eval(r["value"]) == ["kept", None, "A secret"], r["value"])
    unaffected()


@test
def timeouts_end_signal_ignoring_spinners():
    s = Stack(worker_args=["--uid-base", str(UID_BASE + 100)], broker_args=["--timeout-ms", "1500"])
    try:
        c = s.client()
        t0 = time.time()
        r = c.run("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass",
                  session="spin")
        check(r["outcome"] == "timeout" and r["session_reset"] and time.time() - t0 < 5 * SLOW, r)
        check(r["cpu_ms"] > 500, r["cpu_ms"])       # the snippet's CPU, from its cgroup
        c.close()
    finally:
        check(not s.stop(), "sanitizer report")
    unaffected()


def prepared_sandboxes(worker_pid):
    """The worker's children that still wait for a claim: cloned, not yet exec'd, in their own
    user namespace (the worker's front, its other child of the same program, is in ours)."""
    exe = os.readlink("/proc/%d/exe" % worker_pid)
    ours = os.readlink("/proc/self/ns/user")
    out = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and int(open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[1]) == worker_pid \
                    and os.readlink("/proc/%s/exe" % p) == exe and os.readlink("/proc/%s/ns/user" % p) != ours:
                out.append(int(p))
        except (OSError, ValueError, IndexError):
            pass
    return out


@test
def prepared_sandboxes_hold_nothing_and_die_with_the_worker():
    """Sandboxes prepared ahead wait for minutes: in their own namespaces, their box's uid
    map, with none of the worker's sockets or other sessions' pipes; a dead one is replaced;
    all of them die with the worker."""
    s = Stack(workers=0)
    try:
        base = UID_BASE + 300
        w = s.start_worker("prep", extra=["--uid-base", str(base), "--warm", "0", "--prepare", "2"])
        s.wait_workers(1)
        deadline = time.time() + 5 * SLOW
        while len(prepared_sandboxes(w.pid)) < 2 and time.time() < deadline:
            time.sleep(0.05)
        stubs = prepared_sandboxes(w.pid)
        check(len(stubs) == 2, ("prepared sandboxes", stubs))
        for pid in stubs:
            fds = [os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%d/fd" % pid)]
            # stdio, the go and error pipes, the interpreter's six, and the init it will bind
            mine = [f for f in fds if f.startswith("pipe:") or f == "/dev/null"
                    or f.endswith("/worker-prep.log") or f.endswith("/replgate-init")]
            check(len(fds) <= 12 and mine == fds, (pid, fds))
            # the jail's shared part is built while it waits (its new root sits at /tmp)
            points = [line.split()[4] for line in open("/proc/%d/mountinfo" % pid)]
            check("/tmp/usr" in points and "/tmp/proc" in points and "/tmp/work" not in points,
                  points[-8:])
            check(os.readlink("/proc/%d/ns/net" % pid) != os.readlink("/proc/self/ns/net"), "shares our netns")
            maps = open("/proc/%d/uid_map" % pid).read().split()
            check(maps[0] == "1000" and base <= int(maps[1]) < base + 10 and maps[2] == "1", maps)
        os.kill(stubs[0], signal.SIGKILL)

        def gone(pid):
            try:
                return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                return True
        deadline = time.time() + 5 * SLOW      # an ASan process takes a while to die
        while not gone(stubs[0]) and time.time() < deadline:
            time.sleep(0.01)
        c = s.client()
        for i in range(3):
            r = c.run("%d * 7" % i, session="prep-%d" % i)
            check(r["outcome"] == "ok" and r["value"] == str(i * 7) and r["sandbox"] != "none", r)
        c.close()
        deadline = time.time() + 5 * SLOW
        while len(prepared_sandboxes(w.pid)) < 2 and time.time() < deadline:
            time.sleep(0.05)
        stubs = prepared_sandboxes(w.pid)
        check(len(stubs) == 2, ("refilled", stubs))
        w.kill()
        w.wait()
        deadline = time.time() + 5 * SLOW
        while host_pids_with_uid(base, base + 10) and time.time() < deadline:
            time.sleep(0.05)
        check(not host_pids_with_uid(base, base + 10), "sessions outlived the worker")
        check(not any(os.path.exists("/proc/%d" % p) and "Z" not in open("/proc/%d/stat" % p).read().split(")")[1][:3]
                      for p in stubs), "prepared sandboxes outlived the worker")
        s.workers = []
    finally:
        check(not s.stop(), "sanitizer report")
    unaffected()


@test
def fails_closed_and_no_sandbox_says_none():
    s = Stack(workers=0)
    try:
        w = s.start_worker("bad", extra=["--init", "/nonexistent/replgate-init"])
        check(w.wait(timeout=10 * SLOW) == 1, "a worker without its init served")
        log = open(os.path.join(s.dir, "worker-bad.log")).read()
        check("sandbox check 'session init' failed" in log, log)
        w = s.start_worker("v2", extra=["--cgroup", "v2", "--uid-base", str(UID_BASE + 200)])
        if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            check(w.wait(timeout=10 * SLOW) == 1, "a worker without usable cgroups served")
            log = open(os.path.join(s.dir, "worker-v2.log")).read()
            check("sandbox check 'cgroups' failed" in log, log)
        else:
            w.kill(); w.wait()
        s.workers = []
        w = s.start_worker("open", extra=["--no-sandbox", "--exit-when-drained"])
        s.wait_workers(1)
        c = s.client()
        r = c.run("import os; os.getuid()", session="plain")
        check(r["sandbox"] == "none" and r["value"] == str(os.getuid()), r)
        c.close()
        rows = s.sql("select data from events where type = 'worker_joined'")
        check(any('"none"' in d for (d,) in rows), rows)
        # Left on its own, not killed: the shell host it kept ready takes its /tmp directory along.
        check(s.cli("drain", "open").returncode == 0 and w.wait(timeout=20 * SLOW) == 0, "drained")
    finally:
        check(not s.stop(), "sanitizer report")
    unaffected()



@test
def an_unsandboxed_shell_killed_leaves_nothing_in_tmp():
    """Unsandboxed, the shell host keeps its state in the host's /tmp. Killed with SIGKILL,
    it cannot clean up: the worker removes its directory when it reaps it. The host the worker
    keeps ready for the next session made its directory too: a worker that leaves on its own
    (drained, with --exit-when-drained) kills it and removes that with it."""
    # What hosts left that are gone (a worker killed with its hosts) goes when a worker
    # starts; a live host's stays.
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = "/tmp/.replgate-shell-%d-left" % gone.pid
    live = "/tmp/.replgate-shell-%d-live" % os.getpid()
    for d in (dead, live):
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "state"), "w").close()
    s = Stack(workers=0)
    try:
        w = s.start_worker("open", extra=["--no-sandbox", "--exit-when-drained"])
        s.wait_workers(1)
        check(not os.path.exists(dead) and os.path.exists(os.path.join(live, "state")), (dead, live))
        c = s.client()
        before = set(glob.glob("/tmp/.replgate-shell-*"))
        r = c.run("x=41; echo $PPID", lang="shell", session="plain-sh")
        check(r["outcome"] == "ok", r)
        host = int(r["stdout"])
        mine = glob.glob("/tmp/.replgate-shell-%d-*" % host)
        check(len(mine) == 1 and os.path.exists(os.path.join(mine[0], "state")), (host, mine))
        os.kill(host, signal.SIGKILL)          # the stack's own shell host
        wait_for(lambda: not os.path.exists(mine[0]), what="the killed host's directory removed")
        r = c.run("echo ${x:-gone}", lang="shell", session="plain-sh")
        check(r["stdout"] == "gone\n" and r["execution_count"] == 1, r)          # a new host

        def alive(path):
            return os.path.exists("/proc/%s" % os.path.basename(path).split("-")[2])
        c.call("close", lang="shell", session="plain-sh")
        wait_for(lambda: all(alive(d) for d in set(glob.glob("/tmp/.replgate-shell-*")) - before),
                 what="no directory left of a host that is gone")
        c.close()
        p = s.cli("drain", "open")
        check(p.returncode == 0, p.stderr)
        check(w.wait(timeout=20 * SLOW) == 0, "the drained worker left")
        left = [d for d in set(glob.glob("/tmp/.replgate-shell-*")) - before if not alive(d)]
        check(not left, ("left by a worker that left", left))
    finally:
        check(not s.stop(), "sanitizer report")
        shutil.rmtree(live, ignore_errors=True)


if __name__ == "__main__":
    try:
        rc = run_all("sandbox")
    finally:
        if S:
            bad = S.stop()
            if bad:
                print("sanitizer reports:\n" + "\n".join(bad))
                print("sandbox: 0 passed, 1 failed")
    raise SystemExit(rc)
