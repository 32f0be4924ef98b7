"""The web page end to end: uvicorn on a loopback port, headless Chromium driven over W3C WebDriver.

Chromium and its driver are Debian's (``apt-get install chromium chromium-driver``); the
WebDriver client is the few HTTP calls below, made with httpx. The test types a text and
labels, sets the threshold, submits, waits for the highlighted entities (``mark.entity``)
and keeps a screenshot: in ``tmp_path``, and in ``$ANYNER_ARTIFACTS`` when it is set.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi", reason="the server needs FastAPI")
uvicorn = pytest.importorskip("uvicorn", reason="the server needs uvicorn")
httpx = pytest.importorskip("httpx", reason="the WebDriver client needs httpx")

from anyner import AnyNER  # noqa: E402
from anyner.calibration import Calibration  # noqa: E402
from anyner.serve import create_app  # noqa: E402
from tests.conftest import spread_head  # noqa: E402

pytestmark = pytest.mark.slow

TEXT = "Bill Gates founded Microsoft in Albuquerque, New Mexico, on April 4, 1975. <b>Not bold</b> & <i>x</i>"
LABELS = ["person", "organization", "location", "date"]
THRESHOLD = 0.3
CHROME_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1200,900",
]  # fmt: skip
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C WebDriver element key


def chromium_binary() -> str | None:
    real = Path("/usr/lib/chromium/chromium")  # Debian's binary behind the /usr/bin/chromium script
    return str(real) if real.is_file() else shutil.which("chromium") or shutil.which("chromium-browser")


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@contextmanager
def serving(app) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free loopback port; yields its URL."""
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30, "uvicorn to start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


