"""``Link``: the bus's raw Redis connection, against a real redis-server.

- a pipeline's replies come back in order, an error reply in its place
  while the commands after it still run (what the tap loop relies on: an
  XACK refused must not lose the read in the same trip);
- ``entries`` reads XREAD/XREADGROUP replies as ``[(id, {field: value})]``,
  a pending entry trimmed away meanwhile as ``{}``, and no reply as ``[]``;
- Redis killed and started again: the call in between raises a
  ``RedisError``, the next one reconnects by itself.
"""
import redis

from actors.bus import Link, entries
from tests.web.auth.test_replay_redis import RedisProcess, own_redis  # noqa: F401


def test_a_pipeline_answers_in_order_with_errors_in_place(own_redis):  # noqa: F811
    client = own_redis.client()
    link = Link(client)
    client.set("str", "x")
    got = link.pipeline([("XADD", "s", "*", "f", "1"), ("XADD", "str", "*", "f", "2"),
                         ("XLEN", "s")])
    assert isinstance(got[0], bytes) and b"-" in got[0]
    assert isinstance(got[1], redis.ResponseError) and "WRONGTYPE" in str(got[1])
    assert got[2] == 1
    assert link.call("XLEN", "s") == 1
    link.close()


def test_entries_of_a_group_read_and_a_trimmed_pending_entry(own_redis):  # noqa: F811
    client = own_redis.client()
    link = Link(client)
    ids = [client.xadd("s", {"k": "a", "n": str(i)}) for i in range(3)]
    client.xgroup_create("s", "g", id="0")
    read = ("XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "STREAMS", "s")
    got = entries(link.call(*read, ">"))
    assert got == [(ids[i], {b"k": b"a", b"n": str(i).encode()}) for i in range(3)]
    client.xdel("s", ids[1])                 # trimmed while pending
    pending = entries(link.call(*read, "0"))
    assert pending == [(ids[0], {b"k": b"a", b"n": b"0"}), (ids[1], {}),
                       (ids[2], {b"k": b"a", b"n": b"2"})]
    assert entries(link.call("XREAD", "COUNT", 5, "BLOCK", 10, "STREAMS", "s", ids[2])) == []
    assert entries(None) == []
    link.close()


def test_a_link_reconnects_after_redis_restarts(own_redis):  # noqa: F811
    link = Link(own_redis.client())
    assert link.call("PING") in (b"PONG", "PONG")
    own_redis.kill()
    try:
        link.call("PING")
    except redis.RedisError:
        pass
    else:
        raise AssertionError("a PING to a dead Redis answered")
    own_redis.start()
    assert link.call("PING") in (b"PONG", "PONG")
    link.close()
