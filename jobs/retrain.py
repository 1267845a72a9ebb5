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
    parser.add_argument(
        "--as-of", default=None, help="last night of the window, YYYYMMDD (default: latest in the lake)"
    )
    args = parser.parse_args(argv)
    # Inside a Ray job driver, loading torch after scikit-learn aborts in MKL ("Cannot load
    # libtorch_cpu.so"; seen with torch 2.13 CPU on Ray 2.60): load torch first.
    import torch  # noqa: F401

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import ray

    from cosmic_ray.core.config import Settings, load_retrain_config, load_train_config
    from cosmic_ray.core.errors import CosmicRayError
    from cosmic_ray.ops import retrain

    try:
        rcfg = load_retrain_config(args.config)
        cfg = load_train_config(rcfg.train_config)
        ray.init()  # inside `ray job submit`, this joins the job's cluster
        report = retrain.run(Settings(), rcfg, cfg, as_of=args.as_of)
    except CosmicRayError as exc:
        logging.getLogger("retrain").error("retrain failed: %s", exc)
        return 1
    except Exception as exc:  # a service down (MLflow, the database, Ray): one line with the reason, then the trace
        logging.getLogger("retrain").error("retrain failed: %s: %s", type(exc).__name__, exc, exc_info=True)
        return 1
    print(json.dumps(report.to_dict(), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
