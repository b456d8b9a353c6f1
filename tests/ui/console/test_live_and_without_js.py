"""The console in Debian's Chromium, part two: pages that follow /ws/realtime/ show what
happens on the server without a reload, and the forms that can work without JavaScript do
(a browser context with JavaScript off posts them, CSRF token included)."""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.error
import urllib.request

import pytest

from tests.ui.console.conftest import screenshot

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def _csrf(page) -> dict[str, str]:
    (token,) = [c["value"] for c in page.context.cookies() if c["name"] == "csrftoken"]
    return {"X-CSRFToken": token}


@pytest.fixture
def no_js(world, browser, signed_in_state):
    """A signed-in page with JavaScript switched off."""
    context = browser.new_context(
        base_url=world.base,
        storage_state=signed_in_state,
        java_script_enabled=False,
        viewport={"width": 1280, "height": 900},
    )
    page = context.new_page()
    yield page
    context.close()


# -- live ---------------------------------------------------------------------------------


def test_a_tool_run_elsewhere_appears_in_the_executions_without_a_reload(world, page):
    page.goto("/console/tools/")
    page.locator("#live[data-following~='tools']").wait_for(state="attached")
    rows = page.locator("#executions-table tbody tr")
    assert "never-seen-before" not in page.locator("#executions-table").inner_text()
    loaded = page.evaluate("performance.getEntriesByType('navigation').length")

    # Another client (here the same session, outside the page's script) runs a tool.
    answer = page.request.post(
        "/api/v1/tools/execute",
        data=json.dumps({"tool": world.tool_name, "arguments": {"text": "never-seen-before"}}),
        headers={"Content-Type": "application/json", **_csrf(page)},
    )
    assert answer.status == 200, answer.text()
    assert answer.json()["status"] == "succeeded"

    rows.filter(has_text='"words":1').first.wait_for()
    assert page.locator("#live").get_attribute("data-updates") is not None
    # The same document: no navigation happened.
    assert page.evaluate("performance.getEntriesByType('navigation').length") == loaded
    assert page.csp_violations == []


def _requests_today(page) -> int:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    data = json.loads(page.locator("#dashboard-data").text_content())
    (rows,) = data["cost_by_day"]["spec"]["datasets"].values()
    return sum(row["requests"] for row in rows if row["day"] == today)


def test_the_dashboard_redraws_when_a_request_is_recorded(world, page):
    page.goto("/console/")
    page.locator("figure[data-chart='cost_by_day'][data-drawn='true']").wait_for()
    page.locator("#live[data-following~='usage']").wait_for(state="attached")
    before = _requests_today(page)

    # A chat through the playground's stream, outside the dashboard: usage is recorded.
    answer = page.request.post(
        "/console/playground/stream",
        data=json.dumps(
            {"model": "console-chat", "messages": [{"role": "user", "content": "Count me."}]}
        ),
        headers={"Content-Type": "application/json", **_csrf(page)},
    )
    assert answer.status == 200, answer.text()
    assert '"report"' in answer.text()

    page.locator("#live[data-updates]").wait_for(state="attached")
    page.wait_for_function(
        """before => {
            const data = JSON.parse(document.getElementById('dashboard-data').textContent);
            const rows = Object.values(data.cost_by_day.spec.datasets)[0];
            const today = new Date().toISOString().slice(0, 10);
            return rows.filter(r => r.day === today).reduce((n, r) => n + r.requests, 0)
                > before;
        }""",
        arg=before,
    )
    assert _requests_today(page) == before + 1
    page.locator("figure[data-chart='cost_by_day'][data-drawn='true']").wait_for()
    assert page.csp_violations == []


def test_the_dashboards_period_redraws_in_place_with_javascript(page):
    page.goto("/console/")
    page.locator("figure[data-chart='cost_by_day'][data-drawn='true']").wait_for()
    loaded = page.evaluate("performance.getEntriesByType('navigation').length")
    page.get_by_label("Period").select_option("7")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/console/?days=7")  # the address follows, for a reload or a link
    page.wait_for_function(
        "() => Object.values(JSON.parse(document.getElementById('dashboard-data').textContent)"
        ".cost_by_day.spec.datasets)[0].length <= 7"
    )
    bars = page.locator("figure[data-chart='cost_by_day'] svg [aria-roledescription='bar']")
    page.wait_for_function(
        "() => document.querySelectorAll(\"figure[data-chart='cost_by_day'] svg "
        "[aria-roledescription='bar']\").length <= 7"
    )
    assert 1 <= bars.count() <= 7
    assert page.evaluate("performance.getEntriesByType('navigation').length") == loaded
    assert page.get_by_label("Period").input_value() == "7"
    assert page.csp_violations == []


