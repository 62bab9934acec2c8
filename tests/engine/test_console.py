"""The REPL console: actors keep running while it waits for input."""
import os
import subprocess
import sys

from tests.support import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r'''
from engine import ActorSystem
from engine._console import interact
interact({"system": ActorSystem()}, banner="ready")
'''

SESSION = '''\
from engine import Actor
class Ticker(Actor):
    def on_start(self):
        self.n = 0
        self.schedule_every(0.005, "tick")
    def receive(self, msg):
        if msg == "tick":
            self.n += 1
            open(PATH, "w").write(str(self.n))
        else:
            return self.n

t = system.spawn(Ticker, name="ticker")
'''


def _count(path):
    try:
        with open(path) as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


def test_actors_run_while_the_console_waits_for_input(tmp_path):
    path = str(tmp_path / "count")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        proc.stdin.write(f"PATH = {path!r}\n" + SESSION + "\n")
        proc.stdin.flush()
        # No more input: the console sits at its prompt. The ticker must
        # still tick, or the hub is blocked by the prompt.
        wait_until(lambda: _count(path) >= 20 or proc.poll() is not None, timeout=10,
                   what="the actor to run while the prompt waits")
        assert proc.poll() is None, proc.stdout.read()
        proc.stdin.write("print('ticks', t.ask('n') >= 20)\n")
        proc.stdin.write("print(system.actors())\n")
        proc.stdin.close()          # EOF ends the console
        out = proc.stdout.read()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "ticks True" in out
    assert "ticker" in out and "processed" in out


def test_backdoor_refuses_a_shared_directory(tmp_path):
    """The socket must live in a private directory: a 0755 one is refused."""
    from engine._console import start_backdoor
    import pytest
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    with pytest.raises(ValueError):
        start_backdoor(str(shared / "bd.sock"), {})


def test_http_request_lines_are_recognised():
    from engine._console import looks_like_http
    assert looks_like_http("GET /(1)if()else(exec('x'))or HTTP/1.1")
    assert looks_like_http("OPTIONS * HTTP/1.1")
    assert looks_like_http("CONNECT example.com:443 HTTP/1.1")
    assert not looks_like_http("system.actors()")
    assert not looks_like_http("GET = 3")
