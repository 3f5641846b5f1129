#!/usr/bin/env python3
"""Record a model's held-out test result and training time in its config.json, and ship the
held-out genera with it (so the benchmark can test on exactly those genera anywhere).

    tools/record_heldout.py MODEL_DIR FRAGMENTS_DIR EVALUATION_SUMMARY_JSON SECONDS

Used by tools/train_test_model.sh and tools/train_gpu.sh after `hytax evaluate`.
"""

import json
import shutil
import sys
from pathlib import Path

KEYS = ("accuracy", "mean_class_accuracy", "average_precision", "classified")


def main() -> None:
    model_dir, fragments_dir = Path(sys.argv[1]), Path(sys.argv[2])
    summary_path, seconds = Path(sys.argv[3]), int(sys.argv[4])
    shutil.copy(fragments_dir / "heldout_genera.tsv", model_dir / "heldout_genera.tsv")
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text())
    summary = json.loads(summary_path.read_text())
    training = config["training"]
    training["heldout_test_metrics"] = {
        rank: {k: m[k] for k in KEYS} for rank, m in summary["ranks"].items()
    }
    training["total_seconds"] = seconds
    training["heldout_genera_file"] = "heldout_genera.tsv"
    config_path.write_text(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    main()
