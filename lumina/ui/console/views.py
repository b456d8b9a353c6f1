"""The console's pages and its one endpoint of its own, the playground's stream.

Pages are rendered here with what they show first, read through the contexts' ``api`` as
the viewer (the dashboard's chart data and budgets, providers, the tools' run form,
memory's search, pinned blocks and graph), so they load in one request and their forms
work without JavaScript; each page's bundle (``frontend/src/<page>.js``) then enhances
them, reading and writing through the REST API with the session and its CSRF token, and
follows /ws/realtime/ where the data changes (ADR 0025 and its amendment).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import orjson
from asgiref.sync import async_to_sync
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods, require_POST

from lumina.kernel.errors import ApplicationError
from lumina.memory import api as memory_api
from lumina.providers.api import (
    BudgetStatus,
    ModelOverview,
    Strategy,
    budget_statuses,
    chat_model_names,
    chat_stream_report,
    provider_overview,
)
from lumina.security.api import (
    actor_of,
    mfa_status,
    sign_in_address_wait,
    sign_in_code,
    sign_in_password,
    token_mint_own,
    token_revoke_own,
    tokens_own,
)
from lumina.tools import api as tools_api
from lumina.ui import api as ui_api
from lumina.ui.console.forms import (
    ArgumentField,
    ChatForm,
    DashboardFilters,
    argument_fields,
    argument_inputs,
    argument_values,
)

# No inline script or style anywhere: every script and stylesheet is a bundle of ours.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

MAX_SAVED_CHARTS = 12
PAGES = (
    ("dashboard", "Dashboard"),
    ("playground", "Playground"),
    ("providers", "Providers"),
    ("tokens", "Tokens"),
    ("tools", "Tools"),
    ("memory", "Memory"),
    ("documents", "Documents"),
)


def with_csp(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["Referrer-Policy"] = "same-origin"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def signed_in(request: HttpRequest) -> bool:
    """A session whose second factor, if the user has one, has been passed."""
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return False
    is_verified = getattr(user, "is_verified", None)
    if callable(is_verified) and is_verified():
        return True
    return not mfa_status(user_id=user.pk).enabled


def _see_other(url: str) -> HttpResponseRedirect:
    """Post/redirect/get: the page a form succeeded on, read again with GET, so that
    reloading it does not send the form twice."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _error(status: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    return with_csp(JsonResponse(body, status=status))


