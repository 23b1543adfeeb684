"""The passenger display in a real headless Chromium (issue 18, item 1).

Debian's ``chromium`` and ``chromium-driver`` (scripts/setup installs them), driven with
Selenium. The page is served by the real bridge; events are published into the real hub
from a worker thread, as the daemon's lanes do. Each check reads the DOM; each outcome
leaves a screenshot in build/screenshots/ for a developer to look at.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.central.client import TerminalConfig
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.gate import GateController, SimGate
from sscard_terminal.local_api import HttpSecurity, LocalApi, LoopbackHttpServer
from sscard_terminal.local_api.display import ASSETS, DisplayRoutes
from sscard_terminal.local_api.display_text import display_view
from sscard_terminal.local_api.events import EventHub
from sscard_terminal.profiles import load_profile
from sscard_terminal.terminal.root import TerminalRoot
from sscard_terminal.terminal.settings import KeySource, TerminalSettings
from tests.test_local_api import ApiHarness, WsClient, sim_service
from tests.test_local_api_events import ID_NUMBER, presentation

SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CLEAR_NAME = "张三丰"
UPDATE_BUDGET_MS = 200


class DisplayHarness:
    """The bridge with the display routes, on its own loop, and a hub to publish into."""

    def __init__(self, tmp: Path) -> None:
        service, _ = sim_service("gen2-adult")
        self.loop_owner = ApiHarness(service, tmp)  # owns the event loop thread
        self.hub = EventHub()
        api = LocalApi(service, events=self.hub)
        self.server = LoopbackHttpServer(api, port=0, security=HttpSecurity("d" * 32),
                                         routes=[DisplayRoutes(self.hub)])
        self.loop_owner._run(self.server.start())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/display/"

    def close(self) -> None:
        self.loop_owner._run(self.server.stop())
        self.loop_owner.close()


@pytest.fixture
def display(tmp_path: Path) -> Iterator[DisplayHarness]:
    harness = DisplayHarness(tmp_path)
    yield harness
    harness.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert Path(binary).exists(), f"{binary} missing: run scripts/setup (Debian's " \
                                      "chromium and chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1024,600",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(browser: webdriver.Chrome, display: DisplayHarness, query: str = "") -> None:
    browser.get(display.url + query)
    wait_for(browser, "return document.body.dataset.connected === 'yes'")
    end = time.monotonic() + 5
    while display.hub.subscriber_count < 1 and time.monotonic() < end:
        time.sleep(0.01)


def wait_for(browser: webdriver.Chrome, script: str, timeout: float = 5.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = browser.execute_script(script)
        if result:
            return result
        time.sleep(0.01)
    raise AssertionError(f"the page never got there: {script}")


def publish_and_time(browser: webdriver.Chrome, display: DisplayHarness,
                     event: dict[str, Any], kind: str = "presentation") -> float:
    """Publish from a worker thread (as a lane does); milliseconds until the page's DOM
    showed it, by the page's own clock against the publisher's (one machine, one clock)."""
    stamped: dict[str, Any] = {}

    def lane() -> None:
        stamped["at_ms"] = time.time() * 1000
        stamped["event"] = display.hub.publish(event, kind)

    thread = threading.Thread(target=lane)
    thread.start()
    thread.join()
    seq = stamped["event"]["seq"]
    updated = wait_for(browser, f"return window.sscardDisplay.updates[{seq}]")
    assert browser.execute_script("return document.body.dataset.seq") == str(seq)
    return float(updated) - float(stamped["at_ms"])


def text(browser: webdriver.Chrome, element: str) -> str:
    return str(browser.find_element(By.ID, element).text)


def shoot(browser: webdriver.Chrome, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOTS / f"display-{name}.png"))


def test_each_outcome_shows_within_200_ms_with_a_screenshot(
        browser: webdriver.Chrome, display: DisplayHarness) -> None:
    open_page(browser, display, "?hold=30")
    assert browser.execute_script("return document.body.dataset.outcome") == "idle"
    assert text(browser, "headline") == "请刷卡或扫码\nTap your card or scan your code"
    shoot(browser, "idle")
    delays = {}

    delays["accept"] = publish_and_time(browser, display, presentation(
        fare_percent=0, concession="senior", renewal_due="2027-03", display_name="张**"))
    assert browser.execute_script("return document.body.dataset.outcome") == "accept"
    assert text(browser, "headline") == "请通行\nGo ahead"
    assert text(browser, "concession") == "老年优待 免费\nSenior Free"
    assert text(browser, "renewal") == ("社保卡将于2027年3月到期，请及时换领\n"
                                        "Your card expires in March 2027: please renew it")
    assert text(browser, "name") == "张**"
    shoot(browser, "accept-senior-renewal")

    delays["refuse"] = publish_and_time(browser, display, presentation(
        "refuse", "card_lost", fare_percent=100, concession=None))
    assert browser.execute_script("return document.body.dataset.outcome") == "refuse"
    assert text(browser, "headline") == "未通过\nNot accepted"
    assert text(browser, "reason") == "卡已挂失\nCard reported lost"
    assert not browser.find_element(By.ID, "concession").is_displayed()
    assert not browser.find_element(By.ID, "renewal").is_displayed()
    assert not browser.find_element(By.ID, "name").is_displayed()
    shoot(browser, "refuse-card-lost")

    delays["defer"] = publish_and_time(browser, display, presentation(
        "defer", "offline_not_allowed", concession=None))
    assert browser.execute_script("return document.body.dataset.outcome") == "defer"
    assert "网络中断，请稍候" in text(browser, "reason")
    shoot(browser, "defer-offline")

    assert not browser.find_element(By.ID, "link").is_displayed()
    display.hub.publish({"link": "down", "circuit": "open"}, "central")
    wait_for(browser, "return document.body.dataset.online === 'no'")
    delays["offline-refuse"] = publish_and_time(browser, display, presentation(
        "refuse", "denylist_stale", concession=None))
    assert browser.find_element(By.ID, "link").is_displayed()
    assert text(browser, "link") == "离线 OFFLINE"
    shoot(browser, "refuse-offline-indicator")
    display.hub.publish({"link": "up", "circuit": "closed"}, "central")
    wait_for(browser, "return document.body.dataset.online === 'yes'")
    assert not browser.find_element(By.ID, "link").is_displayed()

    slow = {outcome: delay for outcome, delay in delays.items() if delay > UPDATE_BUDGET_MS}
    assert not slow, f"DOM updated later than {UPDATE_BUDGET_MS} ms after publish: {delays}"


def test_the_page_never_holds_more_than_a_masked_name(
        browser: webdriver.Chrome, display: DisplayHarness) -> None:
    open_page(browser, display, "?hold=30")
    publish_and_time(browser, display, presentation(
        holder=f"{CLEAR_NAME} {ID_NUMBER}", display_name=CLEAR_NAME))
    publish_and_time(browser, display, presentation(
        "refuse", "card_lost", holder=f"{CLEAR_NAME} {ID_NUMBER}", display_name="张**"))
    source = browser.page_source
    for secret in (CLEAR_NAME, ID_NUMBER, "ab" * 16, "1101"):
        assert secret not in source, secret
    assert "张**" in source
    # What reached the page is the display view and nothing more.
    assert set(display_view(presentation())) == {
        "type", "seq", "lane", "outcome", "headline", "reason", "concession", "renewal",
        "online", "name"}


def test_lane_filter_and_idle_return(browser: webdriver.Chrome,
                                     display: DisplayHarness) -> None:
    open_page(browser, display, "?lane=gate-2&hold=0.5")
    display.hub.publish(presentation(lane="gate-1"))
    publish_and_time(browser, display, presentation("refuse", "anti_passback", lane="gate-2"))
    assert browser.execute_script("return window.sscardDisplay.last") == \
        display.hub.last_decision["seq"]  # type: ignore[index]
    assert len(browser.execute_script("return Object.keys(window.sscardDisplay.updates)")) == 1
    wait_for(browser, "return document.body.dataset.outcome === 'idle'", timeout=3)


def test_the_page_loads_nothing_from_elsewhere(display: DisplayHarness) -> None:
    """No font, script or style from the network: every reference in the shipped files is
    relative, and the Content-Security-Policy allows only the page's own origin."""
    for name in ASSETS:
        response = httpx.get(display.url + ("" if name == "index.html" else name))
        assert response.status_code == 200, name
        assert not re.search(r"(https?:)?//[a-z]", response.text.replace(
            "location.host", "")), name
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "http" not in csp
    assert httpx.get(display.url + "secret.txt").status_code == 404
    assert httpx.get(display.url + "..%2Fhandler.py").status_code == 404


