#!/usr/bin/env python
"""Train or evaluate Mask2Former from a YAML config (detectron2's command line).

Examples:
  python tools/train_net.py --config-file configs/demo/mask2former_demo.yaml
  python tools/train_net.py --config-file CFG --num-gpus 8 SOLVER.IMS_PER_BATCH 16
  python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS model_final.pth
  torchrun --nproc-per-node 8 tools/train_net.py --config-file CFG
"""

import os
import sys

# Run from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mask2former.engine.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
