"""FastAPI service of the fastapi-stack project: items, cached computations and sessions in Redis.

This module imports nothing, because the container health check imports the package.
"""

__version__ = "0.1.0"
