"""The browser viewer: a read-only local web server over runs (``passage serve``), the API it
answers from, and the colormaps the page draws with; the same app as a static folder
(``passage report``) and a run as TensorBoard event files (``passage export tensorboard``).
Never imports TensorFlow."""

from .api import Api, Response
from .server import serve, start

__all__ = ["Api", "Response", "serve", "start"]
