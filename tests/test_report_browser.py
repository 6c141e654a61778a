"""The generated report.html in a real browser: headless Chromium renders it offline, every figure
loads (naturalWidth > 0) and the console shows no errors. Driven over the Chrome DevTools protocol.

``make test`` installs the Debian ``chromium`` package when it is missing; this test skips, loudly,
only when no Chromium binary can be found.
"""

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="SKIPPED LOUDLY: no Chromium binary found, so the report was NOT checked in a browser. "
           "Install it with `apt-get install -y chromium` (make test tries this itself).",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _CDP:
    def __init__(self, ws_url):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.id = 0
        self.events = []

    def send(self, method, **params):
        self.id += 1
        self.ws.send(json.dumps({"id": self.id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method, timeout=30):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if any(e.get("method") == method for e in self.events):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {method} within {timeout} s")


@pytest.fixture(scope="module")
def report_html(example_report):
    """report.html of the example audit (tests/conftest.py; shared with test_report.py)."""
    return example_report[1] / "report.html"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium and a DevTools connection to its page; one per module (it starts in seconds)."""
    port = _free_port()
    profile = tmp_path_factory.mktemp("profile")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
         f"--remote-debugging-port={port}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        ws_url = None
        for _ in range(150):
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2))
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    ws_url = pages[0]["webSocketDebuggerUrl"]
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert ws_url, "Chromium did not expose a page over the DevTools protocol"
        cdp = _CDP(ws_url)
        for m in ("Page.enable", "Runtime.enable", "Log.enable"):
            cdp.send(m)
        # the first screen of a laptop: 1280 x 800 CSS pixels
        cdp.send("Emulation.setDeviceMetricsOverride", width=1280, height=800, deviceScaleFactor=1, mobile=False)
        yield cdp
        cdp.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _open(cdp, path):
    cdp.events.clear()
    cdp.send("Page.navigate", url=path.as_uri())
    cdp.wait_for("Page.loadEventFired")


def _js(cdp, expression):
    return json.loads(cdp.send("Runtime.evaluate", returnByValue=True,
                               expression=f"JSON.stringify({expression})")["result"]["value"])


def _broken_images(cdp) -> list[int]:
    """Indices of the page's images that did not decode (the check a broken report must fail)."""
    imgs = _js(cdp, "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    return [i for i, (complete, w, h) in enumerate(imgs) if not (complete and w > 0 and h > 0)]


def test_report_renders_in_chromium_with_every_figure_and_no_console_errors(report_html, browser):
    cdp = browser
    _open(cdp, report_html)
    info = _js(cdp, """{
        title: document.title,
        n_images: document.images.length,
        verdicts: document.querySelectorAll('.v').length,
        sections: Array.from(document.querySelectorAll('h2')).map(h => h.id),
        external: Array.from(document.querySelectorAll('[src],[href]'))
            .map(e => e.getAttribute('src') || e.getAttribute('href'))
            .filter(u => !u.startsWith('data:') && !u.startsWith('#'))
    }""")
    errors = [e for e in cdp.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert not errors, f"console errors: {errors}"
    assert info["sections"] == ["summary", "verdicts", "terms", "evidence", "diagnostics"]
    assert info["verdicts"] > 10
    assert info["external"] == []
    n_png = report_html.read_text().count("data:image/png;base64,")
    assert info["n_images"] == n_png > 10
    bad = _broken_images(cdp)
    assert not bad, f"images that did not load: {bad}"


def test_the_image_check_catches_a_broken_image(report_html, browser, tmp_path):
    html = report_html.read_text()
    start = html.index("data:image/png;base64,") + len("data:image/png;base64,")
    end = html.index("'", start)
    broken = tmp_path / "broken.html"
    broken.write_text(html[:start] + "iVBORw0KGgoAAAANotapng" + html[end:])  # a PNG header, then garbage
    _open(browser, broken)
    assert _broken_images(browser) == [0]


def test_first_screen_shows_the_summary_grid_toc_and_every_verdict(report_html, browser, tmp_path):
    import base64

    cdp = browser
    _open(cdp, report_html)
    shot = base64.b64decode(cdp.send("Page.captureScreenshot", format="png")["data"])
    (tmp_path / "first_screen.png").write_bytes(shot)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(shot[16:20], "big"), int.from_bytes(shot[20:24], "big")
    assert (width, height) == (1280, 800)  # the screenshot is the first screen, nothing more
    box = "e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }"
    pos = _js(cdp, f"""{{
        toc: ({box})(document.querySelector('#toc')),
        summary: ({box})(document.querySelector('#summary')),
        grids: Array.from(document.querySelectorAll('table.grid')).map({box}),
        badges: Array.from(document.querySelectorAll('table.grid .badge')).map({box}),
        window: [window.innerWidth, window.innerHeight, window.scrollY]
    }}""")
    from robustalign.report import run_example_audit  # noqa: F401  (same audit as the fixture)

    assert pos["window"] == [1280, 800, 0]
    n_verdicts = report_html.read_text().count("<tr class='v ") + report_html.read_text().count("<div class='v ")
    assert len(pos["badges"]) == n_verdicts > 10  # one badge per verdict in the grid
    for name in ("toc", "summary"):
        left, top, right, bottom = pos[name]
        assert 0 <= top and bottom <= 800 and right <= 1280, (name, pos[name])
    off = [b for b in pos["badges"] if not (b[0] >= 0 and b[1] >= 0 and b[2] <= 1280 and b[3] <= 800
                                            and b[2] > b[0] and b[3] > b[1])]
    assert not off, f"{len(off)} of {len(pos['badges'])} verdict badges are outside the first screen: {off[:3]}"
