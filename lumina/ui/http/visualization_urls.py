"""Routes of visualizations under /api/v1/."""

from django.urls import path

from lumina.ui.http.visualizations import (
    SourceListApi,
    TemplateListApi,
    TemplateRenderApi,
    VisualizationDetailApi,
    VisualizationListCreateApi,
    VisualizationPreviewApi,
    VisualizationRenderApi,
)

urlpatterns = [
    path("visualizations", VisualizationListCreateApi.as_view(), name="visualization-list"),
    path("visualizations/preview", VisualizationPreviewApi.as_view(), name="visualization-preview"),
    path("visualizations/templates", TemplateListApi.as_view(), name="visualization-templates"),
    path(
        "visualizations/templates/<str:key>/render",
        TemplateRenderApi.as_view(),
        name="visualization-template-render",
    ),
    path("visualizations/sources", SourceListApi.as_view(), name="visualization-sources"),
    path(
        "visualizations/<uuid:visualization_id>",
        VisualizationDetailApi.as_view(),
        name="visualization-detail",
    ),
    path(
        "visualizations/<uuid:visualization_id>/render",
        VisualizationRenderApi.as_view(),
        name="visualization-render",
    ),
]
