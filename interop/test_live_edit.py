"""Live edits from the browser UI: add a stage after the selected one and remove it again, with
the page open in Debian's Chromium; the traces keep moving while the graph changes, the graph
redraws without a reload, and the console stays clean.

    EEGD_BIN=target/debug/eegd pytest interop/test_live_edit.py

Uses the `server`, `browser` and `page` fixtures of test_ui.py (the real `eegd serve` on a free
loopback port). Skipped when Chromium is missing.
"""

from __future__ import annotations

import pytest

from test_ui import CHROMIUM, browser, page, select_stage, server, trace_pixels, wait_paints  # noqa: F401

pytestmark = pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def stage_names(server) -> list[str]:
    return [s["name"] for s in server.api("GET", "/api/pipeline").json()["stages"]]


def traces_move(page):
    before = trace_pixels(page)
    wait_paints(page, 5)
    page.wait_for_timeout(300)
    assert trace_pixels(page)["hash"] != before["hash"], "the traces stopped"


def test_add_and_remove_a_stage_from_the_page(page, server):
    source = server.api("GET", "/api/pipeline").json()["stages"][0]["packets"]
    select_stage(page, "bandpass")
    edits = page.locator("#stage-edits")
    edits.locator('[data-edit="mode"]').select_option("add")
    edits.locator('[data-edit="type"]').select_option("notch")
    edits.locator('[data-edit="name"]').fill("extra_notch")
    edits.locator('[data-param="hz"]').fill("60")
    edits.locator('[data-edit="apply"]').click()
    # The graph redraws by itself (no reload), with the new stage in it.
    page.wait_for_selector('#graph [data-stage="extra_notch"]', timeout=15000)
    assert "extra_notch" in stage_names(server)
    added = {s["name"]: s for s in server.api("GET", "/api/pipeline").json()["stages"]}["extra_notch"]
    assert added["params"]["hz"] == 60.0 and added["inputs"] == ["bandpass"]
    traces_move(page)

    # A refused edit shows the daemon's reason where the user looks, and changes nothing.
    select_stage(page, "bandpass")
    edits.locator('[data-edit="mode"]').select_option("remove")
    edits.locator('[data-edit="apply"]').click()
    page.wait_for_selector("#stage-edits .form-msg.error:has-text('cascade')")
    assert page.locator("#notice").is_visible()
    assert "bandpass" in stage_names(server)

    select_stage(page, "extra_notch")
    edits.locator('[data-edit="mode"]').select_option("remove")
    edits.locator('[data-edit="apply"]').click()
    page.wait_for_selector('#graph [data-stage="extra_notch"]', state="detached", timeout=15000)
    assert "extra_notch" not in stage_names(server)
    traces_move(page)
    # The source ran on through it all: its counter only grew.
    assert server.api("GET", "/api/pipeline").json()["stages"][0]["packets"] > source
    # No console errors, but for the browser's own line about the refused request's 409 (the
    # test's canvas readbacks may add a performance warning, not an error).
    errors = [p for p in page.problems if not p.startswith("console warning")]
    assert [p for p in errors if "status of 409" not in p] == []
