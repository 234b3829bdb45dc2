"""tests/test_screen.py: nothing a snippet, its output or an agent's text holds can redraw a
person's screen (issue 13, item 1). `pending` and `history` always show control, bidirectional
and invisible characters as markers; `submit`, `wait`, `status` and `replay` do so on a terminal
(a real pty here) and give a pipe the bytes as printed; --raw and --escape force either way."""
import base64, json, os, select, subprocess, tempfile, termios, time
from harness import BIN, Stack, check, run_all, test, SLOW

POLICY = {"version": 1, "defaults": {"quorum": 1, "ttl_s": 3600}, "rules": [
    {"name": "net", "match": {"code": "socket"}, "action": "review"},
    {"name": "no", "match": {"code": "FORBIDDEN"}, "action": "deny", "message": "no\u001b[2J"},
    {"name": "rest", "action": "allow"}]}

ON, OFF = b"\x1b[7m", b"\x1b[27m"       # the reverse video that marks a marker on a terminal


def run_cli(s, *args, tty=None, env=None, timeout=60):
    """Runs the CLI with the stream named by tty ("stdout" or "stderr") on a pseudo-terminal
    (no output processing, so bytes arrive as written) and the other on a file.
    Returns (exit code, stdout bytes, stderr bytes)."""
    cmd = [os.path.join(BIN, "replgate"), args[0], "--dir", s.dir] + list(args[1:])
    e = dict(os.environ, ZSYS_SIGHANDLER="false", TERM="xterm", COLUMNS="400")
    e.update(env or {})
    e.pop("NO_COLOR", None)
    files = {name: tempfile.TemporaryFile() for name in ("stdout", "stderr")}
    master = slave = None
    if tty:
        master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=e,
                         stdout=slave if tty == "stdout" else files["stdout"],
                         stderr=slave if tty == "stderr" else files["stderr"])
    screen = b""
    if tty:
        os.close(slave)
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:         # EIO: the child is gone and everything was read
                    break
                if not chunk:
                    break
                screen += chunk
            elif p.poll() is not None:
                break
        os.close(master)
    rc = p.wait(timeout=timeout * SLOW)
    out = {}
    for name, f in files.items():
        f.seek(0)
        out[name] = screen if tty == name else f.read()
        f.close()
    return rc, out["stdout"], out["stderr"]


def plain(screen):
    """What a terminal shows once the reverse video is taken out; fails if any other escape
    sequence, or a carriage return, reached the terminal."""
    text = screen.replace(ON, b"").replace(OFF, b"")
    check(b"\x1b" not in text and b"\r" not in text, ("raw control reached the terminal", screen))
    return text


def marked(name):
    return b"\xe2\x9f\xa8" + name + b"\xe2\x9f\xa9"


def done(s):
    check(not s.stop(), "sanitizer report")


# A parked snippet whose comment wipes its own line and writes a harmless one in its place.
ATTACK = ("s = __import__('socket').create_connection(('203.0.113.9', 80))  "
          "# \x1b[2K\r\x1b[1A  | print('hello world') \u202e\nprint('done')")


@test
def pending_and_history_show_control_characters_as_markers():
    s = Stack(policy=POLICY)
    try:
        agent = s.client()
        r = agent.call("submit", lang="python", code=ATTACK, session="tidy",
                       reason="cleanup\x1b[2J", wait_ms=0)
        check(r and r["ok"] and r["state"] == "pending_approval", r)
        agent.close()
        want = b"# " + marked(b"ESC") + b"[2K" + marked(b"CR") + marked(b"ESC") + b"[1A"
        for tty in (None, "stdout"):        # a pipe and a terminal alike
            rc, out, err = run_cli(s, "pending", tty=tty)
            check(rc == 0, (rc, out, err))
            text = plain(out) if tty else out
            check(b"\x1b" not in text and b"\r" not in text, text)
            check(b"socket" in text and want in text, text)
            check(marked(b"U+202E") in text, text)
            check(b"cleanup" + marked(b"ESC") + b"[2J" in text, ("reason", text))
            if tty:
                check(ON + marked(b"ESC") + OFF + b"[2K" in out, out)
            rc, out, err = run_cli(s, "history", tty=tty)
            text = plain(out) if tty else out
            check(rc == 0 and b"\x1b" not in text, (rc, out, err))
            check(b"socket" in text and want in text, text)
        # a denial's message, as the agent gets it in a pipe and a person on a terminal
        d = s.client().run("FORBIDDEN")
        check(d["state"] == "denied", d)
        rc, out, err = run_cli(s, "wait", str(d["id"]), tty="stderr")
        check(rc == 3 and b"denied: no" + ON + marked(b"ESC") + OFF + b"[2J" in err, (rc, err))
        rc, out, err = run_cli(s, "wait", str(d["id"]))
        check(rc == 3 and b"denied: no\x1b[2J" in err, (rc, err))
    finally:
        done(s)


