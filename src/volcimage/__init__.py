"""volcimage: a self-hosted studio for VolcEngine image generation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("volcimage")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
