"""The upgrade's own checks in FastHandler (web/gateway/_wsfast.py): a
Sec-WebSocket-Key that is not 16 bytes of base64 (RFC 6455 4.1) is a 400
with a reason, before admission, never a 500 or an upgrade. A real server,
upgrades written by hand."""
import base64
import json

import pytest

from tests.support import raw_upgrade
from web.client import TapgridClient
from web.gateway._wsfast import bad_key


@pytest.mark.parametrize("key", [
    "not base64 at all!!",                                   # not base64: was a 500
    "dGhlIHNhbXBsZSBub25jZQ",                                # 16 bytes, padding cut off
    base64.b64encode(b"x" * 15).decode(),                    # base64, but 15 bytes
    base64.b64encode(b"x" * 17).decode(),
    "",
    None,                                                    # no header at all
])
def test_an_upgrade_with_a_bad_key_is_a_400_with_a_reason(live_server, key):
    player = TapgridClient(live_server.url)
    player.guest()
    status, headers, body = raw_upgrade(live_server.port, player.token, key=key)
    assert status == 400, (status, body)
    assert headers["content-type"] == "application/json"
    refusal = json.loads(body)
    assert refusal["error"] == "bad_request" and "Sec-WebSocket-Key" in refusal["detail"], refusal
    assert "upgrade" not in headers and "sec-websocket-accept" not in headers


def test_a_good_key_still_upgrades(live_server):
    player = TapgridClient(live_server.url)
    player.guest()
    key = base64.b64encode(bytes(range(16))).decode()
    status, headers, _ = raw_upgrade(live_server.port, player.token, key=key)
    assert status == 101 and headers["upgrade"].lower() == "websocket"
    assert bad_key(key) is None and bad_key(" " + key + " ") is None
