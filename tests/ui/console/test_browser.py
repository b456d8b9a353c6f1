"""The console in Debian's Chromium: sign-in with a second factor, each page's main task,
errors beside the inputs, accessibility (axe-core), the CSP, and 360 px screens."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from tests.ui.console.conftest import (
    ANSWER,
    PASSWORD,
    axe_violations,
    csp_watched,
    screenshot,
    sign_in,
    sign_in_with_password,
)

# django_db: so the test database is set up; the data itself is the module's (conftest).
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

PAGES = ["dashboard", "playground", "providers", "tokens", "tools", "memory", "documents"]


def test_sign_in_asks_for_the_authenticator_code_and_refuses_a_wrong_one(world, browser):
    context = browser.new_context(base_url=world.base)
    page = context.new_page()
    page.goto("/console/playground/")
    page.get_by_label("Email").fill(world.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Continue").click()
    error = page.locator("#password-form [data-error-for='__all__']")
    error.wait_for()
    assert error.inner_text().strip()  # the API's message, beside the form
    assert "/console/login/" in page.url

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    code = page.get_by_label("Code from your authenticator app (or a backup code)")
    code.wait_for()
    screenshot(page, "login-code")
    code.fill("000000" if world.totp.now() != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    page.locator("#code-form [data-error-for]:not(:empty)").first.wait_for()
    # Half signed in: the console's pages still send the session to the code.
    page.goto("/console/tokens/")
    assert "/console/login/" in page.url
    assert page.get_by_label("Code from your authenticator app (or a backup code)").is_visible()
    context.close()

    fresh = browser.new_context(base_url=world.base)
    page = fresh.new_page()
    sign_in(page, world)
    assert page.get_by_role("heading", name="API tokens").is_visible()
    fresh.close()


def test_every_page_is_served_with_a_strict_csp_and_only_its_own_bundles(world, page):
    loaded: list[str] = []
    page.on("request", lambda r: loaded.append(r.url) if r.url.endswith(".js") else None)
    manifest = json.loads(
        urllib.request.urlopen(f"{world.base}/static/console/manifest.json").read()
    )
    for name in PAGES:
        loaded.clear()
        response = page.goto(f"/console/{'' if name == 'dashboard' else name + '/'}")
        page.wait_for_load_state("networkidle")
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        wanted = {f"/static/console/{path}" for path in manifest[name]}
        assert {re.sub(r"^https?://[^/]+", "", url) for url in loaded} == wanted, name
    assert page.csp_violations == []


@pytest.mark.parametrize("width", [1280, 360])
def test_no_critical_or_serious_axe_violation_on_any_page(world, page, width):
    page.set_viewport_size({"width": width, "height": 900})
    for name in PAGES:
        page.goto(f"/console/{'' if name == 'dashboard' else name + '/'}")
        page.wait_for_load_state("networkidle")
        assert axe_violations(page) == [], name
        # Nothing wider than the screen: no sideways scrolling of the page itself.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} is {overflow}px wider than {width}px"
        screenshot(page, f"{name}-{width}")
    assert page.csp_violations == []


def test_the_keyboard_reaches_the_navigation_with_a_visible_focus(page):
    page.goto("/console/tokens/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "(() => { const e = document.activeElement; const s = getComputedStyle(e);"
        " return {tag: e.tagName, text: e.textContent, outline: s.outlineStyle,"
        " width: parseFloat(s.outlineWidth)}; })()"
    )
    assert focused["tag"] == "A"
    assert focused["text"] == "Dashboard"
    assert focused["outline"] != "none"
    assert focused["width"] >= 2


def test_mint_a_token_shown_once_then_revoke_it(world, page):
    page.goto("/console/tokens/")
    page.get_by_label("Name", exact=True).fill("ci deploys")
    page.get_by_label(re.compile("^Scopes")).fill("providers.use, memory.read")
    page.get_by_role("button", name="Mint").click()
    secret = page.locator("#minted-secret")
    secret.wait_for()
    token = secret.inner_text()
    assert token.startswith(
        page.locator("#tokens-table tbody tr").first.locator("code").inner_text()
    )
    row = page.locator("#tokens-table tbody tr", has_text="ci deploys")
    assert "providers.use, memory.read" in row.inner_text()
    assert "active" in row.inner_text()
    # The token works, for what its scopes allow.
    call = urllib.request.Request(
        f"{world.base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert urllib.request.urlopen(call).status == 200
    # Screenshots end up in the README: never with a live secret in them.
    page.locator("#minted-secret").evaluate(
        "node => { node.textContent = 'lum_•••••••••••••••• (redacted in this screenshot)'; }"
    )
    screenshot(page, "tokens-minted")

    page.reload()
    assert token not in page.content()  # shown once only
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke ci deploys").click()
    page.locator("#tokens-table tbody tr", has_text="ci deploys").filter(
        has_text="revoked"
    ).wait_for()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(call)
    assert refused.value.code == 401


def test_the_mint_form_shows_the_api_error_beside_the_input(page):
    page.goto("/console/tokens/")
    page.get_by_label("Name", exact=True).fill("x" * 101)
    page.get_by_role("button", name="Mint").click()
    beside = page.locator("#name-error")
    beside.wait_for()
    assert "100" in beside.inner_text()
    assert page.get_by_label("Name").get_attribute("aria-invalid") == "true"
    assert page.locator("#mint-form [data-error-for='__all__']").inner_text().strip()


def test_the_playground_streams_an_answer_with_provider_attempts_and_cost(world, page):
    page.goto("/console/playground/")
    page.get_by_label("Model").select_option("console-chat")
    page.get_by_label("Message").fill("Say something in pieces.")
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".turn.assistant .content")
    answer.wait_for()
    seen: list[str] = []
    report = page.locator("[data-report]")
    while not report.count():
        text = answer.inner_text()
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        page.wait_for_timeout(40)
    assert answer.inner_text() == ANSWER
    partial = [text for text in seen if text != ANSWER]
    assert len(partial) >= 2, seen  # the text grew piece by piece: it streamed
    assert all(ANSWER.startswith(text) for text in partial)
    assert report.locator("[data-provider]").get_attribute("data-provider") == "loopback-openai"
    assert "#1 loopback-openai/console-chat: ok" in report.inner_text()
    # 12 input and 7 output tokens at $0.15 and $0.60 per million.
    cost = float(report.locator("[data-cost]").get_attribute("data-cost"))
    assert cost == pytest.approx((12 * 0.15 + 7 * 0.60) / 1_000_000)
    assert "Overhead" in report.inner_text()
    screenshot(page, "playground-answer")


def test_the_playground_shows_a_refusal_beside_the_form(page):
    page.goto("/console/playground/")
    page.get_by_role("button", name="Send").click()  # no message
    page.locator(
        "#messages-error:not(:empty), #chat-form [data-error-for='__all__']:not(:empty)"
    ).first.wait_for()


def test_run_a_tool_from_the_form_generated_from_its_schema(world, page):
    page.goto("/console/tools/")
    page.get_by_role("link", name=world.tool_name).click()
    field = page.get_by_label(re.compile("^text"))
    assert field.get_attribute("name") == "arguments.text"
    page.get_by_role("button", name=f"Run {world.tool_name}").click()
    # The required argument is missing: the API's message lands beside the input.
    page.locator(
        "#arg-text-error:not(:empty), #run-form [data-error-for='__all__']:not(:empty)"
    ).first.wait_for()

    field.fill("one two three four")
    page.get_by_role("button", name=f"Run {world.tool_name}").click()
    output = page.locator("#run-output[data-status='succeeded']")
    output.wait_for()
    assert json.loads(output.inner_text()) == {"characters": 18, "words": 4, "lines": 1}
    page.locator("#executions-table tbody tr", has_text="succeeded").first.wait_for()
    screenshot(page, "tools-run")


def test_the_providers_page_shows_models_probes_and_prices(world, page):
    page.goto("/console/providers/")
    card = page.locator("article", has_text="loopback-openai")
    card.wait_for()
    row = card.locator("tr", has_text="console-chat")
    assert "$0.15 in / $0.6 out" in row.inner_text()
    assert "chat" in row.inner_text()


def test_memory_search_shows_each_components_score_and_pinned_blocks_save(page):
    page.goto("/console/memory/")
    page.get_by_label("Query").fill("Where do I live?")
    page.get_by_role("button", name="Search").click()
    first = page.locator("#search-results li").first
    first.wait_for()
    assert "Lisbon" in page.locator("#search-results").inner_text()
    scores = first.locator("dl.scores dt").all_inner_texts()
    assert "vector" in scores, scores
    assert "text" in scores, scores
    screenshot(page, "memory-search")

    block = page.locator("#pinned form").first
    block.get_by_label("Text").fill("Answers in one sentence.")
    block.get_by_role("button", name="Save").click()
    page.locator("#pinned textarea", has_text="Answers in one sentence.").wait_for()
    page.reload()
    assert page.locator("#pinned textarea").first.input_value() == "Answers in one sentence."


def test_the_dashboard_draws_the_cost_chart_with_the_apis_numbers(page):
    page.goto("/console/")
    figure = page.locator("figure[data-chart='cost_by_day'][data-drawn='true']")
    figure.wait_for()
    rendered = page.request.get(
        "/api/v1/visualizations/templates/cost_by_day/render?days=30"
    ).json()
    (dataset,) = rendered["spec"]["datasets"].values()
    assert len(dataset) >= 20  # one row a day the user spent on
    bars = figure.locator("svg [aria-roledescription='bar']")
    assert bars.count() == len(dataset)
    labels = bars.evaluate_all("marks => marks.map(m => m.getAttribute('aria-label'))")
    drawn = sorted(
        float(re.search(r"USD: ([\d.,]+)", label)[1].replace(",", "")) for label in labels
    )
    wanted = sorted(float(row["cost"]) for row in dataset)
    assert drawn == pytest.approx(wanted, rel=1e-3, abs=5e-4)
    # The month's budget and how much of it the seeded requests spent.
    budget = page.locator("#budgets-table tbody tr", has_text="monthly")
    budget.wait_for()
    assert "$50.0000" in budget.inner_text()
    assert re.search(r"\$\d+\.\d{4} \(\d+%\)", budget.inner_text()), budget.inner_text()
    screenshot(page, "dashboard-charts")


def editor_text(page) -> str:
    """The editor's lines, without the other people's cursors (their name labels)."""
    return page.locator(".cm-content").evaluate(
        "content => [...content.querySelectorAll('.cm-line')].map(line => {"
        " const copy = line.cloneNode(true);"
        " copy.querySelectorAll('.cm-ySelectionCaret').forEach(c => c.remove());"
        " return copy.textContent; }).join('\\n')"
    )


def test_two_people_edit_one_document_together_and_the_export_has_their_text(
    world, browser, page, editor
):
    # The owner creates the document and shares it with the editor, for edit.
    page.goto("/console/documents/")
    page.get_by_label("Title").fill("Launch notes")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/console/documents/?id=*")
    document_id = page.url.split("?id=")[1]
    page.get_by_label("Email of the person").fill(editor)
    page.get_by_label("May").select_option("edit")
    page.get_by_role("button", name="Share").click()
    page.locator("#shares-list li", has_text=f"{editor}: edit").wait_for()
    page.locator("#connection[data-synced='true']").wait_for()

    # The editor signs in (password only: no second factor) and opens it.
    context = browser.new_context(base_url=world.base, viewport={"width": 1280, "height": 900})
    other = context.new_page()
    other_violations = csp_watched(other)
    sign_in_with_password(other, editor, f"/console/documents/?id={document_id}")
    other.locator("#documents-list a", has_text="Launch notes").wait_for()
    other.locator("#connection[data-synced='true']").wait_for()

    # Each sees the other here.
    page.locator("#presence li", has_text=editor).wait_for()
    other.locator("#presence li", has_text=world.email).wait_for()

    page.locator(".cm-content").click()
    page.keyboard.type("Hello from the owner.")
    other.locator(".cm-content", has_text="Hello from the owner.").wait_for()
    other.locator(".cm-content").click()
    other.keyboard.press("Control+End")
    other.keyboard.press("Enter")
    other.keyboard.type("And from the editor.")
    typed = "Hello from the owner.\nAnd from the editor."
    for each in (page, other):
        each.locator(".cm-content", has_text="And from the editor.").wait_for()
        assert editor_text(each) == typed
    # Each shows the other's cursor, labelled with their name.
    page.locator(".cm-ySelectionInfo", has_text=editor).wait_for(state="attached")
    other.locator(".cm-ySelectionInfo", has_text=world.email).wait_for(state="attached")

    # What they typed was stored: the REST export (the owner's session) has it.
    export = page.request.get(f"/api/v1/documents/{document_id}/export?format=text")
    assert export.status == 200
    assert typed in export.text()

    # The other's name label shows in full when hovered (axe checks it shown, not half-faded).
    page.locator(".cm-ySelectionCaret").hover()
    label = page.locator(".cm-ySelectionInfo", has_text=editor)
    assert label.evaluate("e => getComputedStyle(e).opacity") == "1"
    assert axe_violations(page) == []
    screenshot(page, "documents-editor")
    screenshot(other, "documents-editor-shared")
    assert page.csp_violations == []
    assert other_violations == []
    context.close()


def test_keep_a_version_and_restore_it_in_the_open_editor(world, page):
    # The editor's messages can be held back, as on a slow link: the keep and the restore,
    # sent over HTTP, then arrive before the keystrokes they follow.
    held: list = []
    holding = False

    def route(socket) -> None:
        server = socket.connect_to_server()
        socket.on_message(
            lambda message: held.append((server, message)) if holding else server.send(message)
        )

    page.route_web_socket(re.compile(r"/ws/documents/"), route)
    page.goto("/console/documents/")
    page.get_by_label("Title").fill("Versioned")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/console/documents/?id=*")
    page.locator("#connection[data-synced='true']").wait_for()
    page.locator(".cm-content").click()
    page.keyboard.type("First")
    holding = True
    page.keyboard.type(" draft")
    page.get_by_label("Name", exact=True).fill("draft one")
    page.get_by_role("button", name="Keep this version").click()
    restore = page.get_by_role("button", name="Restore draft one")
    restore.wait_for()
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(", then changes")
    page.locator(".cm-content", has_text="First draft, then changes").wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    restore.click()
    # The restore is a new update the server relays to the open editor.
    page.locator(".cm-content", has_text=re.compile("^First draft$")).wait_for()
    assert held  # the keystrokes never reached the server over the websocket
    holding = False
    for server, message in held:  # late, and already stored: nothing changes
        server.send(message)
    page.reload()
    page.locator("#connection[data-synced='true']").wait_for()
    page.locator(".cm-content", has_text=re.compile("^First draft$")).wait_for()
    assert page.csp_violations == []


def test_a_rename_and_a_version_by_someone_else_show_without_a_reload(world, browser, page, editor):
    page.goto("/console/documents/")
    page.get_by_label("Title").fill("Roadmap")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/console/documents/?id=*")
    document_id = page.url.split("?id=")[1]
    page.get_by_label("Email of the person").fill(editor)
    page.get_by_label("May").select_option("edit")
    page.get_by_role("button", name="Share").click()
    page.locator("#shares-list li", has_text=f"{editor}: edit").wait_for()
    page.locator("#live[data-following='true']").wait_for(state="attached")

    context = browser.new_context(base_url=world.base, viewport={"width": 1280, "height": 900})
    other = context.new_page()
    other_violations = csp_watched(other)
    sign_in_with_password(other, editor, f"/console/documents/?id={document_id}")
    other.locator("#live[data-following='true']").wait_for(state="attached")

    # The editor renames it: the owner's page follows, heading and list.
    other.get_by_label("Rename").fill("Roadmap 2027")
    other.get_by_role("button", name="Rename").click()
    page.locator("#document-heading", has_text="Roadmap 2027").wait_for()
    page.locator("#documents-list a", has_text="Roadmap 2027").wait_for()
    assert "Renamed to" in page.locator("#live").inner_text()

    # The owner keeps a version: it appears in the editor's list.
    page.get_by_label("Name", exact=True).fill("before review")
    page.get_by_role("button", name="Keep this version").click()
    other.locator("#versions-list li", has_text="before review").wait_for()
    assert page.csp_violations == []
    assert other_violations == []
    context.close()


def test_someone_it_is_not_shared_with_gets_neither_the_document_nor_its_text(
    world, browser, page, editor
):
    page.goto("/console/documents/")
    page.get_by_label("Title").fill("Private plans")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/console/documents/?id=*")
    document_id = page.url.split("?id=")[1]
    page.locator("#connection[data-synced='true']").wait_for()
    page.locator(".cm-content").click()
    page.keyboard.type("secret launch date")

    context = browser.new_context(base_url=world.base)
    other = context.new_page()
    sign_in_with_password(other, editor, f"/console/documents/?id={document_id}")
    other.locator("#document-error:not(:empty)").wait_for()
    assert other.locator(".cm-content").count() == 0  # no editor, no socket opened
    assert "Private plans" not in other.locator("#documents-list").inner_text()
    assert "secret launch date" not in other.content()
    # The socket itself refuses them (4404), as the REST API does (404).
    closed = other.evaluate(
        """id => new Promise(resolve => {
            const ws = new WebSocket(`ws://${location.host}/ws/documents/${id}/`);
            ws.onclose = event => resolve(event.code);
        })""",
        document_id,
    )
    assert closed == 4404
    assert other.request.get(f"/api/v1/documents/{document_id}/export").status == 404
    context.close()


def test_the_share_form_shows_the_api_error_beside_the_input_and_fits_360_px(world, page):
    page.set_viewport_size({"width": 360, "height": 900})
    page.goto("/console/documents/")
    page.get_by_label("Title").fill("Narrow")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/console/documents/?id=*")
    page.locator("#connection[data-synced='true']").wait_for()
    page.get_by_label("Email of the person").fill("nobody@console.example")
    page.get_by_role("button", name="Share").click()
    beside = page.locator("#principal-error:not(:empty)")
    beside.wait_for()
    assert page.get_by_label("Email of the person").get_attribute("aria-invalid") == "true"
    assert page.locator("#shares-list").inner_text() == "Not shared."
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1
    assert axe_violations(page) == []
    screenshot(page, "documents-360")
    assert page.csp_violations == []
