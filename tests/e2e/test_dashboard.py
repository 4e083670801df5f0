"""The web dashboard end to end (issue #7), in headless Chromium against a 3-host lab.

How the browser reaches the lab's controller: the controller listens only
inside the lab's underlay namespace (``ztl-LAB-ul``, on the lab's IPv6
underlay address), so Chromium runs there too. Playwright launches its
``executable_path`` with the DevTools protocol on inherited pipes; a two-line
wrapper that ``exec``s ``ip netns exec NS /usr/bin/chromium "$@"`` keeps those
pipes (``exec`` all the way down), so the browser lives in the namespace and
Playwright in the test process drives it. Nothing is added to the controller
or the lab (no loopback listener, no port forward) and ``ztos lab down``
removes any Chromium left behind with the namespace's other processes. The
controller's certificate comes from the lab's own CA, which Chromium does not
know: the context ignores certificate errors (the test is not about TLS).

One module-scoped lab and one page serve the tests, in order, like a person
would: sign in with a one-time login code, see the three hosts, push iperf3
traffic and watch the graph move, meet a readable API error, onboard a 4th
host through the walkthrough and enrol it with the downloaded profile, see it
appear and revoke it from the UI, revoke an enrolment token and a person on
the People page (an auditor is refused there, in words), then the phone
layout. The page is never reloaded after signing in (checked with a marker on
``window``).
Screenshots go to ``artifacts/screenshots/`` (gitignored).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import require_root_tools
from ztos.errors import ToolError
from ztos.lab import checks, record, runner
from ztos.lab.topology import LabHost, LabTopology

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
RECONCILE_INTERVAL = 1.0
UI_TIMEOUT_MS = 30_000
IPERF_MBITS = 40


def shot(page: playwright_api.Page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=full_page)


def netns_popen(host: LabHost, *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ip", "netns", "exec", host.netns, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def overlay6(host: LabHost) -> str:
    return str(json.loads(host.enrolment.read_text())["node"]["overlay_ipv6"])


def wait_dom(
    page: playwright_api.Page, script: str, arg: object = None, timeout: int = UI_TIMEOUT_MS
) -> None:
    page.wait_for_function(script, arg=arg, timeout=timeout)


def host_state(page: playwright_api.Page, name: str) -> str | None:
    return page.get_attribute(f'[data-testid=topology-hosts] li[data-node="{name}"]', "data-state")


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Iterator[LabTopology]:
    require_root_tools("ip", "wireguard-go", "wg", "iperf3", CHROMIUM)
    name = "w" + secrets.token_hex(2)
    topology = LabTopology(name, 3)
    try:
        runner.up(topology, reconcile_interval=RECONCILE_INTERVAL)
        checks.wait_converged(name, timeout=60)
        yield topology
    finally:
        runner.down(name)


@pytest.fixture(scope="module")
def chromium_in_lab(lab: LabTopology, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An executable that runs Chromium inside the lab's underlay namespace."""
    wrapper = tmp_path_factory.mktemp("chromium") / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {lab.underlay_netns} {CHROMIUM} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


@pytest.fixture(scope="module")
def page(chromium_in_lab: Path) -> Iterator[playwright_api.Page]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_in_lab), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(
            ignore_https_errors=True, viewport={"width": 1366, "height": 900}, accept_downloads=True
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        def on_console(msg: playwright_api.ConsoleMessage) -> None:
            if "Content Security Policy" in msg.text:
                errors.append(msg.text)

        page.on("console", on_console)
        try:
            yield page
        finally:
            browser.close()
        assert not errors, f"uncaught errors or CSP violations in the page: {errors}"


# --- the story -----------------------------------------------------------------------------


def test_sign_in_with_a_one_time_code_and_see_the_overview(
    lab: LabTopology, page: playwright_api.Page
) -> None:
    link = json.loads(runner.run_admin(lab.name, "security", "login-link", "--role", "admin", "--json"))
    assert link["url"].startswith(lab.controller_url)

    page.goto(lab.controller_url + "/")
    page.fill("#code", "not-a-real-code")
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=error]")
    assert "login code" in page.inner_text("[data-testid=error]").lower()

    page.fill("#code", link["url"])  # the whole link pasted also works
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=count-up]")
    page.evaluate("window.__ztosNoReload = true")
    wait_dom(page, "() => document.querySelector('[data-testid=count-up] .tile-value')?.textContent === '3'")
    assert page.inner_text("[data-testid=who]").startswith("admin")
    wait_dom(
        page, "() => document.querySelector('[data-testid=stream-state]')?.textContent.trim() === 'live'"
    )
    shot(page, "overview")

    again = page.evaluate(
        """async (code) => (await fetch('/api/v1/session/exchange', {method: 'POST',
             headers: {'Content-Type': 'application/json'}, body: JSON.stringify({code})})).status""",
        link["code"],
    )
    assert again in (400, 401, 403), f"a login code must work once, the second exchange got {again}"


