"""How the real sample shipped in ``cosmic_ray/sample_data/`` is made from the shared data (maintainers only).

The sample has the layout of the shared data folder, so whatever reads ``ztf-alerts/`` and
``ztf-bts/`` there reads the sample the same way:

- ``ztf-alerts/``: real public ZTF alert packets (Avro, cutouts included) of the folders whose
  licence is known, copied byte for byte with the licence beside them: Pitt-Google's
  ``alerts-for-testing`` (schema 3.3, BSD-3-Clause) and the first alerts of SN 2021rhu's stream,
  and BOOM's two schema 4.02 packets with forced photometry (MIT). The packets of
  ``ztf-avro-alert/`` carry no licence file and are not shipped.
- ``ztf-bts/``: labelled light curves of the BTS development split (MIT, HSE-LAMBDA): every object
  of the rare coarse classes, a stratified sample of the common ones, and their context rows.

Rebuild: ``python -m cosmic_ray.ops.sample_build ../shared/data cosmic_ray/sample_data``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

import pandas as pd

from cosmic_ray.core.taxonomy import to_coarse

log = logging.getLogger(__name__)

#: Objects kept per common coarse class (every object of the other classes is kept).
COMMON_CAPS = {"SN Ia": 120, "SN II": 60, "SN Ibc": 40}
PITTGOOGLE_LICENCE = "LICENSE_BSD-3_Pitt-Google-Broker.txt"
#: The BSD-3-Clause licence of github.com/mwvgroup/Pitt-Google-Broker (its LICENSE file, verbatim).
PITTGOOGLE_LICENCE_TEXT = """BSD 3-Clause License

Copyright (c) 2025, mwvgroup

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""


def _copy(files: list[Path], folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copyfile(path, folder / path.name)
    return len(files)


def build_alerts(shared: Path, out: Path, testing: int = 24, stream: int = 8) -> int:
    """Copy real packets with their licences; returns how many packets."""
    pitt = shared / "ztf-alerts" / "pittgoogle"
    n = _copy(sorted((pitt / "alerts-for-testing").glob("*.avro"))[:testing], out / "pittgoogle" / "alerts-for-testing")
    n += _copy(
        sorted((pitt / "ZTF21abiuvdk_SN2021rhu_stream").glob("*.avro"), key=lambda p: p.name.split(".")[2])[:stream],
        out / "pittgoogle" / "ZTF21abiuvdk_SN2021rhu_stream",
    )
    (out / "pittgoogle" / PITTGOOGLE_LICENCE).write_text(PITTGOOGLE_LICENCE_TEXT)
    boom = shared / "ztf-alerts" / "boom-v4.02"
    n += _copy(sorted(boom.glob("*.avro")), out / "boom-v4.02")
    shutil.copyfile(boom / "LICENSE_MIT_boom.txt", out / "boom-v4.02" / "LICENSE_MIT_boom.txt")
    return n


def pick_objects(labels: pd.Series, caps: dict[str, int] = COMMON_CAPS, seed: int = 0) -> list[str]:
    """Every object of the rare coarse classes, a random ``caps[class]`` of the common ones (sorted ids).

    Args:
        labels: fine label per object id (the index).
        caps: objects kept per common coarse class.
        seed: the random sample's seed.
    """
    coarse = labels.map(to_coarse)
    kept: list[str] = []
    for name, members in coarse.groupby(coarse):
        ids = members.index.to_series()
        cap = caps.get(str(name))
        kept.extend(ids if cap is None or len(ids) <= cap else ids.sample(n=cap, random_state=seed))
    return sorted(kept)


def build_bts(shared: Path, out: Path) -> int:
    """Write the light curves and context rows of the picked BTS objects; returns how many objects."""
    bts = shared / "ztf-bts"
    curves = pd.read_csv(bts / "bts_dev_lightcurves.csv.gz")
    keep = set(pick_objects(curves.groupby("object_id")["label"].first()))
    out.mkdir(parents=True, exist_ok=True)
    curves[curves["object_id"].isin(keep)].to_csv(
        out / "bts_dev_lightcurves.csv.gz", index=False, compression={"method": "gzip", "mtime": 0}
    )
    context = pd.read_csv(bts / "bts_dev_context.csv")
    context[context["object_id"].isin(keep)].to_csv(out / "bts_dev_context.csv", index=False)
    shutil.copyfile(bts / "LICENSE_MIT_HSE-LAMBDA.txt", out / "LICENSE_MIT_HSE-LAMBDA.txt")
    return len(keep)


def build(shared: Path, out: Path) -> dict[str, int]:
    """The whole sample, from scratch."""
    shutil.rmtree(out / "ztf-alerts", ignore_errors=True)
    shutil.rmtree(out / "ztf-bts", ignore_errors=True)
    return {"packets": build_alerts(shared, out / "ztf-alerts"), "objects": build_bts(shared, out / "ztf-bts")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shared", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("sample: %s", build(args.shared, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