def test_a_memory_recorded_elsewhere_updates_the_memory_page(page):
    page.goto("/console/memory/")
    page.locator("#live[data-following~='memory']").wait_for(state="attached")
    answer = page.request.post(
        "/api/v1/memory/turns",
        data=json.dumps({"text": "My favourite city is Porto.", "session_id": "live"}),
        headers={"Content-Type": "application/json", **_csrf(page)},
    )
    assert answer.status in (200, 201), answer.text()
    page.locator("#live[data-updates]").wait_for(state="attached")
    assert "Memory changed" in page.locator("#live").inner_text()


# -- without JavaScript ---------------------------------------------------------------------


def test_a_tool_runs_from_its_generated_form_without_javascript(world, no_js):
    page = no_js
    page.goto("/console/tools/")
    page.get_by_role("link", name=world.tool_name).click()
    page.wait_for_url(f"**/console/tools/?tool={world.tool_name}")
    # The required argument missing: the API's refusal beside the input, after a POST.
    page.get_by_role("button", name=f"Run {world.tool_name}").click()
    page.wait_for_load_state()
    beside = page.locator("#arg-text-error")
    top = page.locator("#run-form [data-error-for='__all__']")
    assert (beside.inner_text() + top.inner_text()).strip()
    assert top.inner_text().strip()

    page.get_by_label(re.compile("^text")).fill("one two three")
    runs = _executions(page)
    page.get_by_role("button", name=f"Run {world.tool_name}").click()
    # Post/redirect/get: the run's answer is a page of its own, read with GET.
    page.wait_for_url(
        re.compile(rf"/console/tools/\?tool={world.tool_name}&execution=[0-9a-f-]{{36}}$")
    )
    output = page.locator("#run-output[data-status='succeeded']")
    assert json.loads(output.inner_text()) == {"characters": 13, "words": 3, "lines": 1}
    assert page.get_by_label(re.compile("^text")).input_value() == "one two three"
    assert _executions(page) == runs + 1
    page.reload()  # nothing is sent again: the tool does not run twice
    assert json.loads(output.inner_text()) == {"characters": 13, "words": 3, "lines": 1}
    assert _executions(page) == runs + 1
    screenshot(page, "tools-run-without-js")


def _executions(page) -> int:
    answer = page.request.get("/api/v1/tools/results?page_size=1")
    assert answer.status == 200, answer.text()
    return answer.json()["count"]


def test_a_post_without_the_csrf_token_is_refused(world, no_js):
    page = no_js
    answer = page.request.post(
        f"/console/tools/?tool={world.tool_name}",
        form={"tool": world.tool_name, "arguments.text": "x"},
    )
    assert answer.status == 403


def test_memory_search_and_a_pinned_block_work_without_javascript(no_js):
    page = no_js
    page.goto("/console/memory/")
    page.get_by_label("Query").fill("Where do I live?")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/console/memory/?query=*")
    results = page.locator("#search-results")
    assert "Lisbon" in results.inner_text()
    components = results.locator("li").first.locator("dl.scores dt").all_inner_texts()
    assert {"vector", "text"} <= set(components), components

    page.get_by_label("Query").fill("")
    page.get_by_role("button", name="Search").click()
    assert page.locator("#query-error").inner_text().strip()
    assert page.get_by_label("Query").get_attribute("aria-invalid") == "true"

    block = page.locator("#pinned form").first
    block.get_by_label("Text").fill("Answers without a script.")
    block.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/console/memory/\?saved=([0-9a-f-]{36})#pinned-\1$"))
    saved = page.locator("#pinned form").first
    assert saved.get_by_role("status").inner_text() == "Saved."
    assert page.locator("#pinned textarea").first.input_value() == "Answers without a script."
    page.goto("/console/memory/")
    assert page.locator("#pinned textarea").first.input_value() == "Answers without a script."
    screenshot(page, "memory-without-js")


