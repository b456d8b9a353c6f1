"""Supporting services of the monolith: health, request context, API conventions, metrics."""
