"""Records panopticapi's ``pq_compute`` answers on generated cases into pq_known_answers.json.

The file holds each case's inputs (JSON and base64 PNGs, so that the test does not depend
on numpy's random streams) and panopticapi's result. Needs panopticapi (``pip install
panopticapi-lite``, which installs numpy < 2). Run from the repository root:

    python tests/evaluation/record_pq_known_answers.py
"""

import base64
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

from panopticapi.evaluation import pq_compute

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from pq_cases import write_case  # noqa: E402

OUTPUT = HERE / "pq_known_answers.json"
SEEDS = range(100, 112)


def _pngs(folder: Path) -> dict[str, str]:
    return {
        p.name: base64.b64encode(p.read_bytes()).decode("ascii") for p in sorted(folder.iterdir())
    }


def main() -> None:
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in SEEDS:
            paths = write_case(Path(tmp) / str(seed), seed)
            with contextlib.redirect_stdout(io.StringIO()):
                expected = pq_compute(
                    paths["gt_json"], paths["pred_json"], paths["gt_folder"], paths["pred_folder"]
                )
            cases.append(
                {
                    "seed": seed,
                    "gt_json": json.loads(Path(paths["gt_json"]).read_text()),
                    "pred_json": json.loads(Path(paths["pred_json"]).read_text()),
                    "gt_pngs": _pngs(Path(paths["gt_folder"])),
                    "pred_pngs": _pngs(Path(paths["pred_folder"])),
                    "expected": expected,
                }
            )
    OUTPUT.write_text(json.dumps({"recorded_with": "panopticapi-lite 0.2.0", "cases": cases}))
    print(f"wrote {len(cases)} cases to {OUTPUT}")


if __name__ == "__main__":
    main()
