"""Security write use-cases, one module per area."""
