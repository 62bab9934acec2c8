"""Real headless Chromium for the page's end-to-end tests: launch it, watch
a page for console errors, sign in, tap an open cell, wait on the page's
read-only `window.tapgrid` hooks.

    from playwright.sync_api import sync_playwright
    from tests.web.browser import launch, open_page, sign_in_as_guest, tap_open_cell
    with sync_playwright() as pw:
        browser = launch(pw)                     # a Browser, or a str saying why not
        page, watch = open_page(browser, "http://127.0.0.1:8080")
        sign_in_as_guest(page)
        cell = tap_open_cell(page)               # {t0, lo, mult, x, y}
        watch.assert_clean()
"""
import os

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SETTLED = ("won", "lost", "void")


def launch(pw):
    """The Debian Chromium, or a message saying why it is not there. The
    message is returned, not raised, so that each test using it FAILS
    (a fixture error would read as a setup problem, a skip would hide it)."""
    if not os.path.exists(CHROMIUM):
        return (f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                "(apt-get install chromium); CI installs it")
    try:
        return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as exc:  # noqa: BLE001 - turned into a test failure below
        return f"{CHROMIUM} did not start: {exc}"


class PageWatch:
    """Collects what a player would never see but a broken page shows:
    console errors and uncaught exceptions."""

    def __init__(self, page):
        self.errors = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, msg):
        if msg.type == "error":
            self.errors.append(f"console.error: {msg.text} @ {msg.location}")

    def assert_clean(self):
        assert self.errors == [], "the page logged errors:\n" + "\n".join(self.errors)


def open_page(browser, url, init_script=None, bindings=None, phone=False):
    """A fresh context (own localStorage, so no saved session) on `url`;
    `init_script` runs before the page's own, `bindings` ({name: fn}) are
    Python functions the page can call as window[name](...). `phone`: a
    390x844 touch screen instead of the desktop."""
    if isinstance(browser, str):
        pytest.fail(browser)
    if phone:
        context = browser.new_context(viewport=PHONE, device_scale_factor=1, has_touch=True, is_mobile=True)
    else:
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    if init_script:
        context.add_init_script(init_script)
    for name, fn in (bindings or {}).items():
        context.expose_function(name, fn)
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(url + "/")
    page.wait_for_function("() => window.tapgrid !== undefined", timeout=10_000)
    return page, watch


def state(page):
    return page.evaluate("() => window.tapgrid.state()")


def wait_js(page, predicate, arg=None, timeout=10.0, what="condition"):
    """Wait, polling inside the page, until `predicate(arg)` (a JS function
    text) is truthy; returns its value."""
    try:
        return page.wait_for_function(predicate, arg=arg, timeout=timeout * 1000,
                                      polling=50).json_value()
    except Exception as exc:
        if type(exc).__name__ != "TimeoutError":
            raise
        snapshot = page.evaluate("() => window.tapgrid && window.tapgrid.state()")
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                             f"page state: {snapshot}") from None


def wait_connected(page, timeout=15.0):
    wait_js(page, """() => window.tapgrid.state().connected &&
        document.querySelector('[data-testid=conn-status]').dataset.state === 'connected'""",
            timeout=timeout, what="the page to connect")
    dismiss_explainer(page)


def dismiss_explainer(page):
    """The first-run explainer covers the board until 'Got it'."""
    ok = page.get_by_test_id("explainer-ok")
    if ok.is_visible():
        ok.click()


def sign_in_as_guest(page):
    page.get_by_test_id("guest-btn").click()
    wait_connected(page)


def balance_shown(page):
    """(data-minor as int, the text shown) of the balance display."""
    node = page.get_by_test_id("balance")
    minor = node.get_attribute("data-minor")
    return (int(minor) if minor else None), node.inner_text().strip()


