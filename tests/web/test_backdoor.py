"""The backdoor is a private Unix socket (issue 15, finding 1): a web page
cannot reach it, another uid is refused, the owner gets the live console.

Probed against a real `tapgrid serve --backdoor PATH`. The tests run as
root; "another uid" is a child process that setuid()s to `nobody`."""
import _socket
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from tests.support import CONSOLE_PROMPT as PROMPT
from tests.support import ServerProcess, console_connect, console_line, read_until


@pytest.fixture(scope="module")
def backdoor():
    # Under a world-traversable directory, so that only the backdoor's own
    # directory and socket modes (not pytest's 0700 tmp dir) keep others out.
    top = tempfile.mkdtemp(prefix="tapgrid-bd-")
    os.chmod(top, 0o755)
    path = os.path.join(top, "console", "backdoor.sock")
    server = ServerProcess(os.path.join(top, "tapgrid.db"), "--seed", "1", "--backdoor", path).start()
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "the backdoor socket did not appear"
        time.sleep(0.02)
    yield server, path, top
    server.kill()
    shutil.rmtree(top, ignore_errors=True)


def test_the_socket_is_private(backdoor):
    _, path, _ = backdoor
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


def test_the_owner_gets_the_live_console(backdoor):
    server, path, top = backdoor
    banner, out = console_line(path, "print('total', market.ctx.ledger is not None, server.port)")
    assert b"tapgrid shell" in banner
    assert f"total True {server.port}".encode() in out


def test_the_attach_command_relays_the_console(backdoor):
    _, path, _ = backdoor
    out = subprocess.run([sys.executable, "-m", "web.cli", "attach", path],
                         input="print(6 * 7)\n", capture_output=True, text=True, timeout=30,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr
    assert "42" in out.stdout


@pytest.mark.parametrize("request_text", [
    # The exploit: the request path is a Python expression.
    "GET /(1)if()else(open({mark!r},'w').write('x'))or HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    # What `new WebSocket("ws://...")` sends.
    "GET /(1)if()else(open({mark!r},'w').write('x'))or HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n\r\n",
    # HTTP/0.9 style, no version.
    "POST /(1)if()else(open({mark!r},'w').write('x'))or\r\n\r\n",
])
def test_an_http_request_gets_nothing_executed(backdoor, request_text):
    _, path, top = backdoor
    mark = os.path.join(top, f"pwned-{time.monotonic_ns()}")
    with console_connect(path) as s:
        read_until(s, PROMPT)
        s.sendall(request_text.format(mark=mark).encode())
        rest = b""
        while True:                      # the server hangs up: read to EOF
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
    assert not os.path.exists(mark), "the request line was evaluated"
    # Nothing after the request line was evaluated either (no NameError
    # traces for "Host:" and friends, no second prompt).
    assert b"Traceback" not in rest and PROMPT not in rest
    # The console still serves its owner afterwards.
    assert b"42" in console_line(path, "print(6 * 7)")[1]


def _as_nobody(path, mark):
    """Fork a child that becomes `nobody` and tries the console (the
    interpreter under /root is not executable by nobody, so no exec);
    returns what it saw, or the errno of its connect."""
    nobody = pwd.getpwnam("nobody")
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:                                  # the child: never returns
        code = 1
        try:
            os.close(rd)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            # The C socket module: the suite may have gevent-patched `socket`,
            # whose hub a forked child must not use.
            s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(path)
            except OSError as e:
                os.write(wr, f"connect-error {e.errno}".encode())
            else:
                try:
                    s.sendall(f"open({mark!r}, 'w').write('x')\n".encode())
                except OSError:
                    pass        # already hung up on: refused before the line went out
                data = b""
                while True:
                    try:
                        chunk = s.recv(65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    data += chunk
                os.write(wr, b"got " + repr(data).encode())
            code = 0
        except BaseException as exc:           # said through the pipe, not lost
            os.write(wr, f"child failed: {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(wr)
    with os.fdopen(rd, "rb") as f:
        seen = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, seen
    return seen


def test_another_uid_is_kept_out_by_the_file_modes(backdoor):
    _, path, top = backdoor
    mark = os.path.join(top, "pwned-nobody-1")
    assert _as_nobody(path, mark).startswith("connect-error 13")     # EACCES
    assert not os.path.exists(mark)


def test_another_uid_is_refused_by_peer_credentials(backdoor):
    """Even with the modes loosened (an operator's mistake), the uid check
    per connection gives another user no banner, no prompt, no eval."""
    _, path, top = backdoor
    directory = os.path.dirname(path)
    mark = os.path.join(top, "pwned-nobody-2")
    os.chmod(directory, 0o777)
    os.chmod(path, 0o777)
    try:
        seen = _as_nobody(path, mark)
    finally:
        os.chmod(path, 0o600)
        os.chmod(directory, 0o700)
    assert seen == "got b''", seen
    assert not os.path.exists(mark)
    assert b"42" in console_line(path, "print(6 * 7)")[1]


def test_a_tcp_address_is_refused():
    from engine._console import start_backdoor
    with pytest.raises(ValueError):
        start_backdoor("127.0.0.1:5001", {})
