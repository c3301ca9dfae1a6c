#!/usr/bin/env python
"""Convert an official Swin Transformer checkpoint (.pth) into a detectron2 backbone pickle.

Use the result with MODEL.WEIGHTS and INPUT.FORMAT RGB.
"""

from mask2former.checkpoint.convert_pretrained import main

if __name__ == "__main__":
    main("swin", __doc__, "swin_tiny_patch4_window7_224.pth")
