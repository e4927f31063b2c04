"""Every ```python block of README.md and docs/*.md compiles, and those that can run offline run, at tiny sizes, on
the shipped nuclei data, so the documented code cannot drift from the library.

The blocks of one file run in order in one namespace (later blocks use the names of earlier ones, as a reader
would). ``SETUP`` gives each file the names its text leaves to the reader (``donor_image``, a loaded ``model``);
``SUBSTITUTIONS`` swaps the user's sizes and devices for tiny CPU ones, each an exact piece of the block's text
(a piece that is no longer there fails the test, so the table cannot silently stop applying). ``COMPILE_ONLY``
names the blocks that cannot run here and why.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL, TILES, tiny_diffusion_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)

# (file, block index) -> why it is compiled only
COMPILE_ONLY: dict[tuple[str, int], str] = {}

# (file, block index) -> [(text in the block, tiny replacement)]: sizes, steps and devices only, never the API used
SUBSTITUTIONS: dict[tuple[str, int], list[tuple[str, str]]] = {
    ("README.md", 0): [
        ("mask_channels=pair.labels.channels)", "mask_channels=pair.labels.channels, iters_per_scale=2)"),
        ("config.pyramid.max_size = 128",
         "config.pyramid.max_size, config.pyramid.min_size, config.network.base_channels = 32, 16, 8"),
    ],
    ("docs/diffusion.md", 0): [
        ("lr=2e-4, train_steps=3000, batch_size=8, checkpoint_every=500, seed=0,",
         "lr=2e-4, train_steps=2, batch_size=2, checkpoint_every=1, seed=0,"),
        ('device="cuda"', 'device="cpu"'),
    ],
    ("docs/diffusion.md", 1): [
        ('device="cuda"', 'device="cpu"'),
        ('model.generate(16, steps=50, sampler="ddim", generator=g)', 'model.generate(2, steps=2, sampler="ddim", generator=g)'),
        ('model.sample(16, steps=50, sampler="ddpm", seed=0)', 'model.sample(2, steps=2, sampler="ddpm", seed=0)'),
        ("model.generate(4, steps=50, shape=(128, 96))", "model.generate(1, steps=2, shape=(128, 96))"),
    ],
    ("docs/diffusion.md", 2): [
        ("steps=50, jump_length=10, resample=5", "steps=2, jump_length=1, resample=1"),
    ],
    ("docs/stylegan.md", 0): [
        ("widths=(128, 128, 128, 64, 32), train_steps=5000, batch_size=8, seed=0)",
         "widths=(8, 8, 8, 8, 8), latent_dim=8, style_dim=8, train_steps=2, batch_size=2, seed=0)"),
        ('device="cuda"', 'device="cpu", progress=False'),
    ],
    ("docs/metrics.md", 0): [
        ("model.generate(16,", "model.generate(4,"),
        # SIFID needs the Inception-v3 weight file the user downloads; the name is still checked to exist
        ('sifid(real_image, image, weights="pt_inception-2015-12-05-6726825d.pth")', "sifid"),
        ('"report/", start_scales=[0, 2])', '"report/", start_scales=[0, 1], num_samples=2)'),
    ],
}

# per file, code defining the names its text leaves to the reader (a donor pair, a loaded model)
DONORS = ("from monai_singanseg import read_image\n"
          "donor_image = read_image('image.png').as_tensor()\n"
          "donor_mask = read_image('mask.png').as_tensor()\n")
SETUP: dict[str, str] = {
    "docs/downstream.md": "from monai_singanseg import SinGANSegAugmentd\n",  # the block continues an import above it
    "docs/harmonization.md": DONORS,
    "docs/style.md": "from monai_singanseg import SinGANSeg\nmodel = SinGANSeg.load('model.pt')\n",
    "docs/transforms.md": DONORS + "image, brain_mask = donor_image, (donor_mask > 0).float()\n",
}


def blocks() -> list[tuple[str, int, str]]:
    """(file relative to the repository, index within the file, code) of every ```python block."""
    found = []
    for path in DOCS:
        for index, match in enumerate(BLOCK.finditer(path.read_text())):
            found.append((path.relative_to(ROOT).as_posix(), index, match.group(1)))
    return found


def test_every_block_compiles():
    found = blocks()
    assert len(found) >= 10  # the pattern finds the blocks (README and docs hold more than ten)
    for name, index, code in found:
        compile(code, f"{name} block {index}", "exec")  # a SyntaxError names the block
    known = {(n, i) for n, i, _ in found}
    assert set(COMPILE_ONLY) <= known and set(SUBSTITUTIONS) <= known, "the tables name a block that is gone"


@pytest.fixture
def user_folder(tmp_path, monkeypatch, nuclei_model):
    """A working folder holding the files the snippets name: the nuclei pair under the names the docs use, a
    trained model as model.pt and as models/, and a tiny diffusion model as diffusion.pt."""
    from monai_singanseg import load_training_pair
    from monai_singanseg.diffusion import DiffusionTrainer

    for name in ("image.png", "case.png"):
        shutil.copy(NUCLEI_IMAGE, tmp_path / name)
    for name in ("mask.png", "case_label.png"):
        shutil.copy(NUCLEI_LABEL, tmp_path / name)
    for k, letter in enumerate("abcd"):
        shutil.copy(TILES / f"nuclei_tile_{letter}_image.png", tmp_path / f"image_{k}.png")
        shutil.copy(TILES / f"nuclei_tile_{letter}_label.png", tmp_path / f"label_{k}.png")
    shutil.copy(nuclei_model[1], tmp_path / "model.pt")
    (tmp_path / "models").mkdir()
    shutil.copy(nuclei_model[1], tmp_path / "models" / "image.pt")
    pair = load_training_pair([NUCLEI_IMAGE], NUCLEI_LABEL)
    DiffusionTrainer(tiny_diffusion_config(train_steps=2), progress=False).fit([pair], tmp_path / "diffusion.pt")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tiny(name: str, index: int, code: str) -> str:
    for old, new in SUBSTITUTIONS.get((name, index), []):
        assert old in code, f"{name} block {index} no longer holds {old!r}: update SUBSTITUTIONS"
        code = code.replace(old, new)
    return code


@pytest.mark.parametrize("name", sorted({n for n, _, _ in blocks()}))
def test_the_blocks_of_a_file_run(name, user_folder):
    namespace: dict = {"__name__": "__doc_snippet__"}
    exec(compile(SETUP.get(name, ""), f"{name} setup", "exec"), namespace)  # noqa: S102 (our own docs)
    ran = 0
    for file, index, code in blocks():
        if file != name or (file, index) in COMPILE_ONLY:
            continue
        exec(compile(tiny(name, index, code), f"{name} block {index}", "exec"), namespace)  # noqa: S102
        ran += 1
    assert ran > 0