class WebDriver:
    """A minimal W3C WebDriver client: a session, elements, keys, clicks, scripts, screenshots."""

    def __init__(self, driver_url: str, browser: str, profile: Path):
        self.http = httpx.Client(base_url=driver_url, timeout=60)
        options = {"binary": browser, "args": [*CHROME_ARGS, f"--user-data-dir={profile}"]}
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        r = self.http.request(method, path, json=body)
        value = r.json().get("value") if r.content else None
        if r.status_code != 200:
            raise AssertionError(f"WebDriver {method} {path}: {r.status_code} {value}")
        return value

    def cmd(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def find_all(self, css: str) -> list[str]:
        return [e[ELEMENT] for e in self.cmd("POST", "/elements", {"using": "css selector", "value": css})]

    def type(self, css: str, text: str) -> None:
        element = self.find(css)
        self.cmd("POST", f"/element/{element}/clear", {})
        self.cmd("POST", f"/element/{element}/value", {"text": text})

    def click(self, css: str) -> None:
        self.cmd("POST", f"/element/{self.find(css)}/click", {})

    def script(self, source: str, *args):
        return self.cmd("POST", "/execute/sync", {"script": source, "args": list(args)})

    def screenshot(self) -> bytes:
        return base64.b64decode(self.cmd("GET", "/screenshot"))

    def quit(self) -> None:
        try:
            self.cmd("DELETE", "")
        finally:
            self.http.close()


@pytest.fixture
def browser(tmp_path) -> Iterator[WebDriver]:
    chromedriver, chromium = shutil.which("chromedriver"), chromium_binary()
    if not chromedriver or not chromium:
        pytest.skip("headless Chromium is not installed (apt-get install -y chromium chromium-driver)")
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    log = (tmp_path / "chromedriver.log").open("wb")
    proc = subprocess.Popen([chromedriver, f"--port={port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    driver = None
    try:

        def ready():
            try:
                return httpx.get(f"{url}/status", timeout=2).json()["value"]["ready"]
            except (httpx.HTTPError, ValueError, KeyError):
                return False

        wait_for(ready, 30, "chromedriver to start")
        driver = WebDriver(url, chromium, tmp_path / "profile")
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def tiny_model(minilm_dir) -> AnyNER:
    torch.manual_seed(0)
    model = AnyNER.from_encoder(minilm_dir, hidden_size=64, num_rnn_layers=0)
    spread_head(model)
    return model


def keep_screenshot(png: bytes, tmp_path: Path) -> Path:
    out = tmp_path / "web_page.png"
    out.write_bytes(png)
    if os.environ.get("ANYNER_ARTIFACTS"):
        folder = Path(os.environ["ANYNER_ARTIFACTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, folder / out.name)
    return out


READ_RESULT = """
const marks = Array.from(document.querySelectorAll('#result mark.entity'));
return {
  marks: marks.map((m) => ({label: m.dataset.label, title: m.title, color: m.style.backgroundColor,
                            text: m.firstChild.textContent})),
  rows: Array.from(document.querySelectorAll('#table tbody tr')).map((r) => r.cells[1].textContent),
  injected: document.querySelectorAll('#result b, #result i, #table b, #table i').length,
  text: (() => {  // the text as shown, without the label tags
    const copy = document.querySelector('#result .entities').cloneNode(true);
    copy.querySelectorAll('.entity-label').forEach((tag) => tag.remove());
    return copy.textContent;
  })(),
  status: document.getElementById('status').textContent,
  error: document.getElementById('error').textContent,
};
"""


def test_the_page_highlights_entities(browser, tiny_model, tmp_path):
    torch.set_num_threads(1)
    expected = tiny_model.predict(TEXT, LABELS, threshold=THRESHOLD)
    assert expected, "the tiny model finds entities at this threshold"
    with serving(create_app(tiny_model, name="tiny test model")) as url:
        browser.get(url + "/")
        wait_for(
            lambda: "tiny test model" in browser.script("return document.body.textContent"), 30, "the page"
        )
        assert browser.script("return document.getElementById('auto-field').hidden") is True, (
            "no calibrated box for a model without calibration"
        )
        browser.type("#text", TEXT)
        browser.type("#labels", ", ".join(LABELS))
        browser.type("#threshold-value", str(THRESHOLD))
        assert browser.script("return document.getElementById('threshold').value") == str(THRESHOLD)
        browser.click("#submit")
        wait_for(lambda: browser.find_all("#result mark.entity"), 60, "highlighted entities")
        seen = browser.script(READ_RESULT)
        png = browser.screenshot()
    shot = keep_screenshot(png, tmp_path)
    assert png.startswith(b"\x89PNG") and shot.stat().st_size > 1000

    assert seen["error"] == ""
    assert seen["status"] == (f"{len(expected)} entities" if len(expected) != 1 else "1 entity")
    # flat entities: one mark each, in text order, carrying label, colour and score on hover
    assert [(m["label"], m["text"]) for m in seen["marks"]] == [(e.label, e.text) for e in expected]
    for mark, entity in zip(seen["marks"], expected, strict=True):
        assert mark["title"] == f"{entity.label} {entity.score:.2f}"
        assert mark["color"], "each label has a background colour"
    assert seen["rows"] == [e.text for e in expected]
    assert seen["injected"] == 0 and seen["text"] == TEXT, "the text's own markup is shown, not run"


def test_the_calibrated_box_sends_auto_thresholds(browser, tiny_model):
    # per-label thresholds unlike the slider's 0.5: the page must send "auto", not the number
    calibration = Calibration(labels={"person": 0.3, "organization": 0.95, "location": 0.3, "date": 0.95})
    tiny_model.calibration = calibration
    try:
        expected = tiny_model.predict(TEXT, LABELS, threshold="auto")
        assert expected, "the tiny model finds entities at these thresholds"
        assert expected != tiny_model.predict(TEXT, LABELS, threshold=0.5)
        with serving(create_app(tiny_model, name="calibrated test model")) as url:
            browser.get(url + "/")
            wait_for(
                lambda: browser.script("return !document.getElementById('auto-field').hidden"),
                30,
                "the calibrated box of a calibrated model",
            )
            browser.type("#text", TEXT)
            browser.type("#labels", ", ".join(LABELS))
            browser.click("#auto")
            assert browser.script("return document.getElementById('threshold-value').disabled") is True
            browser.click("#submit")
            wait_for(lambda: browser.find_all("#result mark.entity"), 60, "highlighted entities")
            seen = browser.script(READ_RESULT)
    finally:
        tiny_model.calibration = None
    assert seen["error"] == ""
    assert [(m["label"], m["text"]) for m in seen["marks"]] == [(e.label, e.text) for e in expected]


def test_the_page_shows_errors_as_text(browser, tiny_model):
    with serving(create_app(tiny_model)) as url:
        browser.get(url + "/")
        browser.type("#labels", " , ")
        browser.click("#submit")
        error = wait_for(
            lambda: browser.script("return document.getElementById('error').textContent"), 30, "error"
        )
        assert "at least one label" in error
        browser.type("#labels", "<<ENT>>")
        browser.click("#submit")
        wait_for(
            lambda: "422" in browser.script("return document.getElementById('error').textContent"),
            60,
            "a 422",
        )
        assert browser.find_all("#result mark.entity") == []
