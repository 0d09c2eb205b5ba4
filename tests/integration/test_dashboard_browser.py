"""The dashboard in real headless Chromium, after a real replay of vtest.avi.

Chromium is Debian's package (``scripts/system-deps.sh`` installs it); Playwright's Python client
drives it through ``executable_path``, so no browser download is involved.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support.services import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
XREID = [sys.executable, "-m", "workers.cli"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "browser-test-token-41d2"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory, vtest_path) -> Path:
    """The store of a short replay of vtest.avi through the whole chain (tracks, re-ID, matcher)."""
    out = tmp_path_factory.mktemp("replay")
    proc = subprocess.run([*XREID, "replay", "--camera", f"cam1:rgb:{vtest_path}", "--max-frames", "60",
                           "--start-time", "2026-11-24T08:00:00Z", "--no-progress", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out / "xreid.sqlite"


@pytest.fixture(scope="module")
def server(replayed, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "wb") as err:
        # replay and serve both default to the committed tiny model, so image search meets the replay's gallery
        proc = subprocess.Popen([*XREID, "serve", "--store", str(replayed), "--port", str(port)],
                                cwd=REPO,
                                env={**os.environ, "XREID_API__TOKEN": TOKEN}, stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200 or proc.poll() is not None
        except httpx.HTTPError:
            return proc.poll() is not None

    try:
        wait_until(up, timeout=60, what="xreid serve")
        assert proc.poll() is None, log.read_text()[-2000:]
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)



@contextlib.contextmanager
def _dashboard(server: str, tmp_path, page_errors: list[str]):
    """A headless Chromium tab on the dashboard; page errors land in ``page_errors``."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900})
        try:
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.goto(server)
            yield page
        finally:
            browser.close()


def test_dashboard_shows_identities_and_a_cross_camera_timeline(server, tmp_path):
    identities = httpx.get(f"{server}/identities", headers=AUTH, params={"limit": 24}).json()
    assert identities["total"] > 0, "the replay produced no identity"
    first = identities["items"][0]
    detail = httpx.get(f"{server}/identities/{first['identity_id']}", headers=AUTH).json()

    page_errors: list[str] = []
    with _dashboard(server, tmp_path, page_errors) as page:
        # the server wants a token: the page asks for it, keeps it for the tab
        expect(page.locator("#token-dialog")).to_be_visible()
        page.fill("#token-input", TOKEN)
        page.press("#token-input", "Enter")

        cards = page.locator(".identity-card")
        expect(cards).to_have_count(len(identities["items"]))
        expect(page.locator('#cameras tr[data-camera="cam1"]')).to_be_visible()
        expect(page.locator("#store-status")).to_contain_text("store schema")
        # the RGB thumbnail of the first card really loaded (fetched with the token)
        thumb = cards.first.locator("img.thumb").first
        wait_until(lambda: thumb.evaluate("img => img.complete && img.naturalWidth > 0"), timeout=15,
                   what="the first identity's RGB thumbnail")
        page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

        cards.first.click()
        expect(page.locator("#identity-title")).to_have_text(f"Person #{first['identity_id']}")
        bars = page.locator("#timeline .timeline-bar")
        expect(bars).to_have_count(len(detail["timeline"]))
        lanes = {f"{t['camera_id']} · {t['modality']}" for t in detail["timeline"]}
        for lane in lanes:
            expect(page.locator("#timeline .lane-label", has_text=lane)).to_have_count(1)
        expect(page.locator("#tracks tr.track-row")).to_have_count(len(detail["timeline"]))
        page.screenshot(path=str(tmp_path / "identity.png"), full_page=True)

        # "where else?": search by one of its tracks from the identity page
        page.locator("#tracks tr.track-row a", has_text="similar").first.click()
        expect(page.locator("#search-results h2")).to_contain_text("nearest identit")
        page.screenshot(path=str(tmp_path / "search.png"), full_page=True)

        # search by uploading an image (the tiny synthetic-trained model ranks real people poorly: check the flow, not the rank)
        crop = tmp_path / "crop.jpg"
        crop.write_bytes(httpx.get(server + detail["timeline"][0]["thumbnail_url"], headers=AUTH).content)
        page.goto(f"{server}/#/search")
        page.set_input_files("#search-files", str(crop))
        page.click("#search-form button[type=submit]")
        hits = page.locator("#search-results li.hit")
        expect(hits).to_have_count(min(10, identities["total"]))
        expect(page.locator("#search-results h2")).to_contain_text("nearest identit")
        known = {f"Person #{i['identity_id']}" for i in identities["items"]}
        assert hits.first.locator("a").inner_text() in known or identities["total"] > len(identities["items"])
        page.screenshot(path=str(tmp_path / "search-image.png"), full_page=True)

    assert not page_errors, page_errors
    for name in ("overview.png", "identity.png", "search.png", "search-image.png"):
        shot = tmp_path / name
        assert shot.is_file() and shot.stat().st_size > 10_000, name
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dashboard_shows_new_identities_live_from_the_event_stream(server, replayed, tmp_path):
    """The matcher commits a new identity while the overview is open: its card and the event appear, no reload."""
    before = httpx.get(f"{server}/identities", headers=AUTH, params={"limit": 1}).json()["total"]
    page_errors: list[str] = []
    with _dashboard(server, tmp_path, page_errors) as page:
        page.fill("#token-input", TOKEN)
        page.press("#token-input", "Enter")
        expect(page.locator(".identity-card")).to_have_count(min(before, 24))
        expect(page.locator("#live-state")).to_have_text("live")
        navigations = page.evaluate("performance.getEntriesByType('navigation').length")

        new_identity = _match_a_new_person(replayed)   # the matcher's write, in another process's place

        card = page.locator(f'.identity-card[data-identity="{new_identity}"]')
        expect(card).to_be_visible(timeout=15_000)
        expect(card).to_contain_text(f"Person #{new_identity}")
        feed = page.locator('#live-feed li[data-kind="identity.created"]')
        expect(feed).to_contain_text(f"new person #{new_identity}")
        expect(page.locator('#live-counters .live-count[data-kind="track.started"]')).to_contain_text("1")
        assert page.evaluate("performance.getEntriesByType('navigation').length") == navigations, "no reload"
        page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
    assert not page_errors, page_errors


def _match_a_new_person(store_path: Path) -> int:
    """One clip of somebody nobody has seen (a model of its own), through the real matcher stage and announcer."""
    import numpy as np

    from pipeline.bus import STREAM_EMBEDDINGS, MemoryBus
    from pipeline.bus.messages import Embedding, make_clip_id
    from pipeline.matcher.announce import Announcer
    from pipeline.matcher.matcher import Matcher
    from pipeline.matcher.stage import MatcherStage
    from pipeline.store.base import Store

    vec = np.eye(16, dtype=np.float32)[3]
    with Store(store_path) as store:
        bus = MemoryBus()
        stage = MatcherStage(bus, store, Matcher(), announcer=Announcer())
        bus.publish(STREAM_EMBEDDINGS, Embedding(make_clip_id("cam9", "live-1", 0), "cam9", "rgb", "live-1", 0,
                                                 1_795_000_000.0, 1_795_000_004.0, vec, "live@0").to_bytes())
        stage.drain()
        track = stage.matcher.find_track("cam9", "live-1")
        assert track is not None
        return stage.matcher.forest.find(track.identity)
