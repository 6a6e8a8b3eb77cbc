"""Forks N times while another thread persists to a file store in a loop; each child writes a
configuration of its own and exits. Prints how many children hung (did not finish within 5 s;
killed). Run with the package importable: `python crates/confo-py/bench/forks.py 2000`.
Results: docs/PERFORMANCE.md and the README (0 of 2,000; before the fork fixes, 60 of 60)."""

import os
import sys
import tempfile
import threading
import time

import confo.Backends as BE
from confo.Confo import Confo

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
root = tempfile.mkdtemp()
config = Confo()
config.load_backend(credentials={"config_path": root}, name="files", backend_type=BE.FILE_BACKEND)
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
hung = failed = 0
for k in range(n):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            config.set("child%d" % k, "k", k)
            config.persist(namespace="ns", config="child%d" % k)
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 5
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            failed += os.waitstatus_to_exitcode(status) != 0
            break
        if time.monotonic() > deadline:
            hung += 1
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            break
        time.sleep(0.001)
stop = True
print("forks %d hung %d failed %d" % (n, hung, failed))
