"""The page in a real headless Chromium against a real `tapgrid serve`: a
guest taps a cell and follows the bet to its result, a wallet (an injected
EIP-1193 provider signing with eth-account) signs in, the market-suspended
banner shows when the feed goes quiet, and a screenshot of a game in play.

Needs /usr/bin/chromium (Debian's; CI installs it): without it these tests
fail, they do not skip."""
import json
import os
import time
import urllib.error
import urllib.request

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.support import ROOT, ServerProcess
from tests.web.browser import (SETTLED, balance_shown, credits_text,
                               record_after_click, sign_in_as_guest, state, tap_until_taken,
                               toasts, wait_bet, wait_connected, wait_error_toasts_gone, wait_js)

# Short columns so a bet settles within seconds (the page takes the grid's
# shape from the server).
FAST = {"TAPGRID_COLUMN_MS": "2000", "TAPGRID_LOCK_MS": "1000", "TAPGRID_HORIZON_MS": "20000"}
GUEST_CREDIT = 100_000
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("browser") / "tapgrid.db")
    s = ServerProcess(db, "--seed", "1", env=FAST).start()
    yield s
    s.kill()


def api_get(url, path, token):
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def settle_timeout(bet):
    """Seconds until the bet's window has closed, plus room for the resolver."""
    return max(0.0, (bet["col"] + 2000) / 1000 - time.time()) + 10


def test_guest_taps_and_follows_the_bet_to_its_result(fast_server, page_of):
    page, watch = page_of(fast_server.url)
    assert page.get_by_test_id("conn-status").get_attribute("data-state") == "idle"
    sign_in_as_guest(page)
    before, _ = balance_shown(page)
    assert before == GUEST_CREDIT == state(page)["balance"]

    page.get_by_test_id("stake-25").click()
    assert page.get_by_test_id("stake-25").get_attribute("aria-checked") == "true"
    assert page.get_by_test_id("stake-5").get_attribute("aria-checked") == "false"
    record_after_click(page)
    tap, bet, refused = tap_until_taken(page)
    assert tap["bet"] is None and tap["stake"] == 2500, tap
    assert bet["state"] == "confirmed", bet  # its window is seconds away
    assert isinstance(bet["bet"], int) and bet["bet"] > 0, bet
    staked = before - 2500
    wait_js(page, "(n) => document.querySelector('[data-testid=balance]').dataset.minor === String(n)",
            arg=staked, what="the stake to leave the balance")

    bet = wait_bet(page, tap["nonce"], SETTLED, timeout=settle_timeout(bet))
    row = page.locator(f'[data-testid=history-row][data-bet="{bet["bet"]}"]')
    wait_js(page, """([id, outcome]) => { const r = document.querySelector(
                 `[data-testid=history-row][data-bet="${id}"]`);
                 return r && r.dataset.outcome === outcome; }""",
            arg=[bet["bet"], bet["state"]], what="the settled bet in the history panel")
    assert row.count() == 1

    # The server's word on the payout; the page must show the same balance.
    token = page.evaluate("() => localStorage.getItem('tapgrid.token')")
    server_bet = next(b for b in api_get(fast_server.url, "/api/history?limit=5", token)["bets"]
                      if b["bet"] == bet["bet"])
    assert server_bet["outcome"] == bet["state"]
    payout = server_bet["payout"]
    assert {"won": payout > 2500, "lost": payout == 0, "void": payout == 2500}[bet["state"]], server_bet
    after = before - 2500 + payout
    wait_js(page, "(n) => document.querySelector('[data-testid=balance]').dataset.minor === String(n)",
            arg=after, what=f"balance {after} after a {bet['state']} bet")
    assert balance_shown(page) == (after, credits_text(after))
    assert api_get(fast_server.url, "/api/me", token)["balance"] == after == state(page)["balance"]
    # Refused taps (odds_changed) say so; nothing else may have gone wrong.
    assert [t for t in toasts(page) if t["kind"] == "error" and t["reason"] != "odds_changed"] == []
    assert all(b["bet"] is None for b in refused)
    watch.assert_clean()