def page(name: str, *, methods: tuple[str, ...] = ("GET",)) -> Callable:
    """A console page: signed-in users only (others go to the login page), CSP on. A page
    that takes ``POST`` has forms that work without JavaScript (CSRF checked as always);
    its view returns the template's context, or a response of its own (the redirect after
    a form that succeeded), which goes out as it is, with the CSP."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        @ensure_csrf_cookie
        @require_http_methods([*methods, "HEAD"] if "GET" in methods else list(methods))
        def wrapper(request: HttpRequest) -> HttpResponse:
            if not signed_in(request):
                query = urlencode({"next": request.get_full_path()})
                return with_csp(HttpResponseRedirect(f"{reverse('console:login')}?{query}"))
            answer = view(request)
            if isinstance(answer, HttpResponse):
                return with_csp(answer)
            context = {"page": name, "pages": PAGES, **answer}
            response = render(request, f"console/{name}.html", context)
            response["Cache-Control"] = "no-store"
            return with_csp(response)

        return wrapper

    return decorate


@ensure_csrf_cookie
@require_http_methods(["GET", "HEAD", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    """Password, then the second factor for users who have one. The forms post here when
    JavaScript is off (``security.api``'s sign-in, with the per-address limit the REST API
    applies); with it, they go to the REST API without leaving the page."""
    next_url = request.POST.get("next") or request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = ""
    next_url = next_url or reverse("console:dashboard")
    if signed_in(request):
        return with_csp(HttpResponseRedirect(next_url))
    context: dict[str, Any] = {"page": "login", "next": next_url, "email": ""}
    status = 200
    if request.method == "POST":
        error = _sign_in_post(request, context)
        if error is None and signed_in(request):
            return with_csp(HttpResponseRedirect(next_url))
        if error is not None:
            context["error"], status = error, error.pop("status")
    # A session that passed the password but not the code resumes at the code.
    context["needs_code"] = request.user.is_authenticated
    return with_csp(render(request, "console/login.html", context, status=status))


def _sign_in_post(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any] | None:
    """One step of signing in from the form: None when it passed, else what to show."""
    step = "code" if request.POST.get("step") == "code" else "password"
    if step == "code" and not request.user.is_authenticated:
        return {"status": 400, "message": "Sign in with your password first.", "fields": {}}
    context["email"] = request.POST.get("email", "")
    wanted = ("code",) if step == "code" else ("email", "password")
    missing = {name: ["This field is required."] for name in wanted if not request.POST.get(name)}
    if missing:
        return {"status": 400, "message": "Check the highlighted fields.", "fields": missing}
    wait = sign_in_address_wait(request, "mfa" if step == "code" else "login")
    if wait is not None:
        message = f"Too many attempts from your address: try again in {int(wait) + 1} s."
        return {"status": 429, "message": message, "fields": {}}
    try:
        if step == "code":
            sign_in_code(request, code=request.POST["code"])
        else:
            sign_in_password(
                request, email=request.POST["email"], password=request.POST["password"]
            )
    except ApplicationError as error:
        return {"status": error.status, "message": error.message, "fields": _field_messages(error)}
    return None


@page("dashboard")
def dashboard(request: HttpRequest) -> dict[str, Any]:
    """Charts drawn from data rendered here, in the page (one request, not one a chart),
    and the budgets with what each has spent this period."""
    actor = actor_of(request)
    filters = DashboardFilters(request.GET or None)
    days = (filters.cleaned_data["days"] if filters.is_valid() else None) or 30
    charts: list[dict[str, Any]] = []
    problem = ""
    try:
        saved = ui_api.visualization_list(actor=actor)[:MAX_SAVED_CHARTS]
        for found in saved:
            charts.append(
                _chart(
                    "saved", str(found.id), found.name,
                    f"/api/v1/visualizations/{found.id}/render",
                    lambda found=found: ui_api.visualization_render(
                        actor=actor, visualization_id=found.id, filters={"days": days}
                    ),
                )
            )  # fmt: skip
        for template in ui_api.templates_list(actor=actor):
            charts.append(
                _chart(
                    "builtin", template.key, template.name,
                    f"/api/v1/visualizations/templates/{template.key}/render",
                    lambda key=template.key: ui_api.template_render(
                        actor=actor, key=key, filters={"days": days}
                    ),
                )
            )  # fmt: skip
    except ApplicationError as error:
        problem = error.message
    try:
        budgets = budget_statuses(actor=actor)
    except ApplicationError as error:
        budgets, problem = [], problem or error.message
    return {
        "filters": filters,
        "days": days,
        "saved_charts": [c for c in charts if c["group"] == "saved"],
        "builtin_charts": [c for c in charts if c["group"] == "builtin"],
        "charts_data": {c["key"]: {k: c[k] for k in ("spec", "error")} for c in charts},
        "budgets": [_budget_row(status) for status in budgets],
        "problem": problem,
    }


def _chart(group: str, key: str, name: str, url: str, render: Callable) -> dict[str, Any]:
    """One chart of the dashboard: its rendered spec, or the API's message why not."""
    try:
        rendered = render()
    except ApplicationError as error:
        return {"group": group, "key": key, "name": name, "url": url, "spec": None,
                "error": error.message}  # fmt: skip
    return {"group": group, "key": key, "name": name, "url": url, "spec": rendered.spec,
            "error": ""}  # fmt: skip


def _budget_row(status: BudgetStatus) -> dict[str, Any]:
    budget = status.budget
    limit = budget.limit_usd
    return {
        "name": budget.name or str(budget.id)[:8],
        "scope": budget.scope,
        "period": budget.period,
        "limit": limit,
        "spent": status.spent_usd,
        "share": round(100 * status.spent_usd / limit) if limit else None,
    }


@page("tokens", methods=("GET", "POST"))
def tokens(request: HttpRequest) -> dict[str, Any]:
    """The user's own tokens with their budgets, a mint form and a revoke form per token,
    rendered here so that they work without JavaScript. A minted token's secret is in
    this one response only: it is not stored, so the page does not redirect after a mint."""
    actor = actor_of(request)
    context: dict[str, Any] = {"problem": "", "minted": None, "mint_error": None}
    context["values"] = {"name": "", "scopes": "", "expires_at": ""}
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            context["revoke_error"] = _token_revoke_post(request, actor)
        else:
            context.update(_token_mint_post(request, actor))
    try:
        own = tokens_own(actor=actor)
    except ApplicationError as error:
        context["problem"] = error.message
        return context
    try:
        budgets = budget_statuses(actor=actor, scope="token")
    except ApplicationError:
        budgets = []  # budgets are extra reading: the tokens still show
    by_token: dict[uuid.UUID, list[str]] = {}
    for status in budgets:
        by_token.setdefault(status.budget.subject_id, []).append(_budget_text(status))
    context["tokens"] = [
        {"token": token, "budgets": "; ".join(by_token.get(token.id, [])) or "—"} for token in own
    ]
    return context


