"""REST endpoints of the security context, one module per area."""
