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
def report_html(tmp_path_factory):
    from robustalign.report import run_example_audit

    out = tmp_path_factory.mktemp("browser") / "report"
    run_example_audit(rng=0, n_resamples=100, n_permutations=100).write(out)
    return out / "report.html"


def test_report_renders_in_chromium_with_every_figure_and_no_console_errors(report_html, tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", f"--remote-debugging-port={port}",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        ws_url = None
        for _ in range(100):
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
        cdp.send("Page.navigate", url=report_html.as_uri())
        cdp.wait_for("Page.loadEventFired")
        res = cdp.send("Runtime.evaluate", returnByValue=True, expression="""JSON.stringify({
            title: document.title,
            images: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
            verdicts: document.querySelectorAll('div.v').length,
            sections: Array.from(document.querySelectorAll('h2')).map(h => h.id),
            external: Array.from(document.querySelectorAll('[src],[href]'))
                .map(e => e.getAttribute('src') || e.getAttribute('href')).filter(u => !u.startsWith('data:'))
        })""")
        info = json.loads(res["result"]["value"])
        errors = [e for e in cdp.events if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
                  or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
        cdp.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert not errors, f"console errors: {errors}"
    assert info["sections"] == ["verdicts", "evidence", "diagnostics"]
    assert info["verdicts"] > 10
    assert info["external"] == []
    n_png = report_html.read_text().count("data:image/png;base64,")
    assert len(info["images"]) == n_png > 10
    bad = [i for i, (complete, w, h) in enumerate(info["images"]) if not (complete and w > 0 and h > 0)]
    assert not bad, f"images that did not load: {bad}"
