"""The ``Actor`` base class and ``ActorRef``, the handle everyone else holds.

An ``ask`` returns what ``receive`` returned; an exception in ``receive``
reaches the asker, and the supervisor restarts the actor for the next one:

    >>> from engine import ActorSystem, Actor
    >>> class Greeter(Actor):
    ...     def receive(self, name):
    ...         if not name: raise ValueError("who?")
    ...         return "hello " + name
    >>> system = ActorSystem()
    >>> ref = system.spawn(Greeter, name="greeter")
    >>> ref.ask("bob", timeout=1)
    'hello bob'
    >>> ref.ask("", timeout=1)
    Traceback (most recent call last):
    ...
    ValueError: who?
    >>> ref.ask("ann", timeout=1)
    'hello ann'
    >>> system.stop()
"""
from ._supervision import OneForOne

__all__ = ["Actor", "ActorRef"]


class Actor:
    """Subclass and override ``receive`` (or ``receive_batch``).

    ``receive(msg)`` handles one message; its return value answers ``ask``.
    ``receive_batch(batch)`` (optional) takes everything queued at once, up
    to ``max_batch``: ``batch`` is a list of ``(message, reply)`` pairs where
    ``reply`` is a :class:`Future` for an ask and ``None`` for a tell; the
    actor answers each itself (``reply.set(v)`` / ``reply.fail(exc)``), now or
    later. If it raises, every reply it left unanswered fails with that error.
    """

    #: strategy applied to this actor's children
    supervisor_strategy = OneForOne()
    #: largest batch handed to ``receive_batch``
    max_batch = 1000
    #: messages handled before yielding to other greenlets
    throughput = 500

    # Set by the engine before __init__ runs, so __init__ may use them.
    ref = None
    system = None
    _cell = None

    def on_start(self):
        """Called in the actor's greenlet before the first message (and after a restart)."""

    def on_stop(self):
        """Called once when the actor stops (and on the old instance at a restart)."""

    def on_failure(self, exc):
        """Called with the exception when ``receive`` raised, before the supervisor decides."""

    def receive(self, msg):
        raise NotImplementedError(f"{type(self).__name__} does not handle {msg!r}")

    # --- helpers usable from inside the actor ---------------------------------

    @property
    def name(self):
        return self._cell.name

    @property
    def parent(self):
        return self._cell.parent.ref if self._cell.parent is not None else None

    @property
    def children(self):
        return [c.ref for c in self._cell.children]

    def spawn(self, cls, *args, name=None, **options):
        """Spawn a child supervised by this actor's ``supervisor_strategy``."""
        return self.system._spawn(cls, args, options, name=name, parent=self._cell)

    def watch(self, ref):
        """Receive ``Terminated(ref)`` when ``ref`` stops for good."""
        ref._cell.add_watcher(self._cell)

    def unwatch(self, ref):
        ref._cell.remove_watcher(self._cell)

    def schedule_once(self, delay, msg):
        """Tell ``msg`` to this actor after ``delay`` seconds; cancelled on stop."""
        return self._cell.timers.once(delay, msg)

    def schedule_every(self, interval, msg, first=None):
        """Tell ``msg`` every ``interval`` seconds; cancelled on stop."""
        return self._cell.timers.every(interval, msg, first)

    def defer_reply(self):
        """Take over the current ask's reply (to answer it later, or hand it to
        another actor). Returns the :class:`Future`, or None for a tell."""
        cell = self._cell
        fut, cell.current_reply = cell.current_reply, None
        return fut

    def stop(self):
        """Stop this actor after the messages already queued."""
        self._cell.request_stop(drain=True)


class ActorRef:
    """The only way to talk to an actor. Cheap to copy, safe to share."""
    __slots__ = ("_cell", "tell", "__weakref__")

    def __init__(self, cell):
        self._cell = cell
        # Bound once so ``ref.tell`` is one call, not two: tell is the hot path.
        self.tell = cell.tell

    @property
    def name(self):
        return self._cell.name

    @property
    def path(self):
        return self._cell.path

    @property
    def stats(self):
        return self._cell.stats

    @property
    def alive(self):
        return self._cell.state in ("starting", "running", "restarting")

    def ask(self, msg, timeout=5.0):
        """Send ``msg`` and wait for the reply; the handler's exception is
        raised here. Raises ``ActorDeadError`` or ``AskTimeout``."""
        cell = self._cell
        if cell.is_current():
            raise RuntimeError(f"{cell.path} cannot ask itself: it would wait for itself")
        return cell.ask(msg).get(timeout)

    def ask_async(self, msg):
        """Send ``msg`` and return the reply :class:`Future` without waiting."""
        return self._cell.ask(msg)

    def stop(self, drain=True, wait=True, timeout=5.0):
        """Stop the actor: by default after the messages already queued
        (``drain``), waiting until it has stopped."""
        self._cell.request_stop(drain=drain)
        if wait and not self._cell.is_current():
            self._cell.stopped.wait(timeout)
        return not self.alive

    def join(self, timeout=None):
        """Wait until the actor has stopped."""
        return self._cell.stopped.wait(timeout)

    def __eq__(self, other):
        return isinstance(other, ActorRef) and other._cell is self._cell

    def __hash__(self):
        return id(self._cell)

    def __repr__(self):
        return f"<ActorRef {self._cell.path} {self._cell.state}>"
