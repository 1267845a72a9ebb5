"""A wheel user's first run: ``pip install`` the built wheel, ``cosmic-ray demo``, log in in a browser.

The wheel is built (offline, no build isolation) from a copy of this checkout whose login page
carries a one-off marker, and installed with ``--no-deps`` into a fresh virtualenv that borrows
its dependencies (ray, torch, ...) from the running interpreter's site-packages through a
``.pth`` file (plain path lines: the editable install of the checkout is not activated there).
That venv's Python starts a Ray cluster of its own (own temp dir, ports, HOME and cosmic_ray home;
token auth off inside it), and its ``cosmic-ray`` runs from an empty folder: no ``configs/``,
no ``web/``, no checkout on any path. Then:

- the Serve ingress replica reports that it runs the venv's Python and the installed package;
- ``/login`` is the installed copy (the marker) and draws its 3D scene in Chromium, every
  ``/static`` and ``/vendor`` file it loads answers 200;
- a user made with the installed ``cosmic-ray users add`` logs in and reaches the dashboard.

Everything it started (the cluster's process group, the browser) is stopped at the end.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
import venv
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from cosmic_ray.serve.assets import NODE_MODULES

try:
    from web_server import free_port
except ImportError:  # tests/ made a package
    from tests.web_server import free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
USER = ("wheel-ada", "wheel user password 1")
# A small but real training run: the point is the install, not the model's quality.
TINY_TRAIN = """\
seed: 0
epochs: 1
lr: 0.003
data: {max_objects_per_class: 20}
episodes: {n_way: 4, k_shot: 3, n_query: 3, per_epoch: 4, held_out_per_epoch: 0}
scaling: {num_workers: 1}
"""
RAY_CURRENT = Path("/tmp/ray/ray_current_cluster")
log = logging.getLogger(__name__)

pytestmark = pytest.mark.slow


def _copy_source(dest: Path, marker: str) -> Path:
    """This checkout without build outputs; node_modules linked; the marker in login.html."""
    skip = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", NODE_MODULES)
    shutil.copytree(REPO, dest, ignore=skip, symlinks=True)
    modules = REPO / "web" / NODE_MODULES
    if not (modules / "three").is_dir():
        pytest.fail(f"{modules} is missing: run `npm ci` in {REPO / 'web'}")
    (dest / "web" / NODE_MODULES).symlink_to(modules)
    login = dest / "web" / "login.html"
    login.write_text(login.read_text().replace("</body>", f"<!-- {marker} -->\n</body>"))
    return dest


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    # the installed wheel, not a checkout named by the caller's PYTHONPATH, is what is tested
    kw.setdefault("env", {k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def _fresh_venv(root: Path, wheel: Path) -> Path:
    """A venv with the wheel installed and the running interpreter's site-packages after its own."""
    venv.create(root, with_pip=False, symlinks=True)
    python = root / "bin" / "python"
    purelib = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], 60).stdout.strip()
    )
    borrowed = [p for p in site.getsitepackages() if p.startswith(sys.prefix) and Path(p).is_dir()]
    assert borrowed, f"no site-packages under {sys.prefix}"
    (purelib / "zz_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        180,
    )
    return python


def _processes_of(session: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry.name)) == session:
                    pids.append(int(entry.name))
    return pids


