"""The tools context's routes under /api/v1/, gathered from each area's module.

Fixed routes (``tools/execute``, ``tools/results`` …) come before ``tools/<tool>``.
"""

from lumina.tools.http import registry

urlpatterns: list = []
urlpatterns += registry.urlpatterns
urlpatterns += registry.detail_urlpatterns