def test_the_feed_refuses_foreign_pages(display: DisplayHarness) -> None:
    port = display.server.port
    own = WsClient(port, path="/display/events", origin=f"http://127.0.0.1:{port}")
    assert own.status == 101
    own.close()
    assert WsClient(port, path="/display/events", origin="http://evil.example").status == 403
    assert WsClient(port, path="/display/events", origin=None,
                    host=f"evil.example:{port}").status == 403


def test_a_tap_through_the_pipeline_reaches_the_page_and_the_gate(
        browser: webdriver.Chrome, display: DisplayHarness, tmp_path: Path) -> None:
    """Real presentations (the composition root's pipeline: sim: cards, a SQLite journal,
    the bus-validator profile) go where the daemon will send them: the gate controller
    and the hub. The page shows each within 200 ms of its journaled decision; the gate
    opens for accepts only; no holder data reaches the page."""
    key = tmp_path / "journal.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    central = CentralSim(tmp_path / "central.db")
    settings = TerminalSettings(
        terminal_id=central.terminal_id, profile=load_profile("bus-validator"),
        state_dir=tmp_path, journal_key=KeySource(file=key),
        central=TerminalConfig(central.base_url, central.terminal_id, central.secret,
                               central_public_key=central.central_public_key))
    gate = SimGate()
    controller = GateController(gate, open_seconds=1.0, lane="lane-1")
    open_page(browser, display, "?hold=30")
    shown = []
    with contextlib.ExitStack() as stack:
        stack.callback(central.stop)
        root = stack.enter_context(TerminalRoot(settings))
        for holder in ("gen2-adult", "bank-only", "gen2-adult"):
            arrived = time.monotonic()
            with root.open_card(Deadline.after(2.0), f"sim:{holder}") as transport:
                result = root.presenter().present_card(transport, arrived_at=arrived,
                                                       lane="lane-1")
            decided_ms = time.time() * 1000
            opened = controller.present(result)
            assert opened == result.accepted
            event = display.hub.publish(result.event())
            updated = wait_for(browser,
                               f"return window.sscardDisplay.updates[{event['seq']}]")
            assert float(updated) - decided_ms < UPDATE_BUDGET_MS, (holder, result.reason)
            assert browser.execute_script("return document.body.dataset.outcome") == \
                result.outcome.value
            view = display_view(event)
            if view["reason"]:
                assert text(browser, "reason") == f"{view['reason']['zh']}\n{view['reason']['en']}"
            shown.append(result)
            shoot(browser, f"pipeline-{len(shown)}-{holder}-{result.reason}")
            assert result.card is None or result.card.name not in browser.page_source
            if result.card is not None:
                assert result.card.social_security_number not in browser.page_source
    assert any(r.accepted for r in shown) and any(not r.accepted for r in shown)
    assert [what for _, what in gate.history].count("open") == sum(r.accepted for r in shown)


