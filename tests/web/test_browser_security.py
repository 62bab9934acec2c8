"""The page's defences in a real headless Chromium (issue 15): it refuses to
render inside another site's frame (clickjacking), it still works under its
own Content-Security-Policy, and Sign out revokes the session on the server.

Needs /usr/bin/chromium (Debian's; CI installs it)."""
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support import ServerProcess
from tests.web.browser import open_page, sign_in_as_guest, wait_js


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("bsec") / "tapgrid.db"), "--seed", "1").start()
    yield s
    s.kill()


@pytest.fixture
def attacker(server):
    """A page on another origin that frames the game, as a clickjacker would."""
    html = (f'<!doctype html><title>win a prize</title>'
            f'<iframe id="victim" src="{server.url}/" width="1000" height="700"></iframe>').encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    # "localhost" and 127.0.0.1 are different origins (and sites) to the browser.
    yield f"http://localhost:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_the_page_refuses_to_render_in_a_frame(browser, server, attacker):
    if isinstance(browser, str):
        pytest.fail(browser)
    context = browser.new_context()
    try:
        page = context.new_page()
        refused = []
        page.on("console", lambda m: refused.append(m.text) if "frame" in m.text.lower() else None)
        page.goto(attacker)
        page.wait_for_load_state("load")
        frame = next(f for f in page.frames if f is not page.main_frame)
        # The framed document is Chromium's error page, not the game: no
        # tapgrid hooks, no canvas, no buttons a hidden click could hit.
        assert frame.url != server.url + "/"
        assert frame.query_selector("[data-testid=grid-canvas]") is None
        assert frame.query_selector("[data-testid=guest-btn]") is None
        assert any("frame-ancestors" in t or "X-Frame-Options" in t for t in refused), refused
    finally:
        context.close()


def test_the_page_works_under_its_csp(browser, server):
    page, watch = open_page(browser, server.url)
    try:
        violations = []
        page.on("console", lambda m: violations.append(m.text)
                if "Content Security Policy" in m.text else None)
        sign_in_as_guest(page)
        wait_js(page, "() => window.tapgrid.openCells().length > 0", what="open cells")
        assert violations == []
        watch.assert_clean()
    finally:
        page.context.close()


def _me(url, token):
    req = urllib.request.Request(url + "/api/me", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_sign_out_revokes_the_token_on_the_server(browser, server):
    page, watch = open_page(browser, server.url)
    try:
        sign_in_as_guest(page)
        token = page.evaluate("() => localStorage.getItem('tapgrid.token')")
        assert token and _me(server.url, token) == 200
        page.get_by_test_id("signout-btn").click()
        wait_js(page, "() => !window.tapgrid.state().connected && !localStorage.getItem('tapgrid.token')",
                what="the page to sign out")
        # The old token is dead on the server, not just forgotten by the page.
        from tests.support import wait_until
        wait_until(lambda: _me(server.url, token) == 401, timeout=10, what="the token to be revoked")
        watch.assert_clean()
    finally:
        page.context.close()
