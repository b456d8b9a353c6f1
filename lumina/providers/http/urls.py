"""The providers context's routes under /api/v1/, gathered from each area's module."""

from lumina.providers.http import completion, costs, registry, selection

urlpatterns: list = []
urlpatterns += registry.urlpatterns
urlpatterns += selection.urlpatterns
urlpatterns += completion.urlpatterns
urlpatterns += costs.urlpatterns
