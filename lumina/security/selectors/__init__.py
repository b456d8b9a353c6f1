"""Security read queries, one module per area."""
