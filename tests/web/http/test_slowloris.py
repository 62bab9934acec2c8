"""Slowloris (issue 15, finding 7), probed on loopback against a real
server: connections that send their request head or body a byte at a time
are cut off at a deadline (not per byte), the handler pool is bounded below
the descriptor limit, and /healthz keeps answering through it all."""
import os

import gevent
import gevent.event
import gevent.select
import pytest
from gevent import socket as gsocket

from tests.support import wait_until

ENV = {"TAPGRID_HEADER_TIMEOUT_S": "2", "TAPGRID_BODY_TIMEOUT_S": "2", "TAPGRID_MAX_HANDLERS": "40"}


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def trickle(port, head, closed, stop):
    """Send `head`, then one more header byte every 0.3 s until the server
    hangs up (recorded in `closed`) or `stop` is set."""
    s = gsocket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        s.sendall(head)
        while not stop.is_set():
            try:
                s.sendall(b"x")
            except OSError:
                break
            readable = gevent.select.select([s], [], [], 0.3)[0]
            if readable:
                try:
                    if not s.recv(4096):
                        break
                except OSError:
                    break
        else:
            return
        closed.append(True)
    finally:
        s.close()


def healthz(port, timeout=30):
    s = gsocket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b" ", 2)[1] if data else b""
    finally:
        s.close()


def test_slow_request_heads_are_cut_off_and_health_answers(server_factory):
    s = server_factory("--seed", "1", env=ENV)
    baseline = open_fds(s.pid)
    closed, peak = [], [baseline]
    stop = gevent.event.Event()
    attackers = [gevent.spawn(trickle, s.port, b"GET /api/grid HTTP/1.1\r\nX-Slow: ", closed, stop)
                 for _ in range(60)]
    try:
        def watch():
            while not stop.is_set():
                peak.append(open_fds(s.pid))
                gevent.sleep(0.05)
        watcher = gevent.spawn(watch)
        gevent.sleep(1.0)
        # The health check gets through while the attack goes on.
        assert healthz(s.port) == b"200"
        # Every slow head was cut off at its deadline, though bytes kept coming.
        wait_until(lambda: len(closed) == 60, timeout=30, interval=0.1,
                   what="the server to cut off every slow request head")
        # The pool of 40 handlers bounded the descriptors the attack could take.
        assert max(peak) <= baseline + 40 + 5, (baseline, max(peak))
    finally:
        stop.set()
        gevent.joinall(attackers, timeout=10)
        watcher.kill()


def test_a_slow_body_gets_408(server_factory):
    s = server_factory("--seed", "1", env=ENV)
    sock = gsocket.create_connection(("127.0.0.1", s.port), timeout=30)
    try:
        sock.sendall(b"POST /api/auth/guest HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{")
        answer = b""
        for _ in range(200):                      # a byte every 0.1 s: 20 s in all
            try:
                sock.sendall(b" ")
            except OSError:
                break
            if gevent.select.select([sock], [], [], 0.1)[0]:
                answer = sock.recv(4096)
                break
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    finally:
        sock.close()


def test_an_idle_keep_alive_connection_is_closed(server_factory):
    s = server_factory("--seed", "1", env=ENV)
    sock = gsocket.create_connection(("127.0.0.1", s.port), timeout=30)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while True:                      # the answer, then EOF after the idle deadline
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 200")
    finally:
        sock.close()