def credits_text(minor, sign=False):
    """What format.js's credits() shows for `minor` units: 101230 ->
    '1,012.30'; with `sign`, a gain as '+1,012.30'."""
    text = f"{abs(minor) // 100:,}.{abs(minor) % 100:02d}"
    if minor < 0:
        return "\u2212" + text
    return ("+" + text) if sign else text


def pick_cell(page, column_index=2):
    """An open cell in the `column_index`-th open column (not the nearest,
    which may lock before the click lands), the band nearest the middle of
    the board, where the live price is."""
    cells = wait_js(page, "() => { const c = window.tapgrid.openCells(); return c.length ? c : null; }",
                    what="open cells")
    columns = sorted({c["t0"] for c in cells})
    t0 = columns[min(column_index, len(columns) - 1)]
    column = [c for c in cells if c["t0"] == t0]
    height = page.get_by_test_id("grid-canvas").bounding_box()["height"]
    return min(column, key=lambda c: abs(c["y"] - height / 2))


def click_cell(page, cell):
    """Click the board where `cell` is drawn. The point must reach the
    canvas: anything drawn over it (a toast, a dialog) would take the click
    instead, and a test would wait for a tap that was never made."""
    box = page.get_by_test_id("grid-canvas").bounding_box()
    x, y = box["x"] + cell["x"], box["y"] + cell["y"]
    over = page.evaluate("""([x, y]) => {
        const el = document.elementFromPoint(x, y);
        if (el && el.dataset.testid === 'grid-canvas') return null;
        return el ? (el.dataset.testid || el.className || el.tagName) : 'nothing';
    }""", [x, y])
    assert over is None, f"the cell at ({x:.0f}, {y:.0f}) is covered by {over!r}: the click would miss the board"
    page.mouse.click(x, y)


def cell_at(page, t0, lo):
    """The open cell (t0, lo) where the board draws it now, or None."""
    return page.evaluate("""([t0, lo]) => window.tapgrid.openCells()
        .find((c) => c.t0 === t0 && c.lo === lo) || null""", [t0, lo])


def cell_at_price(page, column_index=2, bands=0):
    """The open cell `bands` bands above (negative: below) the one holding
    the live price, in the `column_index`-th open column, or None."""
    return page.evaluate("""([ci, bands]) => {
        const cells = window.tapgrid.openCells();
        const cols = [...new Set(cells.map((c) => c.t0))].sort((a, b) => a - b);
        if (!cols.length) return null;
        const t0 = cols[Math.min(ci, cols.length - 1)];
        const p = Number(document.querySelector('[data-testid=price]').textContent.replace(/[$,]/g, ''));
        const band = 1000;
        const lo = Math.floor(Math.round(p * 100) / band) * band + bands * band;
        return cells.find((c) => c.t0 === t0 && c.lo === lo) || null;
    }""", [column_index, bands])


def tap_open_cell(page, column_index=2):
    cell = pick_cell(page, column_index)
    click_cell(page, cell)
    return cell


def record_after_click(page):
    """Snapshot the bets right after each canvas click. This listener is
    added after the page's own, so it runs once the tap is booked and
    before any ack can arrive: it sees the `pending` state however fast
    the server answers."""
    page.evaluate("""() => {
        window.__afterClick = [];
        document.querySelector('[data-testid=grid-canvas]').addEventListener('click', () => {
            window.__afterClick.push(window.tapgrid.state().bets.map((b) => ({...b})));
        });
    }""")


def after_click(page):
    return page.evaluate("() => window.__afterClick")


def wait_bet(page, nonce, states, timeout=10.0):
    """The bet with `nonce` once its state is one of `states`."""
    return wait_js(page, """([nonce, states]) => {
        const b = window.tapgrid.state().bets.find((x) => x.nonce === nonce);
        return b && states.includes(b.state) ? b : null;
    }""", arg=[nonce, list(states)], timeout=timeout, what=f"bet {nonce} to be {'/'.join(states)}")


