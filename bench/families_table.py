"""The tables of bench/families.sh: both detector families per category, their means (which pick
the default family), and how training and inference grow with the number of training images.

    python3 bench/families_table.py /tmp/contrario-families
"""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
runs = [("demo-fabric", "fabric"), ("demo-leather", "leather"), ("demo-wood", "wood"),
        ("mvtec-bottle", "bottle"), ("mvtec-leather", "leather"), ("mt-magnetic_tile", "magnetic_tile")]
families = ["uflow", "patchcore"]
keys = ["pixel_auroc", "aupro", "image_auroc", "miou_nfa", "false_alarms_per_normal_image"]


def seconds(p):
    return float(p.read_text().split()[-1])


def load(tag, fam, cat):
    r = out / f"{tag}.{fam}"
    try:
        v = json.loads((r.with_name(r.name + ".eval.json")).read_text())["categories"][cat]
    except (OSError, ValueError, KeyError):
        return None
    v["train_s"] = seconds(r.with_name(r.name + ".train.time"))
    fresh = seconds(r.with_name(r.name + ".infer.time"))
    cached = seconds(r.with_name(r.name + ".cached.time"))
    v["infer_s"] = fresh - cached
    v["infer_ms"] = 1000 * v["infer_s"] / max(v["images"], 1)
    return v


def f(x, d=1):
    return "-" if x is None else f"{x:.{d}f}"


print("| category | family | pixel AUROC | AU-PRO | image AUROC | mIoU at NFA < 1 | false alarms per normal image | training s | ms per image |")
print("|---|---|---|---|---|---|---|---|---|")
per = {fam: [] for fam in families}
for tag, cat in runs:
    for fam in families:
        v = load(tag, fam, cat)
        if v is None:
            continue
        per[fam].append((tag, v))
        print(f"| {tag} | {fam} | {f(v['pixel_auroc'])} | {f(v['aupro'])} | {f(v['image_auroc'])} | "
              f"{f(v['miou_nfa'], 3)} | {f(v['false_alarms_per_normal_image'], 2)} | {v['train_s']:.1f} | {v['infer_ms']:.0f} |")
print()
print("| family | categories | mean pixel AUROC | mean AU-PRO | mean image AUROC | mean mIoU at NFA < 1 | mean false alarms per normal image | worst false alarms | total training s | ms per image (all test images) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for fam in families:
    rows = [v for _, v in per[fam]]
    if not rows:
        continue
    m = {k: sum(v[k] or 0 for v in rows) / len(rows) for k in keys}
    # Over all test images: a few images' time is mostly the process's noise.
    m["infer_ms"] = 1000 * sum(v["infer_s"] for v in rows) / max(1, sum(v["images"] for v in rows))
    print(f"| {fam} | {len(rows)} | {f(m['pixel_auroc'])} | {f(m['aupro'])} | {f(m['image_auroc'])} | {f(m['miou_nfa'], 3)} | "
          f"{f(m['false_alarms_per_normal_image'], 2)} | {max(v['false_alarms_per_normal_image'] for v in rows):.2f} | "
          f"{sum(v['train_s'] for v in rows):.0f} | {m['infer_ms']:.0f} |")
print()
print("| Magnetic-tile training normals | family | training s | ms per image | pixel AUROC | image AUROC | false alarms per normal image |")
print("|---|---|---|---|---|---|---|")
for n in [15, 30, 60, 119, 238]:
    for fam in families:
        v = load(f"scaling-{n}", fam, "magnetic_tile")
        if v is not None:
            print(f"| {n} | {fam} | {v['train_s']:.1f} | {v['infer_ms']:.0f} | {f(v['pixel_auroc'])} | {f(v['image_auroc'])} | "
                  f"{f(v['false_alarms_per_normal_image'], 2)} |")
print()
# The line's verdict: an image is flagged when it holds a region at NFA < 1 (infer's "regions").
print("| family | defective test images flagged | normal test images flagged | per category, defective / normal flagged |")
print("|---|---|---|---|")
for fam in families:
    tot = {"defect": [0, 0], "normal": [0, 0]}
    cells = []
    for tag, cat in runs:
        p = out / f"{tag}.{fam}.infer.jsonl"
        if not p.exists():
            continue
        n = {"defect": [0, 0], "normal": [0, 0]}
        for line in p.read_text().splitlines():
            r = json.loads(line)
            kind = "normal" if "/good/" in r["image"] else "defect"
            n[kind][0] += r["regions"] > 0
            n[kind][1] += 1
        for k in tot:
            tot[k][0] += n[k][0]
            tot[k][1] += n[k][1]
        cells.append(f"{tag} {n['defect'][0]}/{n['defect'][1]}, {n['normal'][0]}/{n['normal'][1]}")
    if cells:
        share = {k: 100 * a / max(b, 1) for k, (a, b) in tot.items()}
        print(f"| {fam} | {share['defect']:.1f} % ({tot['defect'][0]} of {tot['defect'][1]}) | "
              f"{share['normal']:.1f} % ({tot['normal'][0]} of {tot['normal'][1]}) | {'; '.join(cells)} |")
