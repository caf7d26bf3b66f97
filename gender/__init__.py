"""gender: a face gender classifier (the VGG family) and its tools."""

__version__ = "0.1.0"
