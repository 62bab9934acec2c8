"""The broadcaster sleeps until there is something to send: a tick or a
grid, however it is remembered (the market's Sinks calls in one process,
RelayFanout.relay's assignments in a split gateway), wakes it, and it
sends the latest at once, then at most fanout_hz times a second."""
import gevent

from actors import Config, Tick
from web.gateway._hub import Fanout
from web.gateway._relay import RelayFanout
from web.gateway._wsfast import encode_text_frame
from tests.support import wait_until


class Player:
    """What the broadcaster needs of a connection: a uid and send()."""
    uid = 1

    def __init__(self):
        self.frames = []

    def send(self, data, droppable=False):
        self.frames.append((data, droppable))


def broadcasting(fan):
    player = Player()
    fan.add(player)
    return player, gevent.spawn(fan._broadcast_loop)


def test_a_tick_from_the_market_is_broadcast_without_waiting_for_a_poll():
    fan = Fanout(Config(fanout_hz=0.1))        # a poll would wait 10 s
    player, loop = broadcasting(fan)
    try:
        gevent.sleep(0)
        fan.on_tick(Tick(6_500_000, 1_700_000_000_000))
        wait_until(lambda: player.frames, timeout=5, what="the tick sent long before a poll would")
        assert player.frames == [(encode_text_frame(b'{"type":"tick","p":6500000,"t":1700000000000}'), True)]
        assert fan.broadcasts == 1
    finally:
        loop.kill()


def test_a_relayed_tick_wakes_the_broadcaster_too():
    fan = RelayFanout(Config(fanout_hz=20))
    player, loop = broadcasting(fan)
    try:
        frames = [encode_text_frame(b'{"type":"tick","p":%d,"t":%d}' % (p, p)) for p in (1, 2)]
        fan.relay(b"t", {"p": 1, "t": 1}, [frames[0]])
        wait_until(lambda: len(player.frames) == 1, timeout=5, what="the first relayed tick")
        fan.relay(b"t", {"p": 2, "t": 2}, [frames[1]])
        wait_until(lambda: len(player.frames) == 2, timeout=5, what="the second relayed tick")
        assert [f for f, _ in player.frames] == frames
    finally:
        loop.kill()
