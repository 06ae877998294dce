"""tinynet: a small neural-network library in vectorised NumPy."""

__version__ = "0.1.0"
