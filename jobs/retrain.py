"""Retrain pipeline as a Ray job.

    ray job submit --working-dir . -- python jobs/retrain.py --config configs/retrain.yaml

Parses arguments, runs the pipeline of the package, prints the report as JSON, and exits
non-zero with the reason when a stage fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/retrain.yaml", help="retrain config (YAML)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import ray

    from cosmic_ray import pipeline
    from cosmic_ray.config import Settings, load_retrain_config, load_train_config
    from cosmic_ray.errors import CosmicRayError

    try:
        rcfg = load_retrain_config(args.config)
        cfg = load_train_config(rcfg.train_config)
        ray.init()  # inside `ray job submit`, this joins the job's cluster
        report = pipeline.train_from_lake(Settings(), cfg, gate=rcfg.gate)
    except CosmicRayError as exc:
        logging.getLogger("retrain").error("retrain failed: %s", exc)
        return 1
    print(json.dumps(report.to_dict(), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
