"""The console in a real browser: Playwright driving Debian's Chromium, headless, against a
gateway over loopback. An operator logs in, reads the overview, finds an unmatched shipment,
matches it and sees the FO fulfilled, undoes the match, replays and discards dead letters and
cancels an FO; a POST without the CSRF token and a page without a session are refused.

With CONSOLE_SCREENSHOTS=<dir> set, the main pages are saved there as PNG (the README's
pictures: docs/console/)."""

from __future__ import annotations

import os
from typing import Any

from tests.conftest import FAKE_TOKEN, GatewayUnderTest
from tests.console.conftest import ALICE

SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")


async def _shot(page: Any, name: str, width: int = 1280) -> None:
    if SHOTS:
        await page.set_viewport_size({"width": width, "height": 900})
        os.makedirs(SHOTS, exist_ok=True)
        await page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


async def _webhook(gw: GatewayUnderTest, body: dict[str, Any], delivery: str) -> None:
    async with gw.session.post(f"{gw.url}/webhooks/wms", json=body, headers={
            "X-Fake-Token": FAKE_TOKEN, "X-Fake-Delivery": delivery}) as resp:
        assert resp.status == 200, await resp.text()


async def _shipment(gw: GatewayUnderTest, shipment_id: str, order_ref: str, sku: str,
                    quantity: int) -> None:
    await _webhook(gw, {"kind": "shipment", "record": {
        "id": shipment_id, "order_refs": [["order_number", order_ref]],
        "lines": [[sku, quantity]], "tracking_numbers": [f"1Z{shipment_id}"],
        "carrier": "ups", "updated_at": "2026-12-01T10:00:00Z"}}, shipment_id)
    await gw.wait_idle()


async def _log_in(browser: Any, gw: GatewayUnderTest) -> Any:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{gw.url}/console/")
    assert "/console/login" in page.url  # no page without a session
    await _shot(page, "login")
    await page.fill("input[name=token]", ALICE)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{gw.url}/console/")
    return page


async def test_an_operator_matches_an_unmatched_shipment_and_undoes_it(
        browser: Any, browser_gateway: GatewayUnderTest) -> None:
    gw = browser_gateway
    fo = await gw.create_fo([("COAT-M", 4)], channel="web", order_number="W-100")
    await _shipment(gw, "LBL-7", "w100", "COAT-M", 4)  # a typo the rules cannot match
    page = await _log_in(browser, gw)
    assert await page.text_content("#unmatched-count") == "1"
    assert "alice" in await page.text_content("header")
    await _shot(page, "overview")

    await page.get_by_role("link", name="Unmatched", exact=True).click()
    row = page.locator("#unmatched tr", has_text="LBL-7")
    assert "w100" in await row.text_content()
    await _shot(page, "unmatched")
    await row.locator("input[name=fo_id]").fill(fo["id"])
    await row.get_by_role("button", name="Match").click()
    await page.wait_for_url(f"**/console/fo/{fo['id']}?msg=*")
    assert await page.text_content("#fo-status") == "fulfilled"
    assert "matched by hand" in await page.text_content("[role=status]")
    assert "by=console:alice" in await page.text_content("#timeline")
    await _shot(page, "fulfillment-order")

    await page.get_by_role("button", name="Undo manual match").click()
    await page.wait_for_url(f"**/console/fo/{fo['id']}?msg=*")
    assert await page.text_content("#fo-status") == "unfulfilled"
    await page.get_by_role("link", name="Overview").click()
    assert await page.text_content("#unmatched-count") == "1"

    # The search box finds the FO by its tracking number.
    await page.fill("input[name=q]", "1ZLBL-7")
    await page.press("input[name=q]", "Enter")
    await page.wait_for_url("**/console/search?q=*")
    assert "tracking number 1ZLBL-7" in await page.text_content("#results")


