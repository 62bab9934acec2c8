"""A Python console in which actors keep running while you type, and a
backdoor (a private Unix socket) to attach the same console to a live server.

A plain ``input()`` blocks the whole gevent hub, so nothing else runs until
the user presses Enter. Here the line is read in a native thread (readline
editing still works), and the main greenlet waits for it cooperatively::

    from engine import ActorSystem
    from engine._console import interact
    interact({"system": ActorSystem()})      # actors run between keystrokes
"""
import code
import os
import re
import socket
import stat
import struct
import sys

from gevent import get_hub

__all__ = ["GreenConsole", "interact", "start_backdoor", "stop_backdoor", "looks_like_http",
           "peer_uid"]

BANNER = ("tapgrid shell: actors keep running while you type.\n"
          "`system` is a live ActorSystem; try system.actors().")


class GreenConsole(code.InteractiveConsole):
    def raw_input(self, prompt=""):
        # Reading in the threadpool lets the hub run actors, timers and
        # sockets while the user thinks.
        line = get_hub().threadpool.apply(_read_line, (prompt,))
        if line is None:
            raise EOFError   # raised here, not in the thread: gevent would log it
        return line


def _read_line(prompt):
    if sys.stdin.isatty():
        try:
            return input(prompt)
        except EOFError:
            return None
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        return None
    return line.rstrip("\n")


def interact(namespace, banner=BANNER):
    try:
        import readline  # noqa: F401  (line editing and history)
    except ImportError:
        pass
    GreenConsole(namespace).interact(banner=banner, exitmsg="bye")


# A request line (with or without its version): what a browser, curl or a
# proxy sends first. Python code never starts like this, so the console
# hangs up instead of evaluating a line a web page chose.
_HTTP_LINE = re.compile(
    r"\s*(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE|PRI)\s+(/|\*|\w+://|\S+\s+HTTP/)")


_HOST_PORT = re.compile(r"[\w.\-\[\]:]*:\d+")


def looks_like_http(line):
    return bool(_HTTP_LINE.match(line))


def peer_uid(conn):
    """The uid of the process at the other end of a Unix socket (the kernel's
    word, SO_PEERCRED; nothing the peer can claim)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)[1]


def _private_dir(path):
    """Create ``path`` 0700, or accept it only if it is ours and private:
    the directory, not just the socket's mode, keeps other users out."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise ValueError(f"{path} must be a directory owned by this user with mode 0700 "
                         "(the backdoor socket goes in a private directory)")


class _SocketConsole(code.InteractiveConsole):
    def __init__(self, namespace, hangup):
        super().__init__(namespace)
        self._hangup = hangup

    def raw_input(self, prompt=""):
        line = super().raw_input(prompt)
        if looks_like_http(line):
            self._hangup()
            raise EOFError
        return line


def _backdoor_class():
    from gevent.backdoor import BackdoorServer, _StdErr, _StdIn
    from gevent.hub import getcurrent

    class UnixBackdoor(BackdoorServer):
        def handle(self, conn, _address):
            try:
                uid = peer_uid(conn)
            except OSError:
                uid = None
            if uid != os.geteuid():
                # Refused before a byte is read or written: no banner, no prompt.
                self.refused += 1
                conn.close()
                return
            raw_file = conn.makefile(mode="r")
            getcurrent().stdin = _StdIn(conn, raw_file)
            getcurrent().stdout = _StdErr(conn, raw_file)
            getcurrent().switch_in()
            try:
                _SocketConsole(self._create_interactive_locals(), self._http_refused).interact(
                    banner=self.banner, exitmsg="")
            except SystemExit:
                pass
            except OSError:
                pass      # the peer went away mid-line
            finally:
                raw_file.close()
                conn.close()

        def _http_refused(self):
            self.http_refused += 1

    return UnixBackdoor


def start_backdoor(path, namespace, banner=BANNER):
    """Serve the console on a Unix socket at ``path`` (mode 0600, in a 0700
    directory) for this user only: whoever connects runs code in the server.

    The kernel's file permissions keep other users out, SO_PEERCRED checks
    the uid again per connection (root, or loosened permissions, do not get
    through), and a line that looks like an HTTP request closes the session
    unevaluated. There is no TCP form: a browser can reach any loopback port,
    never a Unix socket. Connect with ``tapgrid attach PATH`` or
    ``socat - UNIX-CONNECT:PATH``."""
    if not isinstance(path, str) or not path or _HOST_PORT.fullmatch(path):
        raise ValueError("the backdoor is a Unix socket path (the TCP form was removed)")
    path = os.path.abspath(path)
    _private_dir(os.path.dirname(path))
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)            # a stale socket from a previous run
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)              # born 0600: no window where others may connect
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(16)
    from gevent.socket import socket as gsocket
    listener = gsocket(fileno=sock.detach(), family=socket.AF_UNIX, type=socket.SOCK_STREAM)
    server = _backdoor_class()(listener, locals=namespace, banner=banner)
    server.refused = server.http_refused = 0
    server.path = path
    server.start()
    return server


def stop_backdoor(server):
    server.stop()
    try:
        os.unlink(server.path)
    except OSError:
        pass
