"""The listening socket of a server or gateway.

With ``reuse_port`` (SO_REUSEPORT) several gateway processes bind the same
address and the kernel spreads new connections over them by a hash of the
peer's address and port: no process of ours relays bytes, and a gateway
that dies takes only its own connections (and its accept queue) with it.
Linux only lets processes of the same user share the port.

A deep accept queue: a reconnect storm arrives faster than one loop
accepts, and the default 128 makes the kernel drop SYNs.
"""
import socket

__all__ = ["listen_socket", "BACKLOG"]

BACKLOG = 4096


def listen_socket(host, port, reuse_port=False, backlog=BACKLOG):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
