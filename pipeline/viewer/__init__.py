"""The browser viewer: a read-only local web server over runs (``passage serve``), the API it
answers from, and the colormaps the page draws with."""

from .api import Api, Response
from .server import serve, start

__all__ = ["Api", "Response", "serve", "start"]
