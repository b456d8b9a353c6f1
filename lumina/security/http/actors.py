"""Who is calling; kept in ``security.api`` so other contexts' views share it."""

from lumina.security.api.actors import actor_of, client_ip

__all__ = ["actor_of", "client_ip"]
