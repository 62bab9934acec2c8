"""A Python console in which actors keep running while you type, and a
loopback backdoor to attach the same console to a live server.

A plain ``input()`` blocks the whole gevent hub, so nothing else runs until
the user presses Enter. Here the line is read in a native thread (readline
editing still works), and the main greenlet waits for it cooperatively::

    from engine import ActorSystem
    from engine._console import interact
    interact({"system": ActorSystem()})      # actors run between keystrokes
"""
import code
import sys

from gevent import get_hub

__all__ = ["GreenConsole", "interact", "start_backdoor"]

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


def start_backdoor(address, namespace, banner=BANNER):
    """Serve the console on ``address`` (host, port); loopback only, since
    whoever connects runs code in the server."""
    from gevent.backdoor import BackdoorServer
    host, port = address
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError("the backdoor listens on loopback only")
    server = BackdoorServer((host, port), locals=namespace, banner=banner)
    server.start()
    return server
