"""HTTP API of the service."""

# Route routers carry this prefix in their own ``prefix``, not through include_router, so that
# each route's ``path`` is the full template that metrics use as the ``route`` label.
API_V1_PREFIX = "/api/v1"
