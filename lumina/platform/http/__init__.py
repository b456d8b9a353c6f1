"""REST conventions shared by every context: the error shape, pagination, operator endpoints."""
