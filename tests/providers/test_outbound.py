"""Item: server-side request forgery through provider URLs.

Provider URLs are checked when saved (REST, admin console, CLI) and every connection is
checked after DNS resolution; nothing a provider's server answers (error body, address)
reaches callers. The tests run with an empty allow-list unless they say otherwise; the
servers they aim at listen on loopback and record what they get.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

from lumina.kernel.errors import ApplicationError
from lumina.providers import api
from lumina.providers.models.registry import Deployment, Provider
from lumina.providers.selectors.registry import catalogue_clear_local, endpoint_cache_clear
from lumina.providers.types import Capability, ProviderKind
from tests.kernel.outbound_support import CHAT_COMPLETION, RecordingServer
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.providers.registry_support import SECRET, user_with_role
from tests.security.rbac_support import actor_for, assert_error

PROVIDERS = "/api/v1/providers"
REFUSED_URLS = [
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://[fd00:ec2::254]/latest",
    "http://metadata.google.internal/computeMetadata/v1",
    "http://127.0.0.1:6379/v1",
    "http://2130706433:8000/v1",
    "http://0x7f.1/v1",
    "http://[::ffff:127.0.0.1]:8000/v1",
    "http://localhost:11434",
    "http://0.0.0.0:8000/v1",
    "http://10.0.0.8:8000/v1",
    "http://192.168.0.10/v1",
    "http://[fe80::1%25eth0]/v1",
]


@pytest.fixture
def no_allow_list(settings):
    settings.LUMINA_OUTBOUND_ALLOW = ()


def _admin() -> APIClient:
    client = APIClient()
    client.force_authenticate(user_with_role("Admin"))
    return client


def _call(model: str) -> dict:
    catalogue_clear_local()
    endpoint_cache_clear()
    return api.complete(
        [{"role": "user", "content": "hi"}],
        actor=actor_for(user_with_role("Developer")),
        model=model,
    )


# --- Save time --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", REFUSED_URLS)
def test_rest_refuses_a_base_url_that_leads_inside(url, no_allow_list):
    client = _admin()

    created = client.post(
        PROVIDERS, {"name": "p", "kind": "openai", "base_url": url, "api_key": SECRET}, "json"
    )
    existing = ProviderFactory(base_url="https://api.openai.com/v1")
    changed = client.patch(f"{PROVIDERS}/{existing.pk}", {"base_url": url}, format="json")

    assert_error(created, 400, field="base_url")
    assert_error(changed, 400, field="base_url")
    assert not Provider.objects.filter(name="p").exists()
    assert Provider.objects.get(pk=existing.pk).base_url == "https://api.openai.com/v1"


@pytest.mark.django_db
def test_a_provider_saved_before_the_policy_tightened_can_still_be_switched_off(settings):
    existing = ProviderFactory(base_url="http://10.0.0.8:8000/v1")
    settings.LUMINA_OUTBOUND_ALLOW = ()

    response = _admin().patch(f"{PROVIDERS}/{existing.pk}", {"enabled": False}, format="json")

    assert response.status_code == 200, response.content
    assert Provider.objects.get(pk=existing.pk).enabled is False


@pytest.mark.django_db
def test_the_operators_allow_list_opens_a_local_server(settings):
    settings.LUMINA_OUTBOUND_ALLOW = ("127.0.0.1/32", "10.0.0.0/8")
    client = _admin()

    for name, url in [("ollama", "http://127.0.0.1:11434"), ("vllm", "http://10.0.0.8:8000/v1")]:
        response = client.post(
            PROVIDERS, {"name": name, "kind": "openai_compatible", "base_url": url}, "json"
        )
        assert response.status_code == 201, response.content
    # Listing 169.254.0.0/16 would still not open the metadata address; neither does this.
    response = client.post(
        PROVIDERS,
        {"name": "meta", "kind": "openai", "base_url": "http://169.254.169.254/v1"},
        format="json",
    )
    assert_error(response, 400, field="base_url")


@pytest.mark.django_db
def test_the_admin_console_refuses_the_url_on_its_field(admin_user, no_allow_list):
    console = Client()
    console.force_login(admin_user)
    form = {
        "name": "meta",
        "kind": "openai",
        "base_url": "http://169.254.169.254/latest",
        "new_api_key": SECRET,
        "enabled": "on",
        "priority": "0",
        "weight": "1",
        "max_concurrency": "64",
        "connect_timeout": "5",
        "read_timeout": "60",
        "api_version": "",
        "tags": "",
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0",
        "deployments-MIN_NUM_FORMS": "0",
        "deployments-MAX_NUM_FORMS": "0",
    }

    response = console.post("/admin/providers/provider/add/", form)

    assert response.status_code == 200
    assert "base_url" in response.context["adminform"].form.errors
    assert "LUMINA_OUTBOUND_ALLOW" in response.content.decode()
    assert not Provider.objects.filter(name="meta").exists()


@pytest.mark.django_db
def test_the_cli_refuses_the_url_naming_the_field(no_allow_list):
    with pytest.raises(CommandError, match="base_url"):
        call_command(
            "providers", "add", "meta", "--kind", "openai",
            "--base-url", "http://169.254.169.254/latest", stdout=StringIO(),
        )  # fmt: skip
    assert not Provider.objects.filter(name="meta").exists()


@pytest.mark.django_db
def test_the_services_refuse_it_for_every_caller(no_allow_list):
    from lumina.providers.services.registry import provider_create
    from lumina.security.api import Actor

    with pytest.raises(ApplicationError) as caught:
        provider_create(
            actor=Actor.system("tests"), name="p", kind="ollama", base_url="http://127.0.0.1:11434"
        )
    assert list(caught.value.fields) == ["base_url"]


# --- Connect time -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_provider_saved_before_the_policy_tightened_is_refused_at_connect_time(settings):
    """Also the case of a name that resolves (or rebinds) to an inside address: the
    address connected to is checked, whatever the saved URL said."""
    with RecordingServer(body=CHAT_COMPLETION) as inside:
        provider = ProviderFactory(
            name="inside", kind=ProviderKind.OPENAI.value, base_url=f"{inside.url}/v1",
            api_key=SECRET,
        )  # fmt: skip
        DeploymentFactory(provider=provider, name="chat")
        settings.LUMINA_OUTBOUND_ALLOW = ()

        with pytest.raises(ApplicationError) as caught:
            _call("inside/chat")

        assert inside.received == []
        settings.LUMINA_OUTBOUND_ALLOW = ("127.0.0.1/32",)
        _call("inside/chat")  # the same call, allowed, does reach it
        assert len(inside.received) == 1
    assert caught.value.code == "outbound_refused"
    assert "127.0.0.1" not in caught.value.message
    assert str(inside.port) not in caught.value.message


@pytest.mark.django_db(transaction=True)
def test_a_redirect_is_not_followed_so_the_key_stays_home():
    with RecordingServer() as elsewhere, RecordingServer(status=307) as redirecting:
        redirecting.headers = {"Location": f"{elsewhere.url}/v1/chat/completions"}
        provider = ProviderFactory(
            name="redirecting", kind=ProviderKind.ANTHROPIC.value,
            base_url=redirecting.url, api_key=SECRET,
        )  # fmt: skip
        DeploymentFactory(provider=provider, name="chat")

        with pytest.raises(ApplicationError) as caught:
            _call("redirecting/chat")

        assert redirecting.authorizations() == [SECRET]  # x-api-key: sent where configured
        assert elsewhere.received == []
    assert caught.value.code == "upstream_redirect"
    assert elsewhere.url not in caught.value.message


INTERNAL = b"AccessKeyId ASIAINTERNAL Token=IQoJb3JpZ2luX2VjE at 10.20.30.40:8500"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "body",
    [
        INTERNAL,
        b'{"error": {"message": "' + INTERNAL + b'", "type": "x", "code": "<b>"}}',
        b'{"error": "' + INTERNAL + b'"}',
        b'{"detail": "' + INTERNAL + b'"}',
    ],
)
def test_callers_see_a_code_and_lumina_s_words_never_the_upstream_body(body, caplog):
    with RecordingServer(status=500, body=body) as upstream:
        provider = ProviderFactory(
            name="leaky", kind=ProviderKind.OPENAI_COMPATIBLE.value, base_url=f"{upstream.url}/v1"
        )
        DeploymentFactory(provider=provider, name="chat")

        with pytest.raises(ApplicationError) as caught:
            _call("leaky/chat")

        assert upstream.received  # the body was there to leak
    error = caught.value
    shown = f"{error.message} {error.fields} {error.code}"
    for secret in ("ASIAINTERNAL", "IQoJb3JpZ2luX2VjE", "10.20.30.40", str(upstream.port)):
        assert secret not in shown
    assert error.code == "upstream_server_error"
    assert "ASIAINTERNAL" in caplog.text  # operators keep the detail


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_provider_error_names_no_address():
    with RecordingServer() as gone:
        port = gone.port
    provider = ProviderFactory(
        name="gone", kind=ProviderKind.OPENAI.value, base_url=f"http://127.0.0.1:{port}/v1"
    )
    DeploymentFactory(provider=provider, name="chat")

    with pytest.raises(ApplicationError) as caught:
        _call("gone/chat")

    assert caught.value.code == "upstream_unreachable"
    assert str(port) not in caught.value.message
    assert "127.0.0.1" not in caught.value.message


@pytest.mark.django_db
def test_the_probe_works_with_the_allow_list_and_reports_a_refusal_without_it(
    openai_upstream, settings
):
    deployment = DeploymentFactory(
        provider=ProviderFactory(name="local-llm", base_url=openai_upstream.url),
        capabilities=[Capability.CHAT],
    )
    out = StringIO()
    call_command("providers", "probe", "local-llm", stdout=out)
    assert "Every check passed." in out.getvalue()
    served = len(openai_upstream.requests)

    settings.LUMINA_OUTBOUND_ALLOW = ()
    out = StringIO()
    call_command("providers", "probe", "local-llm", stdout=out)

    assert "outbound_refused" in out.getvalue()
    assert len(openai_upstream.requests) == served
    verified = Deployment.objects.get(pk=deployment.pk).verified_capabilities
    assert verified["chat"]["ok"] is False
