"""REST for visualizations: saved Vega-Lite charts, rendering them with data, templates.

A chart is private to its owner (``visualizations.manage`` sees and changes everyone's);
anyone else's is a 404. Rendering fills the chart's Lumina data sources with the rows the
*viewer* may see, whoever owns the chart.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.kernel.errors import NotFoundError
from lumina.security.api import actor_of, require
from lumina.ui.selectors.visualization_templates import TEMPLATES
from lumina.ui.selectors.visualizations import READ, visualization_get, visualization_list
from lumina.ui.services.visualization_sources import MAX_DAYS, SOURCES
from lumina.ui.services.visualizations import (
    Rendered,
    spec_render,
    visualization_create,
    visualization_delete,
    visualization_update,
)
from lumina.ui.vegalite import schema_version

SPEC_HELP = (
    "A Vega-Lite spec. Its `data` may name a Lumina data source: "
    '`{"name": "lumina:usage", "params": {"days": 30, "group_by": "day"}}` '
    "(see GET /api/v1/visualizations/sources)."
)


# --- Output -----------------------------------------------------------------------------


@extend_schema_serializer(component_name="Visualization")
class VisualizationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    owner_id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    spec = serializers.JSONField(help_text=SPEC_HELP)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


@extend_schema_serializer(component_name="VisualizationRender")
class RenderOutput(serializers.Serializer):
    spec = serializers.JSONField(
        help_text="The spec with each Lumina source replaced by a named dataset in "
        "`datasets`; vega-embed draws it as it is."
    )
    rows = serializers.DictField(child=serializers.IntegerField(), help_text="Rows per dataset.")
    truncated = serializers.ListField(
        child=serializers.CharField(), help_text="Datasets cut at the row limit."
    )
    vega_lite_version = serializers.CharField()


@extend_schema_serializer(component_name="VisualizationTemplate")
class TemplateOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    spec = serializers.JSONField()


@extend_schema_serializer(component_name="VisualizationSource")
class SourceOutput(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    params = serializers.DictField(child=serializers.CharField())


# --- Input ------------------------------------------------------------------------------


class VisualizationUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=4000, required=False, allow_blank=True)
    spec = serializers.DictField(required=False, help_text=SPEC_HELP)


class VisualizationCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=4000, required=False, allow_blank=True)
    spec = serializers.DictField(help_text=SPEC_HELP)


class PreviewInput(serializers.Serializer):
    spec = serializers.DictField(help_text=SPEC_HELP)


class RenderFilters(serializers.Serializer):
    """The viewer's filters: they replace the chart's own window (and user) where its
    sources take them."""

    days = serializers.IntegerField(required=False, min_value=1, max_value=MAX_DAYS)
    since = serializers.DateField(required=False, help_text="First UTC day, YYYY-MM-DD.")
    until = serializers.DateField(required=False, help_text="Last UTC day, YYYY-MM-DD.")
    user = serializers.UUIDField(
        required=False, help_text="Another user's usage (needs providers.usage.read_all)."
    )

    def overrides(self) -> dict:
        data = self.validated_data
        return {name: data[name] if name == "days" else str(data[name]) for name in data}


def _valid(serializer_class, data) -> dict:
    checked = serializer_class(data=data)
    checked.is_valid(raise_exception=True)
    return dict(checked.validated_data)


def _filters(request) -> dict:
    filters = RenderFilters(data=request.query_params)
    filters.is_valid(raise_exception=True)
    return filters.overrides()


def _rendered(rendered: Rendered) -> dict:
    return RenderOutput(
        {
            "spec": rendered.spec,
            "rows": rendered.rows,
            "truncated": list(rendered.truncated),
            "vega_lite_version": schema_version(),
        }
    ).data


# --- Views ------------------------------------------------------------------------------


class VisualizationListCreateApi(GenericAPIView):
    """The caller's charts (everyone's with ``visualizations.manage``); save a new one
    (``visualizations.edit``)."""

    serializer_class = VisualizationOutput
    error_statuses = (404,)  # a page past the last

    @extend_schema(responses=VisualizationOutput(many=True))
    def get(self, request):
        rows = visualization_list(actor=actor_of(request))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(VisualizationOutput(page, many=True).data)

    @extend_schema(request=VisualizationCreateInput, responses={201: VisualizationOutput})
    def post(self, request):
        data = _valid(VisualizationCreateInput, request.data)
        found = visualization_create(actor=actor_of(request), **data)
        return Response(VisualizationOutput(found).data, status=201)


class VisualizationDetailApi(APIView):
    """One chart: read it, change its name, description or spec, delete it."""

    @extend_schema(responses=VisualizationOutput)
    def get(self, request, visualization_id):
        found = visualization_get(actor=actor_of(request), visualization_id=visualization_id)
        return Response(VisualizationOutput(found).data)

    @extend_schema(request=VisualizationUpdateInput, responses=VisualizationOutput)
    def patch(self, request, visualization_id):
        data = _valid(VisualizationUpdateInput, request.data)
        found = visualization_update(
            actor=actor_of(request), visualization_id=visualization_id, **data
        )
        return Response(VisualizationOutput(found).data)

    @extend_schema(responses={204: None})
    def delete(self, request, visualization_id):
        visualization_delete(actor=actor_of(request), visualization_id=visualization_id)
        return Response(status=204)


class VisualizationRenderApi(APIView):
    """The chart's spec with its data: the rows the caller may see."""

    @extend_schema(parameters=[RenderFilters], responses=RenderOutput)
    def get(self, request, visualization_id):
        actor = actor_of(request)
        overrides = _filters(request)
        found = visualization_get(actor=actor, visualization_id=visualization_id)
        return Response(_rendered(spec_render(found.spec, actor=actor, overrides=overrides)))


class VisualizationPreviewApi(APIView):
    """Render a spec that is not saved (``visualizations.read``): the editor's preview."""

    @extend_schema(request=PreviewInput, parameters=[RenderFilters], responses=RenderOutput)
    def post(self, request):
        actor = actor_of(request)
        overrides = _filters(request)
        require(actor, READ)
        spec = _valid(PreviewInput, request.data)["spec"]
        return Response(_rendered(spec_render(spec, actor=actor, overrides=overrides)))


class TemplateListApi(APIView):
    """The built-in dashboard charts, to render as they are or copy into a saved chart."""

    @extend_schema(responses=TemplateOutput(many=True))
    def get(self, request):
        require(actor_of(request), READ)
        return Response(TemplateOutput(TEMPLATES.values(), many=True).data)


class TemplateRenderApi(APIView):
    """A built-in chart with the caller's data."""

    @extend_schema(parameters=[RenderFilters], responses=RenderOutput)
    def get(self, request, key):
        actor = actor_of(request)
        overrides = _filters(request)
        require(actor, READ)
        template = TEMPLATES.get(key)
        if template is None:
            raise NotFoundError(f"No template {key!r}.", fields={"key": ["No such template."]})
        rendered = spec_render(template.spec_copy(), actor=actor, overrides=overrides)
        return Response(_rendered(rendered))


class SourceListApi(APIView):
    """The Lumina data sources a chart's ``data`` may name, with their parameters."""

    @extend_schema(responses=SourceOutput(many=True))
    def get(self, request):
        require(actor_of(request), READ)
        return Response(SourceOutput(SOURCES.values(), many=True).data)