def _token_mint_post(request: HttpRequest, actor: Any) -> dict[str, Any]:
    values = {k: request.POST.get(k, "") for k in ("name", "scopes", "expires_at")}
    scopes = [scope.strip() for scope in values["scopes"].split(",") if scope.strip()]
    expires_at = None
    if values["expires_at"]:
        try:
            # datetime-local has no zone: read it in the server's, as the form says.
            expires_at = timezone.make_aware(dt.datetime.fromisoformat(values["expires_at"]))
        except ValueError:
            return {"values": values, "mint_error": {
                "message": "Check the highlighted fields.",
                "fields": {"expires_at": ["Enter a date and time."]},
            }}  # fmt: skip
    try:
        issued = token_mint_own(
            actor=actor, name=values["name"], scopes=scopes or ["*"], expires_at=expires_at
        )
    except ApplicationError as error:
        return {"values": values, "mint_error": {
            "message": error.message, "fields": _field_messages(error),
        }}  # fmt: skip
    return {"minted": issued.secret}


def _token_revoke_post(request: HttpRequest, actor: Any) -> str | None:
    try:
        token_revoke_own(actor=actor, token_id=uuid.UUID(request.POST.get("token", "")))
    except ValueError:
        return "No such token."
    except ApplicationError as error:
        return error.message
    return None


def _budget_text(status: BudgetStatus) -> str:
    budget = status.budget
    parts = []
    if budget.limit_usd is not None:
        parts.append(f"${status.spent_usd:.2f} of ${budget.limit_usd:.2f}/{budget.period}")
    if budget.requests_per_minute:
        parts.append(f"{budget.requests_per_minute} req/min")
    if budget.tokens_per_minute:
        parts.append(f"{budget.tokens_per_minute} tok/min")
    return f"{budget.name or 'budget'}: {', '.join(parts) or 'no limit'}"


@page("playground")
def playground(request: HttpRequest) -> dict[str, Any]:
    models = ["lumina/auto", *(f"lumina/auto:{s.value}" for s in Strategy), *chat_model_names()]
    return {"models": models}


@page("providers")
def providers(request: HttpRequest) -> dict[str, Any]:
    """Every provider and its models with their routing state, probe and prices."""
    try:
        found = provider_overview(actor=actor_of(request))
    except ApplicationError as error:
        return {"providers": [], "problem": error.message}
    return {
        "providers": [
            {"provider": item.provider, "models": [_model_row(m) for m in item.models]}
            for item in found
        ],
        "problem": "",
    }


def _price(value: Decimal | None) -> str:
    return "—" if value is None else f"${value.normalize():f}"


def _model_row(item: ModelOverview) -> dict[str, Any]:
    model = item.model
    probes = [
        f"{v.capability}: {'ok' if v.ok else f'failed ({v.error})'}"
        + (f", {round(v.latency_ms)} ms" if v.latency_ms is not None else "")
        for v in model.verified
    ]
    checked = max((v.checked_at for v in model.verified if v.checked_at), default=None)
    return {
        "name": model.name,
        "routing": item.routing,
        "capabilities": ", ".join(sorted(str(c) for c in model.capabilities)),
        "probe": f"{'; '.join(probes)} ({checked or '—'})" if probes else "not probed",
        "prices": f"{_price(model.prices.input)} in / {_price(model.prices.output)} out per 1M",
    }


@page("tools", methods=("GET", "POST"))
def tools(request: HttpRequest) -> dict[str, Any] | HttpResponse:
    context = _tools(request)
    if isinstance(context, HttpResponse):
        return context
    error = context.get("run_error") or {}
    fields = error.get("fields", {})
    context["rows"] = [
        {
            "field": field,
            "value": context["values"].get(field.input_name, ""),
            "errors": fields.get(field.input_name, []),
        }
        for field in context["fields"]
    ]
    context["arguments_errors"] = fields.get("arguments", [])
    placed = {field.input_name for field in context["fields"]} | {"arguments"}
    unplaced = [f"{name}: {' '.join(m)}" for name, m in fields.items() if name not in placed]
    context["run_message"] = " ".join([error.get("message", ""), *unplaced]).strip()
    return context


