"""The tools context's routes under /api/v1/, gathered from each area's module.

Fixed routes (``tools/execute``, ``tools/results`` …) come before ``tools/<tool>``.
"""

from lumina.tools.http import executions, mcp_servers, registry, run

urlpatterns: list = []
urlpatterns += registry.urlpatterns
urlpatterns += executions.urlpatterns
urlpatterns += run.urlpatterns
urlpatterns += mcp_servers.urlpatterns
urlpatterns += registry.detail_urlpatterns