def test_topology_shows_every_host_and_healthy_links(lab: LabTopology, page: playwright_api.Page) -> None:
    page.click('nav a[href="#/topology"]')
    wait_dom(
        page,
        "() => [...document.querySelectorAll('[data-testid=topology-hosts] li[data-node]')]"
        ".filter(li => li.dataset.state === 'up').length === 3",
    )
    wait_dom(
        page,
        "() => [...document.querySelectorAll('[data-testid=topology-links] tr')]"
        ".filter(tr => tr.dataset.health === 'ok').length === 3",
    )
    page.wait_for_selector("[data-testid=topology-graph] canvas")  # cytoscape is loaded on demand
    time.sleep(0.5)
    shot(page, "topology")

    runner.run_admin(lab.name, "tenant", "create", "blue")
    for host in ("h1", "h2"):
        runner.run_admin(lab.name, "tenant", "attach", "blue", "--node", host)
    page.wait_for_selector("[data-testid=tenant-filter] option[value=blue]", state="attached")  # change feed
    page.select_option("[data-testid=tenant-filter]", "blue")
    wait_dom(
        page,
        "() => [...document.querySelectorAll('[data-testid=topology-hosts] li[data-node]')]"
        ".map(li => li.dataset.node).join() === 'h1,h2'",
    )
    shot(page, "topology-tenant")
    page.select_option("[data-testid=tenant-filter]", "")


def test_traffic_graph_moves_with_iperf3(lab: LabTopology, page: playwright_api.Page) -> None:
    h1, h2 = lab.hosts[0], lab.hosts[1]
    page.click('nav a[href="#/traffic"]')
    page.wait_for_selector('[data-testid=traffic-now] tr[data-series="h1"]')
    before = float(page.get_attribute('[data-testid=traffic-now] tr[data-series="h1"]', "data-bps") or 0)
    server = netns_popen(h2, "iperf3", "-s", "-1")
    try:
        time.sleep(0.3)
        client = netns_popen(h1, "iperf3", "-c", overlay6(h2), "-t", "8", "-b", f"{IPERF_MBITS}M")
        threshold = max(before * 4, IPERF_MBITS * 1e6 / 4)
        wait_dom(
            page,
            """(min) => Number(document.querySelector('[data-testid=traffic-now] tr[data-series="h1"]')
                 ?.dataset.bps || 0) > min""",
            threshold,
            timeout=20_000,
        )
        time.sleep(2)  # a few more points on the graph
        shot(page, "traffic-hosts")
        page.click("[data-testid=traffic-links]")
        wait_dom(
            page,
            """(min) => Number(document.querySelector('[data-testid=traffic-now] tr[data-series="h1|h2"]')
                 ?.dataset.bps || 0) > min""",
            threshold,
            timeout=10_000,
        )
        shot(page, "traffic-links")
        assert client.wait(timeout=20) == 0, client.stderr.read().decode() if client.stderr else ""
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=5)


