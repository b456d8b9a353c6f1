"""The tools context's routes under /api/v1/, gathered from each area's module."""

urlpatterns: list = []