def test_wallet_signs_in_and_taps(fast_server, page_of):
    acct = Account.create()
    requests = []

    def personal_sign(message_hex, address):
        requests.append((bytes.fromhex(message_hex.removeprefix("0x")).decode(), address))
        signed = Account.sign_message(encode_defunct(hexstr=message_hex), acct.key)
        return "0x" + bytes(signed.signature).hex()

    # Lowercase, as MetaMask hands accounts out; the server answers with
    # the checksummed form (SPEC section 9).
    provider = """(() => {
        const address = %s;
        window.ethereum = {
          async request({ method, params }) {
            if (method === "eth_requestAccounts" || method === "eth_accounts") return [address];
            if (method === "eth_chainId") return "0x1";
            if (method === "personal_sign") return window.__walletSign(params[0], params[1]);
            throw Object.assign(new Error(`unsupported ${method}`), { code: 4200 });
          },
          on() {}, removeListener() {},
        };
      })();""" % json.dumps(acct.address.lower())
    page, watch = page_of(fast_server.url, init_script=provider,
                          bindings={"__walletSign": personal_sign})

    page.get_by_test_id("wallet-btn").click()
    wait_connected(page)
    assert len(requests) == 1, requests
    message, address = requests[0]
    assert address.lower() == acct.address.lower()
    assert acct.address.lower() in message.lower() and "Chain ID: 1" in message
    assert "urn:tapgrid:session-key:" in message
    assert state(page)["user"].lower() == acct.address.lower()
    assert state(page)["user"] == acct.address            # checksummed
    assert page.get_by_test_id("user").inner_text().strip() == acct.address

    record_after_click(page)
    _, bet, _ = tap_until_taken(page)
    assert isinstance(bet["bet"], int) and bet["bet"] > 0, bet
    watch.assert_clean()


def quiet_feed_file(path, quick_s=8.0, gap_ms=250):
    """Ticks every `gap_ms` for `quick_s`, then nothing for an hour: the
    watchdog (stale after 2x the expected interval) suspends the market."""
    rows, price, ts = ["ts_ms,price_cents"], 9_500_000, 1_733_594_400_000
    for i in range(int(quick_s * 1000 / gap_ms)):
        rows.append(f"{ts},{price + (i % 5) * 37}")
        ts += gap_ms
    rows.append(f"{ts + 3_600_000},{price}")
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return path


def test_market_suspended_banner_when_the_feed_stops(server_factory, page_of, tmp_path):
    feed = quiet_feed_file(str(tmp_path / "quiet.csv"))
    server = server_factory("--feed", "replay", "--feed-file", feed, env=FAST)
    page, watch = page_of(server.url)
    sign_in_as_guest(page)

    banner = page.get_by_test_id("market-banner")
    banner.wait_for(state="visible", timeout=20_000)
    assert banner.get_attribute("data-reason") == "stale_price"
    assert "Market suspended" in banner.inner_text()
    assert "price feed is stale" in banner.inner_text()
    assert state(page)["market"] == "suspended"
    with pytest.raises(urllib.error.HTTPError) as health:
        urllib.request.urlopen(server.url + "/healthz", timeout=5)
    assert health.value.code == 503 and b"stale_price" in health.value.read()

    # Nothing is offered, and a tap where the cells are drawn books nothing.
    assert page.evaluate("() => window.tapgrid.openCells()") == []
    box = page.get_by_test_id("grid-canvas").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.7, box["y"] + box["height"] / 2)
    wait_js(page, """() => [...document.querySelectorAll('[data-testid=toast]')]
                 .some((t) => t.dataset.reason === 'market_suspended')""",
            what="a market_suspended toast for the tap")
    assert state(page)["bets"] == []
    assert banner.is_visible() and state(page)["connected"]
    watch.assert_clean()


def test_screenshot_of_a_game_in_play(fast_server, page_of):
    page, watch = page_of(fast_server.url)
    sign_in_as_guest(page)
    page.get_by_test_id("stake-10").click()
    record_after_click(page)
    _, first, _ = tap_until_taken(page, column_index=1)
    first = wait_bet(page, first["nonce"], SETTLED, timeout=settle_timeout(first))
    wait_js(page, "() => document.querySelectorAll('[data-testid=history-row]').length >= 1",
            what="a history row")

    # A bet still open when the picture is taken, so the board shows one.
    _, second, _ = tap_until_taken(page, column_index=4)
    assert second["state"] == "confirmed", second
    # The history panel refreshes shortly after acks and results; let it
    # catch up so the picture agrees with itself.
    wait_js(page, """([a, outcome, b]) => {
                 const row = (id) => document.querySelector(`[data-testid=history-row][data-bet="${id}"]`);
                 return row(a) && row(a).dataset.outcome === outcome && row(b); }""",
            arg=[first["bet"], first["state"], second["bet"]], what="both bets in the history panel")
    wait_error_toasts_gone(page)
    assert wait_bet(page, second["nonce"], ("confirmed",))["state"] == "confirmed"
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "page.png")
    page.screenshot(path=shot)
    assert os.path.getsize(shot) > 10_000
    # The README's pictures (a win, a stack, the summary) are taken by
    # tests/web/test_page.py; this one stays an artifact.
    watch.assert_clean()
