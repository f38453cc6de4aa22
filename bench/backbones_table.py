"""The table of bench/backbones.sh's runs: one row per backbone x taps x size, per category, and
the mean over the categories that ranks the configurations.

    python3 bench/backbones_table.py /tmp/contrario-backbones
"""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
cats = ["leather", "bottle", "magnetic_tile"]
rows = {}
for ev in sorted(out.glob("*.eval.json")):
    model, cat = ev.name[: -len(".eval.json")].rsplit(".", 1)
    v = json.loads(ev.read_text())["categories"][cat]
    train = float((out / f"{model}.{cat}.train.time").read_text().split()[-1])
    fresh = float((out / f"{model}.{cat}.infer.time").read_text().split()[-1])
    cached = float((out / f"{model}.{cat}.cached.time").read_text().split()[-1])
    n = v["images"]
    v["train_s"] = train
    v["infer_ms"] = 1000 * (fresh - cached) / max(n, 1)
    rows.setdefault(model, {})[cat] = v


def f(x, d=1):
    return "-" if x is None else f"{x:.{d}f}"


print("| backbone, taps, size | category | pixel AUROC | AUPRO | image AUROC | mIoU NFA<1 | mIoU oracle | FA / normal image | train s | infer ms/image |")
print("|---|---|---|---|---|---|---|---|---|---|")
means = []
for model, per in rows.items():
    for c in cats:
        if c not in per:
            continue
        v = per[c]
        print(f"| {model} | {c} | {f(v['pixel_auroc'])} | {f(v['aupro'])} | {f(v['image_auroc'])} | "
              f"{f(v['miou_nfa'], 3)} | {f(v['miou_oracle'], 3)} | {f(v['false_alarms_per_normal_image'], 2)} | "
              f"{v['train_s']:.0f} | {v['infer_ms']:.0f} |")
    if all(c in per for c in cats):
        keys = ["pixel_auroc", "aupro", "image_auroc", "miou_nfa", "miou_oracle", "false_alarms_per_normal_image", "train_s", "infer_ms"]
        m = {k: sum((per[c][k] or 0) for c in cats) / len(cats) for k in keys}
        means.append((model, m))
print()
print("| backbone, taps, size | mean pixel AUROC | mean AUPRO | mean image AUROC | mean mIoU NFA<1 | mean mIoU oracle | mean FA / normal image | max train s | mean infer ms |")
print("|---|---|---|---|---|---|---|---|---|")
for model, m in sorted(means, key=lambda t: -t[1]["pixel_auroc"]):
    mx = max(rows[model][c]["train_s"] for c in cats)
    print(f"| {model} | {f(m['pixel_auroc'])} | {f(m['aupro'])} | {f(m['image_auroc'])} | {f(m['miou_nfa'], 3)} | "
          f"{f(m['miou_oracle'], 3)} | {f(m['false_alarms_per_normal_image'], 2)} | {mx:.0f} | {m['infer_ms']:.0f} |")
