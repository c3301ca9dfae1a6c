#!/usr/bin/env python
"""Convert an official Swin Transformer checkpoint (.pth) into a detectron2 backbone pickle.

Use the result with MODEL.WEIGHTS and INPUT.FORMAT RGB.
"""

import argparse
import logging

from mask2former.utils.convert_pretrained import convert_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input", help="Swin checkpoint, e.g. swin_tiny_patch4_window7_224.pth")
    parser.add_argument("output", help="output .pkl")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    count = convert_file("swin", args.input, args.output)
    print(f"wrote {count} tensors to {args.output}")


if __name__ == "__main__":
    main()
