"""An MVTec-layout view (symlinks) of the Magnetic-tile set small enough that a 60-epoch training
fits in two minutes on 2 cores: train/good holds every 12th of the normals `contrario import
--format magnetic-tile` trains on (60 of 714), test/good every 8th of its held-out normals (30 of
238, so that the false alarms per normal image are measured on more than a handful), and every
defect image with its mask. Deterministic (by name). TRAIN_EVERY and DEFECT_EVERY (default 12
and 1) change the shares: bench/families.sh's scaling runs train on every 48th, 24th, 12th and 6th
normal (15, 30, 60, 119 images) against every 4th defect image.

    python3 bench/magnetic_tile_subset.py ../shared/data/magnetic_tile /tmp/mt-data [TRAIN_EVERY [DEFECT_EVERY]]
    contrario import --project /tmp/mt --format mvtec /tmp/mt-data
"""
import os
import pathlib
import sys

src = pathlib.Path(sys.argv[1]).resolve()
out = pathlib.Path(sys.argv[2])
train_every = int(sys.argv[3]) if len(sys.argv) > 3 else 12
defect_every = int(sys.argv[4]) if len(sys.argv) > 4 else 1
cat = out / "magnetic_tile"


def link(target: pathlib.Path, at: pathlib.Path) -> None:
    at.parent.mkdir(parents=True, exist_ok=True)
    if not at.exists():
        os.symlink(target, at)


free = sorted((src / "MT_Free" / "Imgs").glob("*.jpg"))
# The importer holds out every 4th normal (by name) for the test split.
held_out = [p for i, p in enumerate(free) if i % 4 == 3]
trained = [p for i, p in enumerate(free) if i % 4 != 3]
for p in trained[::train_every]:
    link(p, cat / "train" / "good" / (p.stem + ".jpg"))
for p in held_out[::8]:
    link(p, cat / "test" / "good" / (p.stem + ".jpg"))
for kind_dir in sorted(src.glob("MT_*")):
    kind = kind_dir.name[3:].lower()
    if kind == "free":
        continue
    for p in sorted((kind_dir / "Imgs").glob("*.jpg"))[::defect_every]:
        link(p, cat / "test" / kind / (p.stem + ".jpg"))
        link(p.with_suffix(".png"), cat / "ground_truth" / kind / (p.stem + "_mask.png"))
print(
    f"{len(trained[::train_every])} train normals, {len(held_out[::8])} test normals, "
    f"{len(list(cat.glob('test/*/*.jpg'))) - len(held_out[::8])} defects"
)