def test_api_errors_are_shown_in_words(page: playwright_api.Page) -> None:
    page.click('nav a[href="#/onboard"]')
    page.fill("[data-testid=onboard-name]", "Bad_Name")
    page.click("[data-testid=onboard-create]")
    assert "lowercase" in page.inner_text("[data-testid=error]")
    page.fill("[data-testid=onboard-name]", "h9")
    page.fill("[data-testid=onboard-ttl]", "400d")  # the controller allows 30 days at most
    page.click("[data-testid=onboard-create]")
    wait_dom(
        page, "() => /ttl_seconds/.test(document.querySelector('[data-testid=error]')?.textContent || '')"
    )
    text = page.inner_text("[data-testid=error]")
    assert "{" not in text, f"raw JSON shown to the user: {text}"


def add_host_with_profile(lab: str, profile_yaml: str) -> LabHost:
    """Like ``runner.add_host``, but the agent starts with *this* profile (the one the
    dashboard made) instead of a token the runner creates itself."""
    current = record.load(lab)
    grown = current.topology.with_node_count(current.node_count + 1)
    host = grown.host(grown.node_count)
    record.save(replace(current, node_count=grown.node_count))  # so down() knows it from here on
    runner._build_host(grown, host)  # namespace, veth to the underlay bridge, addresses
    host.dir.mkdir(parents=True, exist_ok=True)
    host.profile.write_text(profile_yaml)
    host.profile.chmod(0o600)
    pid = runner._spawn_agent(host, current.reconcile_interval)
    record.save(record.load(lab).with_agent(host.name, pid))
    return host


def test_onboard_a_fourth_host_then_revoke_it(lab: LabTopology, page: playwright_api.Page) -> None:
    assert page.is_visible("[data-testid=error]")  # left by the previous test, same form
    page.fill("[data-testid=onboard-name]", "h4")
    page.fill("[data-testid=onboard-ttl]", "15m")
    page.click("[data-testid=onboard-create]")
    page.wait_for_selector("[data-testid=profile-qr]")
    shown = page.inner_text("[data-testid=profile-yaml]")
    assert (
        page.inner_text("[data-testid=agent-command]").strip()
        == "sudo ztos agent run --profile h4.profile.yaml"
    )
    with page.expect_download() as info:
        page.click("[data-testid=download-profile]")
    download = info.value
    assert download.suggested_filename == "h4.profile.yaml"
    profile = Path(download.path()).read_text()
    assert profile.strip() == shown.strip()
    assert 'node_name: "h4"' in profile
    shot(page, "onboard")

    # In a thread of its own: Playwright's sync API keeps an asyncio loop running in this
    # one, and pyroute2 (behind ztos.dataplane.links) wants to run its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        host = pool.submit(add_host_with_profile, lab.name, profile).result(timeout=60)
    assert host.name == "h4"
    page.wait_for_selector("[data-testid=enrolled]", timeout=45_000)
    shot(page, "onboard-enrolled")

    page.click('nav a[href="#/topology"]')  # a hash change, not a reload
    page.wait_for_selector('[data-testid=topology-hosts] li[data-node="h4"]')
    wait_dom(
        page,
        """() => document.querySelector('[data-testid=topology-hosts] li[data-node="h4"]')
                        ?.dataset.state === 'up'""",
        timeout=45_000,
    )
    shot(page, "topology-4-hosts")

    page.click('[data-testid=topology-hosts] li[data-node="h4"] button')
    page.click("[data-testid=revoke-h4]")
    page.click("[data-testid=confirm-revoke-h4]")
    wait_dom(
        page,
        """() => document.querySelector('[data-testid=topology-hosts] li[data-node="h4"]')
                        ?.dataset.state === 'revoked'""",
    )
    red = page.evaluate(
        """() => getComputedStyle(document.querySelector(
             '[data-testid=topology-hosts] li[data-node="h4"] .swatch')).backgroundColor"""
    )
    assert red == "rgb(185, 28, 28)", red
    nodes = json.loads(runner.run_admin(lab.name, "node", "list", "--json"))
    assert {n["name"]: n["status"] for n in nodes}["h4"] == "revoked"
    shot(page, "topology-revoked")

    page.click('nav a[href="#/overview"]')
    page.wait_for_selector("[data-testid=alerts]")
    assert "h4 is revoked" in page.inner_text("[data-testid=alerts]")
    for name, ready in (
        ("devices", "[data-testid=devices-hosts] tr"),
        ("dns", "[data-testid=dns-records] tr"),
        ("policy", 'main[data-page="policy"] h1'),
    ):
        page.click(f'nav a[href="#/{name}"]')
        page.wait_for_selector(ready)
        time.sleep(0.3)
        shot(page, name)
    assert page.evaluate("window.__ztosNoReload") is True, "the page was reloaded"