def _tools(request: HttpRequest) -> dict[str, Any] | HttpResponse:
    """The tools, and the chosen one's run form (``?tool=<name>``), generated from its
    argument schema. A POST runs it, so the form works without JavaScript too, and
    answers 303 to ``?tool=<name>&execution=<id>``, whose GET shows that execution;
    a refused run is rendered in the POST's answer, beside the inputs."""
    actor = actor_of(request)
    context: dict[str, Any] = {
        "tools": [], "tool": None, "fields": [], "values": {}, "problem": "",
    }  # fmt: skip
    try:
        context["tools"] = tools_api.tool_list(actor=actor)
    except ApplicationError as error:
        context["problem"] = error.message
        return context
    chosen = request.POST.get("tool") or request.GET.get("tool", "")
    tool = next((t for t in context["tools"] if t.name == chosen), None)
    if tool is None:
        return context
    fields = argument_fields(tool.input_schema)
    context.update(tool=tool, fields=fields, values={f.input_name: f.default for f in fields})
    if request.method != "POST":
        return _execution_shown(request.GET.get("execution"), fields, actor, context)
    context["values"] = {f.input_name: request.POST.get(f.input_name, "") for f in fields}
    arguments, problems = argument_values(fields, request.POST)
    if problems:
        context["run_error"] = {"message": "Check the highlighted fields.", "fields": problems}
        return context
    try:
        execution = tools_api.tool_execute(tool.name, arguments, actor=actor)
    except ApplicationError as error:
        context["run_error"] = {"message": error.message, "fields": _field_messages(error)}
        return context
    query = urlencode({"tool": tool.name, "execution": execution.id})
    return _see_other(f"{reverse('console:tools')}?{query}")


def _execution_shown(
    wanted: str | None, fields: list[ArgumentField], actor: Any, context: dict[str, Any]
) -> dict[str, Any]:
    """The run named by ``?execution=``, with the form filled as it was run, when the
    viewer may see it (``tools.api.execution_get``: their own, or with read_all)."""
    if wanted is None:
        return context
    try:
        execution_id = uuid.UUID(wanted)
    except ValueError:
        context["run_error"] = {"message": "That is not an execution's id.", "fields": {}}
        return context
    execution = tools_api.execution_get(execution_id, actor=actor)
    if execution is None or execution.tool_name != context["tool"].name:
        # Someone else's run reads as no run at all: whether it exists is not told.
        message = f"No execution {execution_id} of {context['tool'].name} that you may see."
        context["run_error"] = {"message": message, "fields": {}}
        return context
    context["execution"] = execution
    context["values"] = argument_inputs(fields, execution.arguments)
    context["output"] = orjson.dumps(
        execution.result
        if execution.status == "succeeded"
        else {"status": execution.status, "error": execution.error},
        option=orjson.OPT_INDENT_2,
    ).decode()
    return context


def _field_messages(error: ApplicationError) -> dict[str, list[str]]:
    return {
        name: [str(m) for m in (messages if isinstance(messages, list) else [messages])]
        for name, messages in (error.fields or {}).items()
    }


