#!/usr/bin/env python
"""Convert a torchvision ImageNet ResNet (.pth) into a detectron2 backbone pickle.

Use the result with MODEL.WEIGHTS, PIXEL_MEAN [123.675, 116.280, 103.530],
PIXEL_STD [58.395, 57.120, 57.375], RESNETS.STRIDE_IN_1X1 False and INPUT.FORMAT RGB.
"""

import argparse
import logging

from mask2former.utils.convert_pretrained import convert_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input", help="torchvision checkpoint, e.g. resnet50-19c8e357.pth")
    parser.add_argument("output", help="output .pkl")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    count = convert_file("torchvision", args.input, args.output)
    print(f"wrote {count} tensors to {args.output}")


if __name__ == "__main__":
    main()