async def test_dead_letters_replayed_and_discarded_and_an_fo_cancelled(
        browser: Any, browser_gateway: GatewayUnderTest) -> None:
    gw = browser_gateway
    for n in (1, 2, 3):
        await _webhook(gw, {"kind": "no-such-kind", "record": {"id": n}}, f"bad-{n}")

    async def three_dead() -> Any:
        items = (await gw.call("GET", "/api/v1/dead-letters"))["items"]
        return items if len(items) == 3 else None

    letters = await gw.wait_for(three_dead)
    page = await _log_in(browser, gw)
    assert await page.text_content("#dead-count") == "3"
    await page.get_by_role("link", name="Dead letters").first.click()
    await _shot(page, "dead-letters")
    await page.locator(f"tr#{letters[0]['id']}").get_by_role("button", name="Replay").click()
    await page.wait_for_url("**/console/dead-letters?msg=*")
    assert "queued again" in await page.text_content("[role=status]")

    await page.get_by_role("link", name=letters[1]["id"]).click()
    assert "unknown fake record kind" in await page.text_content("#error")
    assert "no-such-kind" in await page.text_content("#payload")
    await page.fill("input[name=reason]", "test noise")
    await page.get_by_role("button", name="Discard").click()
    await page.wait_for_url("**/console/dead-letters?msg=*")
    remaining = [d["id"] for d in (await gw.call("GET", "/api/v1/dead-letters"))["items"]]
    assert letters[1]["id"] not in remaining

    fo = await gw.create_fo([("HAT", 1)], channel="web")
    await page.goto(f"{gw.url}/console/fo/{fo['id']}")
    await page.get_by_role("button", name="Cancel FO").click()  # unconfirmed: refused
    assert "Tick the box" in await page.text_content("[role=alert]")
    await page.check("input[name=confirm]")
    await page.get_by_role("button", name="Cancel FO").click()
    await page.wait_for_url(f"**/console/fo/{fo['id']}?msg=*")
    assert await page.text_content("#fo-status") == "cancelled"

    # A form posted without the page's CSRF token (from the logged-in browser) is refused.
    status = await page.evaluate("""async (path) => {
        const form = new FormData(); form.append("confirm", "yes");
        return (await fetch(path, {method: "POST", body: form})).status;
    }""", f"/console/fo/{fo['id']}/cancel")
    assert status == 403

    # Logged out, nothing is reachable again.
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url("**/console/login?*")
    await page.goto(f"{gw.url}/console/dead-letters")
    assert "/console/login" in page.url


async def test_the_overview_reads_on_a_phone(browser: Any,
                                             browser_gateway: GatewayUnderTest) -> None:
    page = await _log_in(browser, browser_gateway)
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.reload()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1  # nothing wider than the screen: tables scroll inside
    await _shot(page, "overview-phone", width=390)


async def test_a_filtered_set_of_dead_letters_is_replayed_and_sent(
        browser: Any, browser_gateway: GatewayUnderTest) -> None:
    from gateway.errors import PartnerRejected
    from tests.fake_partner import partner

    gw = browser_gateway
    wms = partner("wms")
    wms.answer("push_order", PartnerRejected("3PL closed for stocktake", 422),
               PartnerRejected("3PL closed for stocktake", 422))
    fos = [await gw.create_fo([("SKU-1", 1)], channel="shop") for _ in range(2)]
    await _webhook(gw, {"kind": "no-such-kind", "record": {"id": 1}}, "noise-1")

    async def three_dead() -> Any:
        items = (await gw.call("GET", "/api/v1/dead-letters"))["items"]
        return items if len(items) == 3 else None

    await gw.wait_for(three_dead)
    page = await _log_in(browser, gw)
    await page.get_by_role("link", name="Dead letters").first.click()
    await page.fill("input[name=error]", "STOCKTAKE")
    await page.get_by_role("button", name="Filter", exact=True).click()
    await page.wait_for_url("**/console/dead-letters?*error=STOCKTAKE*")
    assert await page.locator("#dead-letters tr").count() == 3  # the header and two pushes
    await page.get_by_role("button", name="Replay every dead letter this filter matches").click()
    await page.wait_for_url("**/console/dead-letters/replays/*")
    await page.wait_for_function(
        "document.querySelector('#replay-state').textContent.startsWith('finished')")
    assert "2 matched, 2 queued again" in await page.text_content("#replay-report")
    await _shot(page, "replay")

    async def sent() -> bool:
        views = [await gw.fo(fo["id"]) for fo in fos]
        return all(v["outbound"][0]["status"] == "sent" for v in views)

    await gw.wait_for(sent)  # the 3PL took them this time
    left = (await gw.call("GET", "/api/v1/dead-letters"))["items"]
    assert [(d["source"], d["kind"]) for d in left] == [("inbox", "webhook")]  # not matched
