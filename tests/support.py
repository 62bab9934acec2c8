"""Helpers the tests import (fixtures stay in conftest.py): waiting on a
condition instead of sleeping, a free loopback port, the project root,
``ServerProcess``, the ``tapgrid serve`` launcher with the per-address
sign-in limit lifted (the launcher itself, shared with perf/, is
tests/serverproc.py), a WebSocket upgrade written by hand
(``raw_upgrade``), and one line run in a server's live console
(``--backdoor``)."""
import socket
import time
from pathlib import Path

import gevent

from tests.serverproc import ROOT, free_port
from tests.serverproc import ServerProcess as _ServerProcess

__all__ = ["ROOT", "free_port", "wait_until", "ServerProcess", "VECTORS", "CONSOLE_PROMPT",
           "console_connect", "read_until", "console_line", "raw_upgrade", "parse_answer"]

#: public test vectors, beside the checkout (CI puts ../shared there too)
VECTORS = (Path(__file__).resolve().parent.parent / "../shared/vectors").resolve()


def wait_until(predicate, timeout=5.0, interval=0.005, what="condition"):
    """Poll `predicate` cooperatively until it is truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        gevent.sleep(interval)


def parse_answer(data):
    """The bytes of an HTTP answer as (status, lower-cased headers, body)."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def raw_upgrade(port, token, key="dGhlIHNhbXBsZSBub25jZQ=="):
    """A WebSocket upgrade by hand, with any ``key`` (None: no
    Sec-WebSocket-Key header): (status, lower-cased headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   + ("" if key is None else f"Sec-WebSocket-Key: {key}\r\n") + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        status, headers, body = parse_answer(data)
        if status != 101:
            while len(body) < int(headers.get("content-length", 0)):
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
    return status, headers, body


class ServerProcess(_ServerProcess):
    """`tapgrid serve` in a child process on a free loopback port (the
    launcher is shared with the benchmarks: tests/serverproc.py)."""
    # Every test client signs in from 127.0.0.1: lift the per-address
    # sign-in limit unless a test sets it (test_limits checks it).
    # The same goes for the per-address WebSocket limits and the server-wide
    # guest budget (test_caps and test_guests check them).
    base_env = {"TAPGRID_AUTH_RATE": "100000", "TAPGRID_AUTH_BURST": "100000",
                "TAPGRID_HANDSHAKE_RATE_PER_ADDRESS": "100000",
                "TAPGRID_MAX_CONNS_PER_ADDRESS": "100000",
                "TAPGRID_GUEST_RATE": "100000", "TAPGRID_GUEST_BURST": "100000"}


CONSOLE_PROMPT = b">>> "


def console_connect(path):
    """A socket to the live console at the Unix socket `path`."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def read_until(s, marker):
    """Bytes from `s` up to and including `marker`, or all until EOF."""
    buf = b""
    while not buf.endswith(marker):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def console_line(path, line):
    """Send one line after the console's prompt: (banner, what it printed
    back, up to the next prompt)."""
    with console_connect(path) as s:
        banner = read_until(s, CONSOLE_PROMPT)
        assert banner.endswith(CONSOLE_PROMPT), "the console hung up"
        s.sendall(line.encode() + b"\n")
        return banner, read_until(s, CONSOLE_PROMPT)