@pytest.mark.parametrize(("width", "height"), [(1024, 600), (480, 800), (800, 480)])
def test_the_longest_texts_fit_the_screen(browser: webdriver.Chrome, display: DisplayHarness,
                                          width: int, height: int) -> None:
    """A validator's screen is small and may stand upright: the longest reason, the
    renewal notice and the offline badge fit, nothing cut off or scrolled away."""
    browser.set_window_size(width, height)
    open_page(browser, display, "?hold=30")
    display.hub.publish({"link": "down"}, "central")
    for event in (presentation(fare_percent=0, concession="union_member",
                               renewal_due="2027-12", display_name="欧阳**"),
                  presentation("refuse", "online_only_code", concession=None)):
        publish_and_time(browser, display, event)
        fits = browser.execute_script(
            "const main = document.querySelector('main').getBoundingClientRect();"
            "return document.documentElement.scrollWidth <= window.innerWidth"
            " && main.top >= 0 && main.bottom <= window.innerHeight;")
        assert fits, (width, height, event["reason"])
    shoot(browser, f"fit-{width}x{height}")


def test_the_feed_shrugs_off_a_hostile_page(display: DisplayHarness) -> None:
    """The feed takes nothing from the page: text is ignored, a flood closes (1009) that
    connection only, binary too; the others keep receiving."""
    port = display.server.port
    own = f"http://127.0.0.1:{port}"
    calm = WsClient(port, path="/display/events", origin=own)
    chatty = WsClient(port, path="/display/events", origin=own)
    flood = WsClient(port, path="/display/events", origin=own)
    end = time.monotonic() + 5
    while display.hub.subscriber_count < 3 and time.monotonic() < end:
        time.sleep(0.01)
    chatty.send_frame(0x1, b'{"function": "iReadCardBas"}')
    flood.send_frame(0x1, b"x" * 5000)
    opcode, payload = flood.receive_frame()
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1009
    flood.close()
    display.hub.publish(presentation("refuse", "card_lost"))
    for client in (calm, chatty):
        opcode, payload = client.receive_frame()
        assert opcode == 0x1 and json.loads(payload)["reason"]["en"] == "Card reported lost"
        client.close()
