"""rnnlab's version, from the installed package's metadata; a leaf module that imports nothing of rnnlab, so
any layer can record it (the store records it beside every run) without importing the package face."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rnnlab")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
