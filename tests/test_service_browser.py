"""The web page in headless Chromium (Debian's, driven by Playwright): recognise, enrol, find again, edit.

Screenshots go to out/browser/ (test artifacts). Skips only when no Chromium can be found.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed: pip install -e '.[service]'")
httpx = pytest.importorskip("httpx", reason="the test extra is not installed: pip install -e '.[test]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'")

from faceprint.service.testing import running_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "out" / "browser"
CELEB = "5-celebrity-faces"
# Chromium's background services try the network at start; on a closed network they only add noise.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",  # a fake webcam for getUserMedia
]


def chromium() -> str | None:
    for candidate in (os.environ.get("FACEPRINT_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                      "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def photo(data_dir: Path, split: str, person: str, i: int = 0) -> Path:
    return sorted((data_dir / CELEB / split / person).glob("*.jpg"))[i]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> str:
    db = tmp_path_factory.mktemp("browser") / "gallery.db"
    with running_server(db) as url:
        with httpx.Client(base_url=url, timeout=120) as c:  # madonna is known before the page opens
            pid = c.post("/v1/people", json={"name": "madonna"}).json()["id"]
            r = c.post(f"/v1/people/{pid}/faces", files={"image": photo(data_dir, "train", "madonna").read_bytes()})
            assert r.status_code == 201, r.text
        yield url


@pytest.fixture(scope="module")
def page(server: str):  # noqa: ANN201
    exe = chromium()
    if exe is None:
        pytest.skip("Chromium not found (apt-get install chromium, or set FACEPRINT_CHROMIUM): browser tests skipped")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=FLAGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        context.grant_permissions(["camera"], origin=server)
        pg = context.new_page()
        pg.set_default_timeout(120_000)  # networks on 2 shared CPU cores
        pg.on("dialog", lambda d: d.accept())
        pg.goto(server + "/")
        yield pg
        browser.close()


def recognise(page, path: Path) -> list[dict]:  # noqa: ANN001
    page.evaluate("document.body.dataset.busy = 'wait'")
    page.set_input_files("#file", str(path))
    # predicates are functions, evaluated once: a string would be eval()'d on every poll, which the
    # page's Content-Security-Policy (no 'unsafe-eval') rightly refuses
    page.wait_for_function("() => document.body.dataset.busy === '0'")
    return json.loads(page.get_attribute("#canvas", "data-faces") or "[]")


def test_recognise_a_known_face(page, data_dir: Path) -> None:  # noqa: ANN001
    faces = recognise(page, photo(data_dir, "val", "madonna", 2))
    assert [f["name"] for f in faces] == ["madonna"] and faces[0]["distance"] < 0.6
    item = page.locator("#results li").first
    assert item.get_attribute("data-name") == "madonna" and "madonna 0." in item.inner_text()
    # the photo and its box are drawn: the canvas has the image's size and a green box pixel at the box edge
    size = page.evaluate("[document.querySelector('#canvas').width, document.querySelector('#canvas').height]")
    assert size[0] > 100 and size[1] > 100
    loc = faces[0]["location"]
    rgb = page.evaluate(
        "([x, y]) => Array.from(document.querySelector('#canvas').getContext('2d').getImageData(x, y, 1, 1).data)",
        [round(loc["left"]), round(loc["top"] + loc["height"] / 2)],
    )
    assert rgb[1] > 120 and rgb[0] < 80 and rgb[2] < 80  # #0a0
    page.screenshot(path=str(SHOTS / "recognised.png"), full_page=True)


def test_enrol_then_find_again_rename_and_delete(page, data_dir: Path, server: str) -> None:  # noqa: ANN001
    faces = recognise(page, photo(data_dir, "train", "jerry_seinfeld"))
    assert len(faces) == 1 and faces[0]["name"] is None
    assert "unknown" in page.locator("#results li").first.inner_text()
    page.fill("#enrol-name", "jerry")
    page.click("#enrol-btn")
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Enrolled jerry')")
    assert page.locator("#results li").first.get_attribute("data-name") == "jerry"
    row = page.locator("#people tr[data-name='jerry']")
    assert row.locator(".count").inner_text() == "1"
    # another photo of him is recognised
    faces = recognise(page, photo(data_dir, "val", "jerry_seinfeld"))
    assert [f["name"] for f in faces] == ["jerry"]
    page.screenshot(path=str(SHOTS / "enrolled.png"), full_page=True)

    # rename from the people table
    row.locator("input.rename").fill("jerry_seinfeld")
    row.locator(".rename-btn").click()
    page.wait_for_selector("#people tr[data-name='jerry_seinfeld']")
    assert [p["name"] for p in httpx.get(f"{server}/v1/people").json()["people"]] == ["jerry_seinfeld", "madonna"]

    # browse his faces (thumbnail drawn from the kept photo), remove the face, then the person
    row = page.locator("#people tr[data-name='jerry_seinfeld']")
    row.locator(".show-btn").click()
    page.wait_for_selector("#face-list .face")
    page.wait_for_function(
        "() => { const c = document.querySelector('#face-list canvas');"
        " return Array.from(c.getContext('2d').getImageData(40, 40, 16, 16).data).some(v => v > 0); }"
    )
    page.screenshot(path=str(SHOTS / "faces.png"), full_page=True)
    page.click("#face-list .delete-face")
    page.wait_for_function("() => document.querySelector(\"#people tr[data-name='jerry_seinfeld'] .count\").textContent === '0'")
    page.locator("#people tr[data-name='jerry_seinfeld'] .delete-btn").click()  # confirm() accepted
    page.wait_for_selector("#people tr[data-name='jerry_seinfeld']", state="detached")
    assert [p["name"] for p in httpx.get(f"{server}/v1/people").json()["people"]] == ["madonna"]


def test_webcam_capture(page) -> None:  # noqa: ANN001
    """getUserMedia with Chromium's fake camera: a test pattern, so no face, but the round trip works."""
    page.evaluate("document.body.dataset.busy = 'wait'")
    page.click("#webcam-btn")
    page.wait_for_function("() => document.querySelector('#video').videoWidth > 0")
    page.click("#capture-btn")
    page.wait_for_function("() => document.body.dataset.busy === '0'")
    assert page.get_attribute("#status", "class") in (None, "")  # not an error
    assert page.evaluate("document.querySelector('#canvas').width") > 0
    page.click("#camera-stop")