def _processes_naming(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def _own_ray_cluster(python: Path, temp_dir: Path, env: dict[str, str]) -> Iterator[str]:
    """``ray start --head --block`` with the venv's Python in a session of its own; stopped by signal.

    Never ``ray stop``: it would stop every Ray on the machine.
    """
    port = free_port()
    cmd = [
        str(python),
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        "--block",
        f"--temp-dir={temp_dir}",
        f"--port={port}",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        "--include-dashboard=false",
        "--num-cpus=4",
        "--disable-usage-stats",
    ]
    previous = RAY_CURRENT.read_text() if RAY_CURRENT.exists() else None
    out = (temp_dir.parent / "ray-start.log").open("w")
    head = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not (temp_dir / "ray_current_cluster").exists():
            assert head.poll() is None, (temp_dir.parent / "ray-start.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the wheel's Ray head did not start within 90 s"
            time.sleep(0.5)
        yield address
    finally:
        # A throwaway cluster: SIGTERM to its session, a short grace, then SIGKILL to what is left of
        # it (its session, or a process naming its temp dir), until none is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=5)
        deadline = time.monotonic() + 20
        while left := set(_processes_of(head.pid)) | set(_processes_naming(str(temp_dir))):
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            head.poll()  # reap our own child
            if time.monotonic() > deadline:
                warnings.warn(f"processes of the test's Ray cluster still alive: {sorted(left)}", stacklevel=1)
                break
            time.sleep(0.2)
        out.close()
        if previous is not None:
            RAY_CURRENT.write_text(previous)


WHERE = textwrap.dedent(
    """
    import json, sys, ray

    ray.init(address=sys.argv[1], log_to_driver=False)
    names = [a for a in ray.util.list_named_actors(all_namespaces=True) if "Ingress" in a["name"]]
    assert names, ray.util.list_named_actors(all_namespaces=True)
    actor = ray.get_actor(names[0]["name"], namespace=names[0]["namespace"])

    def where(self):
        import sys
        import cosmic_ray
        from cosmic_ray.serve import web

        return {"python": sys.executable, "package": cosmic_ray.__file__, "web_dir": str(web.default_web_dir())}

    print(json.dumps(ray.get(actor.__ray_call__.remote(where), timeout=60)))
    """
)


SAMPLE_ROOT = "from pathlib import Path; from cosmic_ray.core.sample import data_root; print(data_root(Path('/nonexistent')).path)"


def _assert_ships_the_sample(names: list[str]) -> None:
    """The real sample (packets, light curves, context, and every licence) is inside the wheel."""
    shipped = {n.removeprefix("cosmic_ray/sample_data/") for n in names if n.startswith("cosmic_ray/sample_data/")}
    assert sum(n.endswith(".avro") for n in shipped) >= 30, sorted(shipped)
    for name in (
        "README.md",
        "ztf-bts/bts_dev_lightcurves.csv.gz",
        "ztf-bts/bts_dev_context.csv",
        "ztf-bts/LICENSE_MIT_HSE-LAMBDA.txt",
        "ztf-alerts/boom-v4.02/LICENSE_MIT_boom.txt",
        "ztf-alerts/pittgoogle/LICENSE_BSD-3_Pitt-Google-Broker.txt",
    ):
        assert name in shipped, (name, sorted(shipped))


def _not_blank(png: bytes) -> float:
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)
    return float(pixels.std())


def test_installed_wheel_serves_a_working_web_app(shared_data):
    chromium = os.environ.get("COSMIC_RAY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(chromium).is_file(), f"Chromium not found at {chromium}: apt-get install -y chromium"
    marker = f"wheel-install-{uuid.uuid4().hex}"
    # short root: Ray's unix sockets live under the temp dir (107-byte path limit)
    root = Path(tempfile.mkdtemp(prefix="crw-", dir="/tmp"))
    try:
        src = _copy_source(root / "src", marker)
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                str(src),
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(root / "dist"),
            ],
            300,
            cwd=root,
        )
        (wheel,) = (root / "dist").glob("cosmic_ray-*.whl")
        log.info("built %s (%.0f kB)", wheel.name, wheel.stat().st_size / 1e3)
        _assert_ships_the_sample(zipfile.ZipFile(wheel).namelist())
        python = _fresh_venv(root / "venv", wheel)
        log.info("installed into %s", root / "venv")
        # without shared data, the installed package finds its own copy of the sample
        found = _run([str(python), "-c", SAMPLE_ROOT], 60, cwd=root).stdout.strip().splitlines()[-1]
        assert Path(found).resolve().is_relative_to((root / "venv").resolve()), found
        cli = root / "venv" / "bin" / "cosmic-ray"
        assert cli.is_file()

        work = root / "work"  # the user's folder: no configs/, no web/
        (work / "home").mkdir(parents=True)
        (work / "tiny.yaml").write_text(TINY_TRAIN)
        app_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COSMIC_RAY_", "RAY_", "MLFLOW_", "PYTHON"))}
        env.pop("VIRTUAL_ENV", None)
        env.update(
            PATH=f"{root / 'venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            HOME=str(work / "home"),
            COSMIC_RAY_HOME=str(work / "home" / ".cosmic_ray"),
            COSMIC_RAY_SHARED_DATA=str(shared_data),
            COSMIC_RAY_APP_PORT=str(app_port),
            COSMIC_RAY_DASHBOARD_PORT=str(free_port()),
            COSMIC_RAY_APOD_API_KEY="",
            RAY_AUTH_MODE="disabled",
            RAY_USAGE_STATS_ENABLED="0",
        )
        with _own_ray_cluster(python, root / "ray", env) as address:
            env["RAY_ADDRESS"] = address
            log.info("the venv's Ray head runs at %s", address)
            demo = subprocess.run(
                [str(cli), "demo", "--config", "tiny.yaml"],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=420,  # ~2 min on 2 idle cores; the lead runs many tests at once
            )
            assert demo.returncode == 0, demo.stderr[-6000:]
            log.info("cosmic-ray demo served the app")
            app_url = json.loads(demo.stdout.strip().splitlines()[-1])["app_url"]
            assert app_url == f"http://127.0.0.1:{app_port}"

            # the process that serves is the installed copy, not this checkout
            where = json.loads(
                _run([str(python), "-c", WHERE, address], 120, cwd=work, env=env).stdout.strip().splitlines()[-1]
            )
            assert Path(where["python"]).parent == root / "venv" / "bin", where
            assert Path(where["package"]).resolve().is_relative_to((root / "venv").resolve()), where
            assert Path(where["web_dir"]).resolve().is_relative_to((root / "venv").resolve()), where
            assert "_bundled" in where["web_dir"], where
            html = httpx.get(f"{app_url}/login", timeout=10).text
            assert marker in html

            _run(
                [str(cli), "users", "add", USER[0], "--role", "viewer", "--password-stdin"],
                60,
                cwd=work,
                env=env,
                input=USER[1] + "\n",
            )
            _browser_logs_in(chromium, app_url)
            log.info("logged in through the browser")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _browser_logs_in(chromium: str, app_url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            errors: list[str] = []
            failed: list[str] = []
            loaded: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            def seen(response) -> None:
                path = response.url.removeprefix(app_url)
                if path.startswith(("/static/", "/vendor/")):
                    (loaded if response.status < 400 else failed).append(f"{response.status} {path}")

            page.on("response", seen)
            page.goto(f"{app_url}/login", wait_until="load")
            page.wait_for_function(
                "() => window.astronautState && window.astronautState.ready && window.astronautState.frames > 3",
                timeout=60_000,
            )
            assert page.evaluate("window.astronautState.webgl")  # the 3D scene, drawn with WebGL
            assert _not_blank(page.locator("#scene").screenshot()) > 8
            assert any("/vendor/three/build/three.core.js" in f for f in loaded), loaded

            page.fill("#username", USER[0])
            page.fill("#password", USER[1])
            page.click("#submit")
            page.wait_for_url(f"{app_url}/", timeout=30_000)
            page.wait_for_function("() => window.dashboardState && window.dashboardState.ready", timeout=60_000)
            assert not failed, failed
            assert not errors, errors
        finally:
            browser.close()
