"""engine.Child with real processes: restarted with backoff after kill -9,
stopped with SIGTERM then SIGKILL, readiness through the notify protocol,
and gone with its parent when the parent is killed with -9."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from engine import Child, ChildFailed
from tests.serverproc import exited
from tests.support import ROOT, wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_killed_child_is_restarted_with_growing_backoff():
    c = Child("sleeper", SLEEPER, backoff=(0.2, 5.0)).start()
    try:
        first = c.pid
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: c.restarts == 1 and c.alive, 5, what="first restart")
        second = c.pid
        assert second != first
        t0 = time.monotonic()
        os.kill(second, signal.SIGKILL)
        wait_until(lambda: c.restarts == 2 and c.alive, 5, what="second restart")
        # the second wait is the doubled delay (0.4 s), not the first one's
        assert time.monotonic() - t0 >= 0.35
        assert c.pid not in (first, second)
    finally:
        assert c.stop(5) == -signal.SIGTERM
    assert not c.alive


def test_stop_sigkills_a_child_that_ignores_sigterm():
    stubborn = [sys.executable, "-c", textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)""")]
    r, w = os.pipe()
    c = Child("stubborn", stubborn, stdout=w).start()
    os.close(w)
    try:
        assert os.read(r, 16).startswith(b"ready")     # SIGTERM is ignored from here on
        t0 = time.monotonic()
        assert c.stop(0.5) == -signal.SIGKILL
        assert time.monotonic() - t0 < 5
    finally:
        os.close(r)
    assert c.restarts == 0


def test_readiness_through_notify_socket(tmp_path):
    script = [sys.executable, "-c", textwrap.dedent("""
        import sys, time
        sys.path.insert(0, %r)
        from engine import notify_ready
        time.sleep(0.2)
        assert notify_ready()
        time.sleep(60)""" % ROOT)]
    c = Child("notifier", script, notify_dir=str(tmp_path)).start()
    try:
        assert not c.ready.is_set()
        c.wait_ready(10)
        assert c.ready.is_set()
        os.kill(c.pid, signal.SIGKILL)
        # a restart is not ready until it says so again
        wait_until(lambda: c.restarts == 1, 5, what="restart")
        c.wait_ready(10)
    finally:
        c.stop(5)
    assert not os.path.exists(tmp_path / "notify-notifier.sock")


def test_a_child_that_exits_before_ready_fails_the_wait(tmp_path):
    c = Child("quitter", [sys.executable, "-c", "raise SystemExit(3)"],
              notify_dir=str(tmp_path), backoff=(5.0, 5.0)).start()
    try:
        with pytest.raises(ChildFailed) as err:
            c.wait_ready(10)
        assert err.value.returncode == 3
    finally:
        c.stop(1)


def test_children_die_with_a_parent_killed_with_sigkill(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, gevent
        sys.path.insert(0, %r)
        from engine import Child
        c = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"]).start()
        print(c.pid, flush=True)
        gevent.sleep(60)""" % ROOT)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert not exited(child)
        parent.kill()
        parent.wait()
        wait_until(lambda: exited(child), 10, interval=0.05, what="child gone with its parent")
    finally:
        parent.kill()
        parent.wait()
