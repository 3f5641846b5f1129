"""hytax: MMseqs2 taxonomy plus a PyTorch BERTax for reads no database knows."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hytax")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