@page("memory", methods=("GET", "POST"))
def memory(request: HttpRequest) -> dict[str, Any] | HttpResponse:
    """Search (a GET form, ``?query=``), the pinned blocks (each a form that POSTs) and the
    entity graph, rendered here so that they work without JavaScript; the facts list is
    read by the page's script. A pinned block saved answers 303 to
    ``?saved=<id>#pinned-<id>``, whose GET marks it saved; a refusal is rendered in the
    POST's answer, beside the block's inputs."""
    actor = actor_of(request)
    edited = _pinned_post(request, actor) if request.method == "POST" else None
    if isinstance(edited, HttpResponse):
        return edited
    context: dict[str, Any] = {"problem": "", "search": None, "search_error": None}
    query = request.GET.get("query", "")
    context["query"] = query
    if "query" in request.GET:
        if not query.strip():
            context["search_error"] = {
                "message": "Check the highlighted fields.",
                "fields": {"query": ["Write something to search for."]},
            }
        else:
            try:
                context["search"] = memory_api.memory_search(actor=actor, query=query, k=10)
            except ApplicationError as error:
                context["search_error"] = {
                    "message": error.message,
                    "fields": _field_messages(error),
                }
    try:
        blocks = memory_api.pinned_list(actor=actor)
    except ApplicationError as error:
        blocks, context["problem"] = [], error.message
    # "Saved" belongs to the GET after a save, not to a later form sent from that address.
    saved = _uuid_or_none(request.GET.get("saved", "")) if request.method != "POST" else None
    context["pinned"] = [
        edited
        if edited and edited["block"].id == block.id
        else {
            "block": block,
            "label": block.label,
            "text": block.text,
            "error": None,
            "saved": block.id == saved,
        }
        for block in blocks
    ]
    try:
        graph = memory_api.graph_get(actor=actor, limit=60)
        context["graph"] = {
            "nodes": [
                {"id": str(n.id), "name": n.name, "mentions": n.mentions} for n in graph.nodes
            ],
            "edges": [
                {"source": str(e.source), "target": str(e.target), "kind": e.kind}
                | {"weight": e.weight}
                for e in graph.edges
            ],
        }
    except ApplicationError as error:
        context["graph"], context["graph_error"] = {"nodes": [], "edges": []}, error.message
    return context


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _pinned_post(request: HttpRequest, actor: Any) -> dict[str, Any] | HttpResponse | None:
    """A pinned block's form sent without JavaScript: the redirect once it is saved, or its
    errors to show beside it."""
    block_id = _uuid_or_none(request.POST.get("block", ""))
    if block_id is None:
        return None
    label, text = request.POST.get("label", ""), request.POST.get("text", "")
    try:
        block = memory_api.pinned_update(actor=actor, block_id=block_id, label=label, text=text)
    except ApplicationError as error:
        found = next((b for b in memory_api.pinned_list(actor=actor) if b.id == block_id), None)
        if found is None:
            return None
        error_shown = {"message": error.message, "fields": _field_messages(error)}
        return {"block": found, "label": label, "text": text, "error": error_shown}
    shown = {"saved": block.id}
    if request.GET.get("query", "").strip():  # the search it was sent from, shown again
        shown = {"query": request.GET["query"], **shown}
    return _see_other(f"{reverse('console:memory')}?{urlencode(shown)}#pinned-{block.id}")


@page("documents")
def documents(request: HttpRequest) -> dict[str, Any]:
    return {}


@require_POST
def playground_stream(request: HttpRequest) -> HttpResponse:
    """One streamed answer as JSON lines: ``selected``, ``delta``…, then ``report`` (attempts,
    cost, overhead) or ``error``. Session and CSRF token (the middleware checks the header),
    as every unsafe console request; a refusal before the first line is the JSON error."""
    if not signed_in(request):
        return _error(401, "not_authenticated", "Sign in first.")
    try:
        payload = orjson.loads(request.body or b"null")
    except orjson.JSONDecodeError:
        return _error(400, "invalid", "The body is not JSON.")
    if not isinstance(payload, dict):
        return _error(400, "invalid", "The body must be a JSON object.")
    if "messages" in payload:
        payload = {**payload, "messages": orjson.dumps(payload["messages"]).decode()}
    form = ChatForm(payload)
    if not form.is_valid():
        fields = {
            name: [e["message"] for e in errors]
            for name, errors in form.errors.get_json_data().items()
        }
        return _error(400, "invalid", "Check the highlighted fields.", fields)
    data = form.cleaned_data
    options: dict[str, Any] = {}
    if data.get("max_tokens"):
        options["max_tokens"] = data["max_tokens"]
    events = chat_stream_report(
        data["messages"],
        actor=actor_of(request),
        model=data["model"],
        strategy=Strategy(data["strategy"]) if data.get("strategy") else None,
        request_id=getattr(request, "request_id", None),
        **options,
    )
    try:
        first = async_to_sync(_first)(events)
    except ApplicationError as error:
        return _error(error.status, error.code, error.message, error.fields)
    response = StreamingHttpResponse(_lines(first, events), content_type="application/x-ndjson")
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"
    return with_csp(response)


async def _first(events: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    """The first event, so that a refusal is a status code and not a line in a 200."""
    try:
        return await anext(events)
    except ApplicationError:
        await events.aclose()
        raise


async def _lines(first: dict[str, Any], events: AsyncIterator[dict[str, Any]]):
    try:
        yield orjson.dumps(first) + b"\n"
        async for event in events:
            yield orjson.dumps(event) + b"\n"
    finally:
        await events.aclose()
