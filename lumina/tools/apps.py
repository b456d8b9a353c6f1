from django.apps import AppConfig


class ToolsConfig(AppConfig):
    name = "lumina.tools"
    label = "tools"
    verbose_name = "Tools"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The permissions this context checks, for roles, token scopes and policies.
        from lumina.kernel.permissions import declare

        # Event classes must be registered, and handlers subscribed, before any delivery.
        from lumina.tools import events, handlers  # noqa: F401

        declare("tools.read", "See tool definitions and results")
        declare("tools.manage", "Add, change and remove tools and tool sources")
        declare("tools.execute", "Run tools")
        declare("tools.executions.read_all", "See everyone's tool executions and results")

        # The runner of each kind (MCP registers its own from lumina.tools.mcp).
        from lumina.tools import runners
        from lumina.tools.runners.builtin import run_builtin
        from lumina.tools.runners.http import run_http
        from lumina.tools.runners.python import run_python_tool
        from lumina.tools.types import ToolKind

        runners.register(ToolKind.PYTHON, run_python_tool)
        runners.register(ToolKind.HTTP, run_http)
        runners.register(ToolKind.BUILTIN, run_builtin)
        # MCP tools run through the MCP client, which loads the (heavy) SDK on first use.
        from lumina.tools.mcp import register_runner

        register_runner()

        # The web process says at start which sandbox runs python tools and warms its pool.
        from lumina.kernel import lifecycle
        from lumina.tools.sandbox import close_pools, sandbox_start

        lifecycle.on_startup(sandbox_start, where=(lifecycle.WEB,))
        lifecycle.on_shutdown(close_pools)