def test_the_dashboard_period_and_budgets_work_without_javascript(no_js):
    page = no_js
    page.goto("/console/")
    budget = page.locator("#budgets-table tbody tr", has_text="monthly")
    assert "$50.0000" in budget.inner_text()
    assert re.search(r"\$\d+\.\d{4} \(\d+%\)", budget.inner_text()), budget.inner_text()
    page.get_by_label("Period").select_option("7")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/console/?days=7")
    data = json.loads(page.locator("#dashboard-data").text_content())
    (rows,) = data["cost_by_day"]["spec"]["datasets"].values()
    assert 1 <= len(rows) <= 7
    assert page.get_by_label("Period").input_value() == "7"


def test_tokens_are_minted_and_revoked_without_javascript(world, no_js):
    page = no_js
    page.goto("/console/tokens/")
    page.get_by_label("Name", exact=True).fill("x" * 101)
    page.get_by_role("button", name="Mint").click()
    page.wait_for_load_state()
    assert "100" in page.locator("#name-error").inner_text()
    assert page.get_by_label("Name", exact=True).get_attribute("aria-invalid") == "true"

    page.get_by_label("Name", exact=True).fill("no script")
    page.get_by_role("button", name="Mint").click()
    page.wait_for_load_state()
    token = page.locator("#minted-secret").inner_text()
    assert token.startswith("lum_")
    call = urllib.request.Request(
        f"{world.base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert urllib.request.urlopen(call).status == 200
    row = page.locator("#tokens-table tbody tr", has_text="no script")
    assert "active" in row.inner_text()

    page.goto("/console/tokens/")
    assert token not in page.content()  # shown once only
    page.get_by_role("button", name="Revoke no script").click()
    page.wait_for_load_state()
    assert "revoked" in page.locator("#tokens-table tbody tr", has_text="no script").inner_text()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(call)
    assert refused.value.code == 401


def test_signing_in_with_password_and_code_works_without_javascript(world, browser):
    from tests.ui.console.conftest import PASSWORD

    context = browser.new_context(base_url=world.base, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/console/tools/")
        assert "/console/login/" in page.url
        page.get_by_label("Email").fill(world.email)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Continue").click()
        page.wait_for_load_state()
        assert page.locator("#password-form [data-error-for='__all__']").inner_text().strip()
        assert page.get_by_label("Email").input_value() == world.email

        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Continue").click()
        code = page.get_by_label("Code from your authenticator app (or a backup code)")
        code.fill(world.fresh_code())
        page.get_by_role("button", name="Verify").click()
        page.wait_for_url("**/console/tools/")
        assert page.get_by_role("heading", name="Tools").first.is_visible()
    finally:
        context.close()


# Last in the module: the circuit it opens stays open for the breaker's cooldown.
def test_a_circuit_opening_shows_on_the_providers_page_without_a_reload(world, page):
    page.goto("/console/providers/")
    page.locator("#live[data-following~='circuits']").wait_for(state="attached")
    rows = page.locator("article[data-provider='loopback-openai'] tr")
    assert "available (rank 1)" in rows.filter(has_text="console-chat").inner_text()
    loaded = page.evaluate("performance.getEntriesByType('navigation').length")

    world.upstream.script.fail_next = 100  # every call to the provider fails from now on
    try:
        turn = {"model": "console-chat", "messages": [{"role": "user", "content": "Fail."}]}
        for _ in range(4):  # retries count too: two or three turns open the circuit
            page.request.post(
                "/console/playground/stream",
                data=json.dumps(turn),
                headers={"Content-Type": "application/json", **_csrf(page)},
            )
            if page.locator("#live[data-updates]").count():
                break
        page.locator("#live[data-updates]").wait_for(state="attached")
        rows.filter(has_text="console-chat").filter(has_text="left out").wait_for()
    finally:
        world.upstream.script.fail_next = 0
    assert "circuit" in rows.filter(has_text="console-chat").inner_text().lower()
    assert page.evaluate("performance.getEntriesByType('navigation').length") == loaded
    assert page.csp_violations == []
