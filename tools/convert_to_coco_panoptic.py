#!/usr/bin/env python
"""Convert per-image semantic label maps + instance-id maps (or a COCO instances JSON) into
COCO panoptic PNGs + JSON, a COCO instances JSON and semantic PNGs in Mask2Former's class
order, so that one labelled set trains panoptic, instance and semantic segmentation.

Example:
  python tools/convert_to_coco_panoptic.py --semantic-dir labels/train --instance-dir inst/train \\
      --image-dir images/train --output converted/train \\
      --classes background,road,car,person --thing-classes car,person
"""

import argparse
import logging
import os
import sys

# Run from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mask2former.data.datasets.custom_convert import convert_to_coco_panoptic  # noqa: E402


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--semantic-dir", required=True, help="label maps <stem>.png")
    parser.add_argument("--image-dir", required=True, help="images <stem>.<image-ext>")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--instance-dir", help="instance-id maps <stem>.png (0 = none)")
    source.add_argument("--instances-json", help="COCO instances JSON of the thing classes")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--classes", required=True, type=_names, help="comma-separated names, label value order"
    )
    parser.add_argument(
        "--thing-classes", required=True, type=_names, help="comma-separated countable classes"
    )
    parser.add_argument("--ignore-label", type=int, default=255)
    parser.add_argument("--image-ext", default="jpg")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = convert_to_coco_panoptic(
        args.semantic_dir,
        args.image_dir,
        args.output,
        classes=args.classes,
        thing_classes=args.thing_classes,
        instance_dir=args.instance_dir,
        instances_json=args.instances_json,
        ignore_label=args.ignore_label,
        image_ext=args.image_ext,
    )
    stuff_classes = [c["name"] for c in result.categories if c["isthing"]]
    stuff_classes += [c["name"] for c in result.categories if not c["isthing"]]
    print(f"Wrote {result.num_images} images, {result.num_segments} segments:")
    print(f"  panoptic_json:  {result.panoptic_json}\n  panoptic_root:  {result.panoptic_root}")
    print(f"  instances_json: {result.instances_json}\n  sem_seg_root:   {result.sem_seg_root}")
    print(f"Semantic PNG class order (things first): {stuff_classes}")


if __name__ == "__main__":
    main()
