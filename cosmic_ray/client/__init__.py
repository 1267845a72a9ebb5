"""The Python client of the cosmic_ray API (httpx; pandas and astropy only for tables).

Example::

    from cosmic_ray.client import Client

    api = Client("http://127.0.0.1:8000", token=my_token)
    api.candidates("SLSN-I", limit=10)
"""

from cosmic_ray.client.api import Client
from cosmic_ray.client.errors import ApiError, AuthError, BusyError, ClientError, NotFoundError, ValidationError

__all__ = ["ApiError", "AuthError", "BusyError", "Client", "ClientError", "NotFoundError", "ValidationError"]
