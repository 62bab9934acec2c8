"""Exceptions and system messages of the engine."""

__all__ = ["ActorDeadError", "AskTimeout", "MailboxFull", "Escalation",
           "Terminated", "DeadLetter"]


class ActorDeadError(RuntimeError):
    """The actor is stopped (or stopped before it answered)."""


class AskTimeout(TimeoutError):
    """No reply arrived within the ask's timeout."""


class MailboxFull(RuntimeError):
    """A bounded mailbox with the ``reject`` policy refused a message."""


class Escalation(RuntimeError):
    """A child's failure that its supervisor could not handle, raised in the
    supervisor itself so that *its* supervisor decides."""

    def __init__(self, child_path, cause):
        super().__init__(f"{child_path} failed beyond its restart limit: {cause!r}")
        self.child_path = child_path
        self.cause = cause


class Terminated:
    """Delivered to every watcher when the watched actor stops for good."""
    __slots__ = ("ref",)

    def __init__(self, ref):
        self.ref = ref

    def __eq__(self, other):
        return isinstance(other, Terminated) and other.ref == self.ref

    def __hash__(self):
        return hash(("Terminated", self.ref))

    def __repr__(self):
        return f"Terminated({self.ref!r})"


class DeadLetter:
    """A message that could not be delivered, kept for inspection."""
    __slots__ = ("recipient", "message", "reason")

    def __init__(self, recipient, message, reason):
        self.recipient = recipient
        self.message = message
        self.reason = reason

    def __repr__(self):
        return f"DeadLetter(to={self.recipient!r}, reason={self.reason!r}, message={self.message!r})"