def tap_until_taken(page, column_index=2, attempts=6):
    """Tap open cells until the server takes one; returns (the tap as booked
    right after its click, the bet once confirmed or settled, the taps
    refused on the way). The page sends the multiplier the player saw as
    min_mult (SPEC section 3), so a reprice between drawing and tapping
    is refused with odds_changed; any other refusal fails the test.
    Needs record_after_click(page) first."""
    refused = []
    for _ in range(attempts):
        before = {b["nonce"] for b in state(page)["bets"]}
        cell = tap_open_cell(page, column_index)
        booked = after_click(page)[-1]
        fresh = [b for b in booked if b["nonce"] not in before and b["state"] == "pending"]
        # On a busy machine the board can scroll a column between reading
        # the cell and the click landing: the tap is then on its neighbour.
        tap = next((b for b in fresh if b["col"] == cell["t0"] and b["lo"] == cell["lo"]), fresh[-1] if fresh else None)
        assert tap is not None, f"the click on {cell} booked no pending tap: {booked}"
        bet = wait_bet(page, tap["nonce"], ("confirmed", "rejected") + SETTLED)
        if bet["state"] != "rejected":
            return tap, bet, refused
        assert bet["reason"] == "odds_changed", bet
        refused.append(bet)
    raise AssertionError(f"{attempts} taps in a row were refused: {refused}")


def toasts(page):
    return page.evaluate("""() => [...document.querySelectorAll('[data-testid=toast]')]
        .map((t) => ({reason: t.dataset.reason || null, kind: t.dataset.kind, text: t.textContent}))""")


def wait_error_toasts_gone(page, timeout=8):
    """Until no refusal toast shows (an odds_changed retry's is no picture for the README)."""
    wait_js(page, """() => ![...document.querySelectorAll('[data-testid=toast]')]
                 .some((t) => t.dataset.kind === 'error')""", timeout=timeout, what="error toasts to clear")


AXE_VERSION = "4.10.2"


def axe_source(cache_dir):
    """axe-core's axe.min.js, fetched from the npm registry with `npm pack`
    on first use and cached under `cache_dir` (never committed: the tests'
    artifacts folder is ignored). A machine without npm or the registry
    fails the test that needs it, loudly."""
    import shutil
    import subprocess
    import tarfile
    target = os.path.join(cache_dir, f"axe-core-{AXE_VERSION}.min.js")
    if os.path.exists(target):
        with open(target) as f:
            return f.read()
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is missing: the accessibility scan fetches axe-core from the npm registry")
    os.makedirs(cache_dir, exist_ok=True)
    out = subprocess.run([npm, "pack", f"axe-core@{AXE_VERSION}", "--silent", "--pack-destination", cache_dir],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        pytest.fail(f"npm pack axe-core@{AXE_VERSION} failed: {out.stderr[-500:]}")
    tgz = os.path.join(cache_dir, out.stdout.strip().splitlines()[-1])
    with tarfile.open(tgz) as tar:
        source = tar.extractfile("package/axe.min.js").read().decode()
    os.remove(tgz)
    with open(target + ".tmp", "w") as f:
        f.write(source)
    os.replace(target + ".tmp", target)
    return source


def axe_violations(page, impacts=("serious", "critical")):
    """Run axe-core in the page (WCAG 2 A and AA rules); the violations of
    the given impacts as [(rule id, impact, [target selectors])]."""
    # A drawer sliding in or a toast fading is half-drawn: colour contrast
    # read mid-transition is noise. Scan a settled page.
    page.wait_for_function("() => document.getAnimations().every((a) => a.playState !== 'running')",
                           timeout=8000, polling=50)
    if not page.evaluate("() => typeof window.axe === 'object'"):
        pytest.fail("axe-core is not in the page: open it with init_script=axe_source(...) "
                    "(the page's CSP refuses an injected inline script)")
    result = page.evaluate("""async () => await axe.run(document,
        {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})""")
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:5])
            for v in result["violations"] if v["impact"] in impacts]
