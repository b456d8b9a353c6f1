"""``/api/v1/visualizations``: CRUD, spec and binding checks, who may see and change what."""

from __future__ import annotations

import uuid

import pytest

from lumina.ui.models import Visualization
from tests.ui.visualization_support import BASE, People, bar_spec, client_as, error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def people() -> People:
    return People()


def _create(user, name: str = "Spend", spec: dict | None = None):
    return client_as(user).post(BASE, {"name": name, "spec": spec or bar_spec()}, format="json")


# -- CRUD ---------------------------------------------------------------------------------


def test_a_developer_saves_reads_lists_changes_and_deletes_a_chart(people):
    dev = people.developer
    client = client_as(dev)
    created = _create(dev, "Spend by day")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["owner_id"] == str(dev.pk)
    assert body["spec"]["data"] == {
        "name": "lumina:usage",
        "params": {"group_by": "day", "days": 30},
    }

    listed = client.get(BASE).json()
    assert [row["id"] for row in listed["results"]] == [body["id"]]
    assert client.get(f"{BASE}/{body['id']}").json()["name"] == "Spend by day"

    line = bar_spec()
    line["mark"] = "line"
    changed = client.patch(f"{BASE}/{body['id']}", {"name": "Spend", "spec": line}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["name"] == "Spend"
    assert Visualization.objects.get(id=body["id"]).spec["mark"] == "line"

    assert client.delete(f"{BASE}/{body['id']}").status_code == 204
    assert not Visualization.objects.filter(id=body["id"]).exists()
    error_of(client.get(f"{BASE}/{body['id']}"), 404)


def test_templates_and_sources_are_listed_and_every_template_is_valid(people):
    from lumina.ui.services.visualizations import spec_prepare

    client = client_as(people.viewer)
    templates = client.get(f"{BASE}/templates").json()
    keys = {t["key"] for t in templates}
    assert {"cost_by_day", "tokens_by_model", "latency_percentiles", "errors_by_day"} <= keys
    for template in templates:
        spec_prepare(template["spec"])  # raises if the schema or a binding refuses it
    sources = {s["name"] for s in client.get(f"{BASE}/sources").json()}
    assert {
        "lumina:usage",
        "lumina:latency",
        "lumina:errors",
        "lumina:circuits",
        "lumina:tool_executions",
        "lumina:memory_topics",
        "lumina:memory_graph",
    } <= sources


# -- bad specs and bindings: 400 naming the path -------------------------------------------


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"mark": "barr"}, "spec.mark"),
        ({"encoding": {"x": {"field": "day", "type": "quantitive"}}}, "spec.encoding.x.type"),
        ({"encoding": {"x": {"field": 7}}}, "spec.encoding.x.field"),
        ({"transform": [{"fold": "cost"}]}, "spec.transform[0].fold"),
        ({"width": "wide"}, "spec.width"),
        ({"colour": "red"}, "spec"),
    ],
)
def test_a_spec_that_is_not_vega_lite_is_a_400_naming_the_json_path(people, change, path):
    spec = bar_spec() | change
    error = error_of(_create(people.developer, spec=spec), 400)
    assert error["code"] == "invalid_spec"
    assert list(error["fields"]) == [path], error
    assert path in error["message"]
    assert not Visualization.objects.exists()


def test_a_layer_inside_a_spec_is_checked_with_its_index(people):
    spec = {
        "data": {"name": "lumina:usage"},
        "layer": [
            {"mark": "bar", "encoding": {"y": {"field": "cost", "type": "quantitative"}}},
            {"mark": {"type": "lin"}},
        ],
    }
    error = error_of(_create(people.developer, spec=spec), 400)
    assert list(error["fields"]) == ["spec.layer[1].mark.type"], error
    assert "line" in error["fields"]["spec.layer[1].mark.type"][0]  # the choices are listed


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "lumina:nothing"}, "spec.data.name"),
        ({"name": "lumina:usage", "params": {"group_by": "planet"}}, "spec.data.params.group_by"),
        ({"name": "lumina:usage", "params": {"metric": "joy"}}, "spec.data.params.metric"),
        ({"name": "lumina:usage", "params": {"days": 0}}, "spec.data.params.days"),
        ({"name": "lumina:usage", "params": {"days": "30"}}, "spec.data.params.days"),
        ({"name": "lumina:usage", "params": {"since": "yesterday"}}, "spec.data.params.since"),
        (
            {"name": "lumina:usage", "params": {"since": "2026-05-02", "until": "2026-05-01"}},
            "spec.data.params.until",
        ),
        ({"name": "lumina:usage", "params": {"user": "ada"}}, "spec.data.params.user"),
        ({"name": "lumina:usage", "params": {"colour": 1}}, "spec.data.params.colour"),
        ({"name": "lumina:usage", "params": []}, "spec.data.params"),
        ({"name": "lumina:usage", "format": {"type": "csv"}}, "spec.data.format"),
        ({"name": "lumina:memory_graph", "params": {"part": "both"}}, "spec.data.params.part"),
        (
            {"name": "lumina:memory_topics", "params": {"scope": "collection"}},
            "spec.data.params.key",
        ),
        ({"url": "https://example.com/data.json"}, "spec.data.url"),
    ],
)
def test_unknown_sources_and_bad_parameters_are_a_400_naming_the_field(people, data, field):
    spec = bar_spec()
    spec["data"] = data
    error = error_of(_create(people.developer, spec=spec), 400)
    assert list(error["fields"]) == [field], error
    assert not Visualization.objects.exists()