# What the snippet prints: colour, a carriage return, a byte that is not UTF-8, an RLO, text
# that spells a marker, an 8-bit CSI as a character; and on stderr a cursor-up and a bell.
PAYLOAD = b"A\x1b[31mB\rC\xff\xe2\x80\xaeD \xe2\x9f\xa8ESC\xe2\x9f\xa9 \xc2\x9b2J\n"
SHOWN = (b"A" + marked(b"ESC") + b"[31mB" + marked(b"CR") + b"C" + marked(b"\\xFF")
         + marked(b"U+202E") + b"D " + marked(b"U+27E8") + b"ESC\xe2\x9f\xa9 " + marked(b"U+009B") + b"2J\n")
ERR = b"E\x1b[1A\x07\n"
CODE = ("import sys\nsys.stdout.buffer.write(bytes.fromhex('%s')); sys.stdout.flush()\n"
        "sys.stderr.buffer.write(bytes.fromhex('%s')); sys.stderr.flush()" % (PAYLOAD.hex(), ERR.hex()))


@test
def submit_wait_status_escape_on_a_terminal_and_stay_raw_in_a_pipe():
    s = Stack()
    try:
        rc, out, err = run_cli(s, "submit", CODE)
        check(rc == 0 and out == PAYLOAD and err == ERR, (rc, out, err))
        rc, out, err = run_cli(s, "submit", CODE, tty="stdout")
        check(rc == 0 and plain(out) == SHOWN and err == ERR, (rc, out, err))
        rid = s.client().run(CODE)["id"]
        rc, out, err = run_cli(s, "wait", str(rid), tty="stdout")
        check(rc == 0 and plain(out) == SHOWN, (rc, out))
        rc, out, err = run_cli(s, "status", str(rid), tty="stderr")
        check(rc == 0 and out == PAYLOAD, (rc, out))
        check(plain(err) == b"E" + marked(b"ESC") + b"[1A" + marked(b"BEL") + b"\n", err)
        rc, out, err = run_cli(s, "wait", str(rid))
        check(rc == 0 and out == PAYLOAD and err == ERR, (rc, out, err))
        # forced either way
        rc, out, err = run_cli(s, "wait", str(rid), "--raw", tty="stdout")
        check(rc == 0 and out == PAYLOAD, (rc, out))
        rc, out, err = run_cli(s, "status", str(rid), "--escape")
        check(rc == 0 and out == SHOWN and b"\x1b" not in out + err, (rc, out, err))
        rc, out, err = run_cli(s, "wait", str(rid), "--raw", "--escape")
        check(rc == 2 and b"exclude" in err, (rc, err))
        # JSON stays JSON, with the exact bytes
        rc, out, err = run_cli(s, "wait", str(rid), "--json", tty="stdout")
        row = json.loads(out)
        check(rc == 0 and base64.b64decode(row["stdout_base64"]) == PAYLOAD, (rc, out))
    finally:
        done(s)


@test
def replay_on_a_terminal_shows_what_the_agent_got_without_running_it():
    s = Stack()
    try:
        c = s.client()
        r = c.run("print('rm -rf /srv/data\\x1b[2K\\rls -l')", session="rp")
        check(r["state"] == "done" and r["stdout"] == "rm -rf /srv/data\x1b[2K\rls -l\n", r)
        c.close()
        shown = b"rm -rf /srv/data" + marked(b"ESC") + b"[2K" + marked(b"CR") + b"ls -l\n"
        rc, out, err = run_cli(s, "replay", "rp", "--no-wait", tty="stdout")
        text = plain(out)
        check(rc == 0 and shown in text, (rc, out, err))
        # the code shows the four characters \x1b it holds, the output the real ESC
        check(b">>> print('rm -rf /srv/data\\x1b[2K\\rls -l')" in text, text)
        rc, out, err = run_cli(s, "replay", "rp", "--no-wait")
        check(rc == 0 and b"rm -rf /srv/data\x1b[2K\rls -l\n" in out, (rc, out))
        rc, out, err = run_cli(s, "replay", "rp", "--no-wait", "--escape")
        check(rc == 0 and shown in out and b"\x1b" not in out, (rc, out))
        rc, out, err = run_cli(s, "replay", "rp", "--no-wait", "--raw", tty="stdout")
        check(rc == 0 and b"rm -rf /srv/data\x1b[2K\rls -l\n" in out, (rc, out))
        # the recording keeps what the agent saw
        cast = os.path.join(s.dir, "rp.cast")
        rc, out, err = run_cli(s, "replay", "rp", "--cast", cast, tty="stdout")
        events = [json.loads(line) for line in open(cast).read().splitlines()[1:]]
        check(rc == 0 and any("rm -rf /srv/data\x1b[2K\rls -l" in e[2] for e in events), events)
    finally:
        done(s)


if __name__ == "__main__":
    raise SystemExit(run_all("screen"))
