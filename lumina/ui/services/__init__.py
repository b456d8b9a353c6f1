"""Write use-cases of the ui context, one module per area."""
