"""tests/test_storage.py: the broker refuses to start on storage it cannot write (an immutable
database, -wal, -shm or directory, a read-only mount, a full disk): it exits non-zero within
seconds with one error line naming the file and the reason, and once the storage is fixed the
same directory starts with every earlier record intact.

The cases need root (chattr +i, mount). Where that is not permitted each case prints a SKIP
line and is left out of the count: run.sh sums the `passed, failed` line, so a skip is neither.
Every chattr and mount is undone in a finally block: an immutable file left in /tmp cannot be
removed by anyone's cleanup."""
import os, shutil, signal, sqlite3, subprocess, sys
import harness
from harness import BIN, SLOW, Stack, check, proc_env, run_all, test

SETTLE = 5          # seconds a refusing broker may take to exit


def _chattr_missing():
    """Why chattr +i cannot be used here, or None if it works (and is enforced) in /tmp."""
    d = harness.scratch_dir("replgate-probe-")
    f = os.path.join(d, "f")
    open(f, "w").close()
    try:
        p = subprocess.run(["chattr", "+i", f], capture_output=True, text=True)
        if p.returncode != 0:
            return "chattr +i not permitted in %s (%s)" % (d, p.stderr.strip())
        try:
            os.close(os.open(f, os.O_RDWR))
            return "chattr +i is not enforced in %s" % d
        except PermissionError:
            return None
    except FileNotFoundError:
        return "no chattr binary (apt-get install e2fsprogs)"
    finally:
        subprocess.run(["chattr", "-i", f], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def _mount_missing():
    """Why a tmpfs cannot be mounted and remounted read-only here, or None."""
    d = harness.scratch_dir("replgate-probe-")
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d], capture_output=True, text=True)
        if p.returncode != 0:
            return "mount not permitted (%s)" % p.stderr.strip()
        p = subprocess.run(["mount", "-o", "remount,ro", d], capture_output=True, text=True)
        return None if p.returncode == 0 else "remount,ro not permitted (%s)" % p.stderr.strip()
    except FileNotFoundError:
        return "no mount binary"
    finally:
        subprocess.run(["umount", "-l", d], capture_output=True)
        os.rmdir(d)


MISSING = {"chattr": _chattr_missing(), "mount": _mount_missing()}
SKIPPED = []


def needs(what):
    """Registers the test only where `what` works; otherwise it is listed as skipped."""
    def wrap(fn):
        if MISSING[what]:
            SKIPPED.append((fn.__name__, MISSING[what]))
            return fn
        return test(fn)
    return wrap


