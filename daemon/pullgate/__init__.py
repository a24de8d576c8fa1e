"""pullgate: Notary Project signature enforcement at image-pull time."""

__version__ = "0.1.0"
