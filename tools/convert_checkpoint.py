"""Convert Mask2Former (Swin) checkpoints between transformers' and detectron2's naming.

Examples::

    # original model-zoo weights -> a transformers directory (add its config.json)
    python tools/convert_checkpoint.py model_final.pkl out_dir --to hf --config config.json
    # a transformers save_pretrained directory -> detectron2 .pth / .pkl
    python tools/convert_checkpoint.py hf_dir model_final.pth --to d2
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys

from mask2former.hf.convert import convert_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="directory, .safetensors, .pth/.bin or .pkl")
    parser.add_argument("target", help="directory, .safetensors, .pth or .pkl to write")
    parser.add_argument("--to", required=True, choices=["hf", "d2"], help="naming to write")
    parser.add_argument(
        "--config", help="with --to hf and a directory target: config.json to copy beside it"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        written = convert_checkpoint(args.source, args.target, args.to)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.config:
        shutil.copy(args.config, os.path.join(os.path.dirname(written), "config.json"))
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
