"""Mask2Former: universal image segmentation with detectron2-style configs and a
transformers-style API."""

__version__ = "0.1.0"
