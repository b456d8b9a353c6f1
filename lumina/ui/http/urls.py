"""The ui context's routes under /api/v1/, gathered from each area's module."""

from lumina.ui.http import documents

urlpatterns: list = []
urlpatterns += documents.urlpatterns
