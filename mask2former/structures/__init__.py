"""detectron2-style data structures: Instances, Boxes, BitMasks, ImageList."""

from mask2former.structures.boxes import Boxes
from mask2former.structures.image_list import ImageList
from mask2former.structures.instances import Instances
from mask2former.structures.masks import BitMasks, masks_to_boxes

__all__ = ["BitMasks", "Boxes", "ImageList", "Instances", "masks_to_boxes"]
