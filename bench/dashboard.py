"""Benchmark: dashboard time to first render with 200 hosts in the directory.

A real controller on loopback (tests/harness.py) with ``--hosts`` nodes enrolled
through the API, and Debian's Chromium driven by Playwright (never downloaded).
Figures, each the median of ``--rounds`` fresh pages:

* baseline: the sign-in page rendered (the app shell, no API data);
* overview: from following a login link to the host count tiles showing the
  directory's hosts;
* topology: from opening the topology page (signed in) to every host listed
  and the graph's canvas drawn.

Ratios are against the baseline of the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import admin_client, start_controller
from ztos import pki
from ztos.keys import generate_wg_keypair

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


def enrol(controller: object, count: int) -> None:
    admin = admin_client(controller)
    for index in range(count):
        name = f"n{index:03d}"
        token = admin.request("POST", "/api/v1/tokens", json={"node_name": name, "ttl_seconds": 600})["token"]
        csr = pki.make_csr(pki.generate_private_key(), name).public_bytes(Encoding.PEM).decode()
        body = {
            "token": token,
            "node_name": name,
            "csr_pem": csr,
            "wg_public_key": generate_wg_keypair().public_key,
            "endpoints": [f"[2001:db8::{index + 1:x}]:51820"],
        }
        admin.request("POST", "/api/v1/enroll", json=body)


def login_url(controller: object) -> str:
    import json

    result = controller.ztos("security", "login-link", "--role", "admin", "--json")  # type: ignore[attr-defined]
    return str(json.loads(result.stdout)["url"])


def measure(controller: object, hosts: int, rounds: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, list[float]] = {"baseline": [], "overview": [], "topology": []}
    base = controller.url  # type: ignore[attr-defined]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            for _ in range(rounds):
                context = browser.new_context(ignore_https_errors=True)
                page = context.new_page()
                start = time.perf_counter()
                page.goto(base + "/")
                page.wait_for_selector("#code")
                figures["baseline"].append(time.perf_counter() - start)
                url = login_url(controller)
                page = context.new_page()  # a fresh load: the app reads the login code at start
                start = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("[data-testid=count-up]")
                figures["overview"].append(time.perf_counter() - start)
                start = time.perf_counter()
                page.goto(base + "/#/topology")
                page.wait_for_function(
                    f"() => document.querySelectorAll('[data-testid=topology-hosts] li').length >= {hosts}"
                    " && !!document.querySelector('[data-testid=topology-graph] canvas')",
                    timeout=120_000,
                )
                figures["topology"].append(time.perf_counter() - start)
                context.close()
        finally:
            browser.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ztos-bench-ui-") as tmp:
        controller = start_controller(Path(tmp))
        try:
            started = time.perf_counter()
            enrol(controller, args.hosts)
            print(f"enrolled {args.hosts} hosts in {time.perf_counter() - started:.1f} s")
            figures = measure(controller, args.hosts, args.rounds)
        finally:
            controller.stop()
    baseline = statistics.median(figures["baseline"])
    print(f"{'page':40} {'median':>10} {'ratio':>8}")
    for key, label in (
        ("baseline", "sign-in page (baseline)"),
        ("overview", f"overview, {args.hosts} hosts"),
        ("topology", f"topology, {args.hosts} hosts drawn"),
    ):
        value = statistics.median(figures[key])
        print(f"{label:40} {value * 1000:8.0f} ms {value / baseline:7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
