"""A CPU rehearsal of bench/gpu_session.sh, run for real: the same steps a GPU machine runs, at
tiny sizes, in a copy of the repository, with the optional packages the GPU image lacks
(cobra, python-libsbml, astropy, netCDF4, DALI) made unimportable.

Every step runs: the editable install through `python3 -m pip` into a fresh virtual
environment (which sees this environment's packages, not its astrobio), the extension check,
the GPU-marked tests' collection, each kernel benchmark as a plain script and the regression
gate; the benchmarks that need synthetic planets (cobra) must say they are skipped. A bare
`pip` on PATH fails loudly, so the script must use `python3 -m pip`. nvcc is hidden from the
build (ASTROBIO_BUILD_CUDA=0, as on a GPU image without the CUDA toolkit), so the spmm bench
must not offer the CUDA peer.
"""

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = ("cobra", "libsbml", "astropy", "netCDF4", "nvidia")  # nvidia: DALI's namespace

BLOCKER = f"""
import sys

HIDDEN = {HIDDEN!r}


class HideOptionalPackages:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden)", name=name)
        return None


sys.meta_path.insert(0, HideOptionalPackages())
"""


def hidden_env(tmp_path: Path) -> dict:
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "TRITON_INTERPRET")}
    env["PYTHONPATH"] = str(blocker)
    return env


def test_every_module_imports_without_optional_packages(tmp_path):
    """Optional packages are imported where used, so the package (and thus GPU test collection
    and the benches) imports on the GPU image."""
    script = """
import importlib, pkgutil, astrobio
failed = []
for module in pkgutil.walk_packages(astrobio.__path__, "astrobio.", onerror=failed.append):
    if not module.name.endswith("__main__"):
        try:
            importlib.import_module(module.name)
        except ImportError as error:
            failed.append(f"{module.name}: {error}")
try:
    import cobra
except ImportError:
    pass
else:
    failed.append("the blocker let cobra through")
print("\\n".join(map(str, failed)))
raise SystemExit(1 if failed else 0)
"""
    result = subprocess.run([sys.executable, "-c", script], env=hidden_env(tmp_path),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def tracked_copy(destination: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def fresh_venv(path: Path) -> Path:
    """A venv without packages of its own whose sys.path ends with this one's site-packages
    (plain path lines: their .pth files, among them this checkout's editable astrobio, are
    not run)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    query = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = Path(subprocess.run([str(path / "bin" / "python"), "-c", query],
                                  capture_output=True, text=True, check=True).stdout.strip())
    parents = dict.fromkeys(site.getsitepackages() + [sysconfig.get_path("purelib")])
    (purelib / "parent_environment.pth").write_text("\n".join(parents) + "\n")
    return path / "bin"


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs a git checkout to copy")
@pytest.mark.timeout(1200)
def test_gpu_session_script_completes_without_optional_packages(tmp_path):
    repo = tracked_copy(tmp_path / "repo")
    venv_bin = fresh_venv(tmp_path / "venv")
    fake_bin = tmp_path / "fake_bin"
    fake_bin.mkdir()
    (fake_bin / "pip").write_text("#!/bin/sh\necho 'a bare pip: wrong interpreter' >&2\nexit 97\n")
    (fake_bin / "pip").chmod(0o755)
    out = tmp_path / "out"
    env = hidden_env(tmp_path)
    env.update(PATH=f"{venv_bin}:{fake_bin}:{env.get('PATH', '')}",
               SIZES="tiny", OUT=str(out), ASTROBIO_BUILD_CUDA="0", PIP_NO_INDEX="1")
    result = subprocess.run(["bash", "bench/gpu_session.sh"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=1150)
    transcript = result.stdout + result.stderr
    assert result.returncode == 0, transcript[-6000:]

    for step in ("build", "extension", "gpu_tests", "bench_conv3d", "bench_spmm",
                 "bench_cross_attention", "gate"):
        assert f"=== {step}: exit 0" in transcript, (step, transcript[-6000:])
    logs = {p.stem: p.read_text() for p in out.glob("*.log")}
    # The package under test is the copy, installed by this run.
    assert "CUDA spmm backend unavailable" in logs["extension"]
    assert " skipped" in logs["gpu_tests"] and "error" not in logs["gpu_tests"].lower()
    assert "| shape | F | dtype |" in logs["bench_spmm"] and "| cuda |" not in logs["bench_spmm"]
    assert "| date | GPU | versions | layer" in logs["bench_conv3d"]
    assert "| date | GPU | versions | shape B,H,Lq,Lk,D" in logs["bench_cross_attention"]
    assert "skipped (the synthetic planets need cobra" in transcript
    assert "no baseline bench/baselines/cpu.json" in transcript