def snapshot(db):
    """What must survive: every request's outcome and every event's place in the chain."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        return (con.execute("select id, state, outcome, value from requests order by id").fetchall(),
                con.execute("select seq, hash from events order by seq").fetchall())
    finally:
        con.close()


def populated(db_dir=None):
    """A stack whose record holds two finished requests, its broker then killed as by a crash
    so that the -wal and -shm stay behind. Returns the stack, its database and the snapshot."""
    args = ["--db", os.path.join(db_dir, "replgate.db")] if db_dir else []
    s = Stack(broker_args=args)
    db = args[1] if db_dir else s.db
    try:
        c = s.client()
        check(c.run("6 * 7", session="st")["value"] == "42", "first run")
        check(c.run("'kept'", session="st")["value"] == "'kept'", "second run")
        c.close()
        before = snapshot(db)
        s.kill_broker()
    finally:
        check(not s.stop(), "sanitizer report")
    check(os.path.exists(db + "-wal") and os.path.exists(db + "-shm"), "no -wal/-shm after a kill")
    return s, db, before


def refused(s, db, needle, reason):
    """Starts the broker on s's state; it must exit 1 within SETTLE seconds with exactly one
    error line, naming `needle` and `reason`, and leave no probe file beside db."""
    cmd = [os.path.join(BIN, "replgate-broker"), "--dir", s.dir, "--clients", s.clients_ep,
           "--workers", s.workers_ep] + s.broker_args
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=SETTLE * SLOW, env=proc_env())
    except subprocess.TimeoutExpired as e:
        out = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise AssertionError("broker still running after %ds on unwritable storage:\n%s" % (SETTLE, out))
    errors = [l for l in p.stderr.splitlines() if " error: " in l]
    check(p.returncode == 1, ("exit status", p.returncode, p.stderr))
    check(len(errors) == 1 and needle in errors[0] and reason in errors[0], ("error line", needle, reason, p.stderr))
    left = [f for f in os.listdir(os.path.dirname(db)) if ".preflight-" in f]
    check(not left, ("probe file left behind", left))
    return errors[0]


def verify(s, db):
    """`replgate verify` on db (through a view directory when the db is not DIR/replgate.db)."""
    view = s.dir
    if db != s.db:
        view = harness.scratch_dir("replgate-view-")
        os.symlink(db, os.path.join(view, "replgate.db"))
    p = subprocess.run([os.path.join(BIN, "replgate"), "verify", "--dir", view], capture_output=True,
                       text=True, timeout=60 * SLOW, env=dict(os.environ, ZSYS_SIGHANDLER="false"))
    check(p.returncode == 0, ("verify", p.stdout, p.stderr))


def restarts_intact(s, db, before):
    """The fixed storage starts again: old records unchanged, the chain verifies, a new run works."""
    try:
        s.start_broker()
        s.start_worker("w1")
        s.wait_workers(1)
        c = s.client()
        check(c.run("'again'", session="st")["value"] == "'again'", "run after the restart")
        c.close()
        requests, events = snapshot(db)
        check(requests[:len(before[0])] == before[0], ("requests changed", before[0], requests))
        check(events[:len(before[1])] == before[1], "events changed")
        check(len(requests) == len(before[0]) + 1, ("one new request", requests))
        verify(s, db)
    finally:
        check(not s.stop(), "sanitizer report")


def chattr(flag, *paths):
    for path in paths:
        subprocess.run(["chattr", flag, path], capture_output=True)


def immutable_case(suffix):
    s, db, before = populated()
    target = db + suffix
    try:
        chattr("+i", target)
        refused(s, db, target, "Operation not permitted")
    finally:
        chattr("-i", target)
    restarts_intact(s, db, before)


@needs("chattr")
def immutable_database_file_refuses_start():
    immutable_case("")


@needs("chattr")
def immutable_wal_refuses_start():
    immutable_case("-wal")


@needs("chattr")
def immutable_shm_refuses_start():
    """An -shm SQLite could map but not write used to end the broker with SIGBUS."""
    immutable_case("-shm")


@needs("chattr")
def immutable_state_directory_refuses_start():
    """The files in it are writable, but SQLite must be able to create -wal and -shm there."""
    s, db, before = populated()
    try:
        chattr("+i", s.dir)
        line = refused(s, db, "database directory %s " % s.dir, "Operation not permitted")
        check(".preflight-" not in line, line)
    finally:
        chattr("-i", s.dir)
    restarts_intact(s, db, before)


@needs("chattr")
def replgate_up_shows_the_refusal():
    """`replgate up` (and so `make run`) passes the broker's reason on and exits non-zero."""
    s, db, before = populated()
    try:
        chattr("+i", db)
        cmd = [os.path.join(BIN, "replgate"), "up", "--dir", s.dir, "--port", str(s.port)]
        #  A group of its own: should up keep running, its broker and worker go with it.
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, env=dict(os.environ, ZSYS_SIGHANDLER="false"))
        try:
            p.stdout_text, p.stderr = p.communicate(timeout=(SETTLE + 5) * SLOW)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
            raise AssertionError("replgate up still running on an immutable database")
        check(p.returncode != 0, ("up exit status", p.returncode, p.stderr))
        check("database %s is not writable (Operation not permitted)" % db in p.stderr, p.stderr)
        check("broker exited (status 1)" in p.stderr, p.stderr)
    finally:
        chattr("-i", db)
    restarts_intact(s, db, before)


def tmpfs(size):
    mnt = harness.scratch_dir("replgate-mnt-")
    check(subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", mnt]).returncode == 0, "mount")
    return mnt


def unmount(mnt):
    subprocess.run(["umount", "-l", mnt], capture_output=True)
    os.rmdir(mnt)


@needs("mount")
def read_only_mount_refuses_start():
    mnt = tmpfs("4m")
    try:
        s, db, before = populated(mnt)
        check(subprocess.run(["mount", "-o", "remount,ro", mnt]).returncode == 0, "remount,ro")
        try:
            refused(s, db, db, "Read-only file system")
        finally:
            check(subprocess.run(["mount", "-o", "remount,rw", mnt]).returncode == 0, "remount,rw")
        restarts_intact(s, db, before)
    finally:
        unmount(mnt)


@needs("mount")
def full_disk_refuses_start():
    mnt = tmpfs("4m")
    try:
        s, db, before = populated(mnt)
        filler = os.path.join(mnt, "filler")
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=64k"], capture_output=True)
        try:
            refused(s, db, "database directory %s " % mnt, "No space left on device")
        finally:
            os.unlink(filler)
        restarts_intact(s, db, before)
    finally:
        unmount(mnt)


if __name__ == "__main__":
    only = sys.argv[1:]
    for name, why in SKIPPED:
        if not only or name in only:
            print(" * %s: SKIP (%s)" % (name, " ".join(why.split())), flush=True)
    raise SystemExit(run_all("storage"))