def test_a_url_deep_inside_a_spec_is_refused_too(people):
    spec = bar_spec()
    spec["transform"] = [
        {"lookup": "model", "from": {"data": {"url": "http://127.0.0.1:1/x.json"}, "key": "m"}}
    ]
    error = error_of(_create(people.developer, spec=spec), 400)
    assert list(error["fields"]) == ["spec.transform[0].from.data.url"]


def test_bodies_of_the_wrong_shape_are_refused_naming_the_field(people):
    client = client_as(people.developer)
    assert "spec" in error_of(client.post(BASE, {"name": "x"}, format="json"), 400)["fields"]
    no_object = client.post(BASE, {"name": "x", "spec": [1]}, format="json")
    assert "spec" in error_of(no_object, 400)["fields"]
    no_name = client.post(BASE, {"name": "", "spec": bar_spec()}, format="json")
    assert "name" in error_of(no_name, 400)["fields"]
    preview = client.post(f"{BASE}/preview", {"spec": "bar"}, format="json")
    assert "spec" in error_of(preview, 400)["fields"]
    bad_filter = client.get(f"{BASE}/templates/cost_by_day/render?days=0")
    assert "days" in error_of(bad_filter, 400)["fields"]
    missing = client.get(f"{BASE}/templates/nothing/render")
    error_of(missing, 404)


# -- who may do what ----------------------------------------------------------------------


def test_another_users_chart_is_a_404_for_every_verb(people):
    mine = _create(people.developer).json()["id"]
    for other in (people.other_developer, people.viewer, people.staff):
        client = client_as(other)
        error_of(client.get(f"{BASE}/{mine}"), 404 if other is not people.staff else 403)
        for response in (
            client.patch(f"{BASE}/{mine}", {"name": "taken"}, format="json"),
            client.delete(f"{BASE}/{mine}"),
            client.get(f"{BASE}/{mine}/render"),
        ):
            assert response.status_code in (403, 404), response.content
        assert mine not in {row["id"] for row in client.get(BASE).json().get("results", [])}
    # A Developer is answered alike for another's chart and one that does not exist.
    other = client_as(people.other_developer)
    missing = other.get(f"{BASE}/{uuid.uuid4()}").json()["error"]
    theirs = other.get(f"{BASE}/{mine}").json()["error"]
    assert (missing["code"], missing["fields"]) == (theirs["code"], theirs["fields"])
    assert Visualization.objects.get(id=mine).name == "Spend"


def test_roles_without_the_permissions_are_refused(people):
    spec = bar_spec()
    for user in (people.nobody, people.staff, people.viewer):
        error_of(_create(user, spec=spec), 403)  # saving needs visualizations.edit
    for user in (people.nobody, people.staff):
        client = client_as(user)
        error_of(client.get(BASE), 403)
        error_of(client.get(f"{BASE}/templates"), 403)
        error_of(client.get(f"{BASE}/templates/cost_by_day/render"), 403)
        error_of(client.post(f"{BASE}/preview", {"spec": spec}, format="json"), 403)
    assert not Visualization.objects.exists()
    # A Viewer reads and renders the built-in charts.
    assert client_as(people.viewer).get(f"{BASE}/templates/cost_by_day/render").status_code == 200


def test_an_admin_manages_everyones_charts(people):
    mine = _create(people.developer).json()["id"]
    admin = client_as(people.admin)
    assert mine in {row["id"] for row in admin.get(BASE).json()["results"]}
    renamed = admin.patch(f"{BASE}/{mine}", {"name": "Checked"}, format="json")
    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["owner_id"] == str(people.developer.pk)  # the owner stays
    assert admin.delete(f"{BASE}/{mine}").status_code == 204


def test_anonymous_callers_are_refused():
    from rest_framework.test import APIClient

    error_of(APIClient().get(BASE), 401)
    error_of(APIClient().post(BASE, {"name": "x", "spec": bar_spec()}, format="json"), 401)


def test_the_python_api_renders_for_the_console_as_the_viewer(people):
    from lumina.kernel.errors import NotFoundError
    from lumina.security.api import Actor
    from lumina.ui import api as ui_api

    mine = _create(people.developer).json()["id"]
    developer = Actor.for_user(people.developer)
    assert [chart.name for chart in ui_api.visualization_list(actor=developer)] == ["Spend"]
    rendered = ui_api.visualization_render(
        actor=developer, visualization_id=uuid.UUID(mine), filters={"days": 7}
    )
    assert rendered.spec["datasets"]["lumina:usage"] == []
    assert {t.key for t in ui_api.templates_list(actor=developer)} >= {"cost_by_day"}
    with pytest.raises(NotFoundError):
        ui_api.template_render(actor=developer, key="nothing")
    with pytest.raises(NotFoundError):
        ui_api.visualization_get(
            actor=Actor.for_user(people.other_developer), visualization_id=uuid.UUID(mine)
        )


def test_a_spec_nested_too_deeply_is_a_400_not_a_crash(people):
    inner: object = "x"
    for _ in range(300):
        inner = {"a": [inner]}
    spec = bar_spec() | {"usermeta": inner}
    error = error_of(_create(people.developer, spec=spec), 400)
    assert list(error["fields"]) == ["spec"]
    # Nesting of a real spec's kind is fine.
    shallow = bar_spec() | {"usermeta": {"a": {"b": {"c": [1, [2, [3]]]}}}}
    assert _create(people.developer, spec=shallow).status_code == 201