def test_policy_page_says_the_network_is_open_until_a_policy_is_applied(page: playwright_api.Page) -> None:
    page.click('nav a[href="#/policy"]')
    page.wait_for_selector("[data-testid=policy-mode]")
    assert page.inner_text("[data-testid=policy-mode]") == "Open network"
    assert "--default-deny" in page.inner_text("main")
    shot(page, "policy-open")


def test_audit_search_is_done_by_the_controller(page: playwright_api.Page) -> None:
    page.click('nav a[href="#/audit"]')
    page.wait_for_selector("[data-testid=audit-events] tr")
    page.fill("[data-testid=audit-action]", "node.revoke")
    with page.expect_request(lambda r: "/api/v1/monitoring/logs" in r.url and "action=node.revoke" in r.url):
        page.click("form.filters button[type=submit]")
    wait_dom(
        page,
        """() => { const rows = [...document.querySelectorAll('[data-testid=audit-events] tr')];
                   return rows.length > 0 && rows.every(r => r.dataset.action === 'node.revoke'); }""",
    )
    assert "h4" in page.inner_text("[data-testid=audit-events]")
    shot(page, "audit-search")


def row_state(page: playwright_api.Page, body: str, key: str, value: str) -> str | None:
    return page.get_attribute(f'[data-testid={body}] tr[{key}="{value}"]', "data-state")


