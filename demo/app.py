#!/usr/bin/env python
"""Mask2Former web demo: ``python demo/app.py [--config-file CFG --opts ... | --hf-model DIR]``.

The same as the ``mask2former-app`` command; the code lives in ``mask2former.app``.
"""

from mask2former.app.cli import main

if __name__ == "__main__":
    main()
