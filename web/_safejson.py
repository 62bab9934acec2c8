"""JSON from clients, with the nesting depth bounded before it is parsed.

``json.loads`` recurses once per ``[`` or ``{``: a 2 KB text of brackets
raises ``RecursionError`` (not a ``ValueError``), which escaped the error
handlers as a dropped WebSocket or an HTTP 500. Nothing in the protocol
nests deeper than a few levels, so a text that could nest deeper than
``MAX_DEPTH`` is refused as malformed, cheaply: counting brackets is a C
loop, and only a text with many brackets pays for a real depth scan.

>>> loads('{"type":"ping"}')
{'type': 'ping'}
>>> loads("[" * 1000 + "]" * 1000)
Traceback (most recent call last):
...
web._safejson.TooDeep: JSON nested deeper than 32
>>> loads('{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')
{'a': '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['}
"""
import json
import re

__all__ = ["loads", "TooDeep", "MAX_DEPTH"]

MAX_DEPTH = 32

# A JSON string (so brackets inside strings do not count), or one bracket.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


class TooDeep(ValueError):
    """A ValueError, so callers that refuse malformed JSON refuse this too."""


def depth(text):
    """The deepest nesting of ``[``/``{`` outside strings."""
    d = deepest = 0
    for m in _TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            d += 1
            if d > deepest:
                deepest = d
        elif c in "]}":
            d -= 1
    return deepest


def loads(text, max_depth=MAX_DEPTH):
    """``json.loads``, raising ``ValueError`` (never ``RecursionError``) for
    any text that is not acceptable JSON of at most ``max_depth`` levels."""
    if isinstance(text, (bytes, bytearray)):
        opens = text.count(b"[") + text.count(b"{")
    else:
        opens = text.count("[") + text.count("{")
    if opens > max_depth:
        if isinstance(text, (bytes, bytearray)):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError("not UTF-8") from e
        if depth(text) > max_depth:
            raise TooDeep(f"JSON nested deeper than {max_depth}")
    try:
        return json.loads(text)
    except RecursionError as e:    # unreachable after the check; kept as a net
        raise TooDeep("JSON nested too deeply") from e