def test_people_page_revokes_a_token_and_a_user(
    lab: LabTopology, page: playwright_api.Page, tmp_path: Path
) -> None:
    spare_profile = tmp_path / "spare9.profile.yaml"
    spare = json.loads(
        runner.run_admin(
            lab.name, "token", "create", "--name", "spare9", "--profile-out", str(spare_profile), "--json"
        )
    )
    carol = str(tmp_path / "carol.profile.yaml")
    runner.run_admin(
        lab.name, "token", "create", "--name", "carol", "--role", "operator", "--profile-out", carol
    )
    runner.run_admin(lab.name, "enroll", "--profile", carol, "--state-dir", str(tmp_path / "carol"))
    token_row = f'[data-testid=people-tokens] tr[data-token="{spare["id"]}"]'

    # An auditor sees the same page, but the controller refuses their revoke: shown in words.
    link = json.loads(runner.run_admin(lab.name, "security", "login-link", "--role", "auditor", "--json"))
    browser = page.context.browser
    assert browser is not None
    auditor = browser.new_context(ignore_https_errors=True, viewport={"width": 1366, "height": 900})
    try:
        other = auditor.new_page()
        other.set_default_timeout(UI_TIMEOUT_MS)
        other.goto(link["url"])
        other.wait_for_selector("[data-testid=count-up]")
        other.click('nav a[href="#/people"]')
        other.click(f"[data-testid=revoke-token-{spare['id']}]")
        other.click(f"[data-testid=confirm-revoke-token-{spare['id']}]")
        other.wait_for_selector(f"{token_row} [data-testid=error]")
        refused = other.inner_text(f"{token_row} [data-testid=error]")
        assert "ask an admin" in refused and "{" not in refused, refused
        shot(other, "people-refused")
    finally:
        auditor.close()
    listed = json.loads(runner.run_admin(lab.name, "token", "list", "--json"))
    assert [t["revoked"] for t in listed if t["id"] == spare["id"]] == [False]

    page.click('nav a[href="#/people"]')
    page.wait_for_selector(token_row)
    page.wait_for_selector('[data-testid=people-users] tr[data-user="carol"]')
    assert row_state(page, "people-tokens", "data-token", spare["id"]) == "unused"
    assert row_state(page, "people-users", "data-user", "carol") == "active"
    assert spare["token"] not in page.content(), "a token's secret must never reach the page"
    shot(page, "people")

    page.click(f"[data-testid=revoke-token-{spare['id']}]")
    page.click(f"[data-testid=confirm-revoke-token-{spare['id']}]")
    wait_dom(
        page,
        "(row) => document.querySelector(row)?.dataset.state === 'revoked'",
        token_row,
    )
    assert not page.is_visible(f"[data-testid=revoke-token-{spare['id']}]")

    page.click("[data-testid=revoke-user-carol]")
    page.fill('[data-testid=people-users] tr[data-user="carol"] .revoke.confirm input', "left the team")
    shot(page, "people-confirm")
    page.click("[data-testid=confirm-revoke-user-carol]")
    wait_dom(
        page,
        """() => document.querySelector('[data-testid=people-users] tr[data-user="carol"]')
                        ?.dataset.state === 'revoked'""",
    )
    assert row_state(page, "people-users", "data-user", "admin") == "active"
    shot(page, "people-revoked")

    tokens = {t["id"]: t for t in json.loads(runner.run_admin(lab.name, "token", "list", "--json"))}
    assert tokens[spare["id"]]["revoked"] is True and tokens[spare["id"]]["used"] is False
    shown = json.loads(runner.run_admin(lab.name, "user", "show", "carol", "--json"))
    assert shown["revoked"] is True and shown["certificates"]
    assert all(c["revoked"] for c in shown["certificates"])
    assert json.loads(runner.run_admin(lab.name, "user", "show", "admin", "--json"))["revoked"] is False
    log = json.loads(runner.run_admin(lab.name, "monitoring", "logs", "--action", "user.revoke", "--json"))
    assert [(e["target"], e["detail"]) for e in log["events"]] == [("user:carol", "left the team")]
    with pytest.raises(ToolError, match="revoked"):
        runner.run_admin(
            lab.name, "enroll", "--profile", str(spare_profile), "--state-dir", str(tmp_path / "spare9")
        )
    nodes = json.loads(runner.run_admin(lab.name, "node", "list", "--json"))
    assert "spare9" not in {n["name"] for n in nodes}

    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.wait_for_selector("nav#nav", state="hidden")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390 + 1, f"the page itself must not scroll sideways ({width}px)"
        shot(page, "phone-people")
    finally:
        page.set_viewport_size({"width": 1366, "height": 900})
    assert page.evaluate("window.__ztosNoReload") is True, "the page was reloaded"


def test_phone_viewport(page: playwright_api.Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.click(".brand")
    page.wait_for_selector("[data-testid=count-up]")
    assert not page.is_visible("nav#nav"), "the navigation should collapse on a phone"
    shot(page, "phone-overview")
    page.click("button.menu-button")
    assert page.is_visible("nav#nav")
    shot(page, "phone-menu", full_page=False)
    page.click('nav a[href="#/devices"]')
    page.wait_for_selector("nav#nav", state="hidden")  # choosing a page closes the menu
    page.wait_for_selector("[data-testid=devices-hosts] tr")
    overflow = page.evaluate(
        """() => { const box = document.querySelector('[data-testid=devices-hosts]').closest('.table-scroll');
                   return [box.scrollWidth, box.clientWidth, document.documentElement.scrollWidth]; }"""
    )
    table_width, box_width, page_width = overflow
    assert table_width > box_width, "the wide table should scroll inside its box"
    assert page_width <= 390 + 1, f"the page itself must not scroll sideways ({page_width}px)"
    shot(page, "phone-devices")
    page.click("button.menu-button")
    page.click('nav a[href="#/topology"]')
    page.wait_for_selector("[data-testid=topology-graph] canvas")
    time.sleep(0.5)
    shot(page, "phone-topology")
    assert os.path.exists(SCREENSHOTS / "dashboard-phone-topology.png")
