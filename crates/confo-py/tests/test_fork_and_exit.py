"""Threads inside a call at the two moments a process loses them: fork() and interpreter exit.

Each test runs a small program in a fresh interpreter (the module's fork handlers and the
interpreter's exit are per process) and checks how it ends.
"""

import os
import subprocess
import sys
import textwrap

_BUSY_WRITER = """
import os, sys, threading, time
from confo.Confo import Confo
import confo.Backends as BE

config = Confo()
config.load_backend(credentials={"config_path": sys.argv[1]}, name="files", backend_type=BE.FILE_BACKEND)
config.activate_backend("files")
config.create_namespace("ns", exist_ok=True)
config.use_namespace("ns")
stop = False

def writer():
    i = 0
    while not stop:
        i += 1
        config.set("busy", "i", i)
        config.persist()

threading.Thread(target=writer, daemon=True).start()
time.sleep(0.2)
"""


def _run(program, *args, timeout=240):
    return subprocess.run(
        [sys.executable, "-c", _BUSY_WRITER + textwrap.dedent(program), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )


def test_forks_while_another_thread_persists_never_leave_a_child_waiting(tmp_path):
    """300 forks while a thread persists to a file store in a loop: each child writes and
    exits. Before the fork handlers, 1.5% of children hung on a lock (the folder's flock kept
    by their copy of the writer's descriptor, then the session's state lock held by the writer
    thread the child does not have); every one must finish."""
    result = _run(
        """
        hung = 0
        for k in range(300):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    name = "child%d" % k
                    config.set(name, "k", k)
                    config.persist(namespace="ns", config=name)
                    code = 0
                finally:
                    os._exit(code)
            deadline = time.monotonic() + 10
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    if os.waitstatus_to_exitcode(status) != 0:
                        print("child %d failed" % k)
                    break
                if time.monotonic() > deadline:
                    hung += 1
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.001)
        stop = True
        print("hung", hung)
        """,
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "failed" not in result.stdout, result.stdout
    assert result.stdout.strip().endswith("hung 0"), result.stdout


def test_the_interpreter_exits_cleanly_while_a_daemon_thread_is_inside_a_call(tmp_path):
    """A daemon thread persisting in a loop when the program ends: Python (before 3.14) ends
    such a thread with pthread_exit() as it asks for the GIL again, unwinding through confo's
    frames. Built with zig's own unwinder inside, the module crashed there (SIGSEGV, every run);
    the process must exit with status 0."""
    for _ in range(3):
        result = _run("", str(tmp_path), timeout=60)
        assert result.returncode == 0, (result.returncode, result.stderr[-2000:])


def test_a_session_let_go_of_in_a_forked_child_before_any_call_there(tmp_path):
    """A session made and used before a fork, never used in the child and collected there
    (a gunicorn worker that drops what the master loaded): its runtime's threads exist only in
    the parent, and dropping it waited for them for ever. The child must exit at once."""
    result = _run(
        """
        stop = True
        other = Confo.__wrapped__()
        other.load_backend(credentials={"config_path": sys.argv[1]}, name="files", backend_type=BE.FILE_BACKEND)
        other.activate_backend("files")
        other.use_namespace("ns")
        other.get("busy")
        watcher = other.watch("ns")
        pid = os.fork()
        if pid == 0:
            import gc
            del other, watcher
            gc.collect()
            os._exit(0)
        deadline = time.monotonic() + 20
        while not os.waitpid(pid, os.WNOHANG)[0]:
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                print("hung")
                break
            time.sleep(0.01)
        print("done")
        """,
        str(tmp_path),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["done"], result.stdout
