"""classifier: crystallinity classification of nanoparticles in HRTEM images (torchvision ResNet)."""

from datagen._version import __version__

__all__ = ["__version__"]
