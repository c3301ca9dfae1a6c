#!/usr/bin/env python
"""Convert a torchvision ImageNet ResNet (.pth) into a detectron2 backbone pickle.

Use the result with MODEL.WEIGHTS, PIXEL_MEAN [123.675, 116.280, 103.530],
PIXEL_STD [58.395, 57.120, 57.375], RESNETS.STRIDE_IN_1X1 False and INPUT.FORMAT RGB.
"""

from mask2former.checkpoint.convert_pretrained import main

if __name__ == "__main__":
    main("torchvision", __doc__, "resnet50-19c8e357.pth")
