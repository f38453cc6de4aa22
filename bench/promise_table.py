"""The promise of at most one false alarm per normal image, with and without the models'
out-of-sample offset (README, "The promise on unseen normals"), from the runs of
bench/families.sh (every category, both families) and bench/lighting.sh (synthetic drift, the
*standardise* setting): each `eval --json` beside its `.no-offset` twin, the same model evaluated
at the level moved by its offset.

    python3 bench/promise_table.py FAMILIES_OUT LIGHTING_OUT
"""
import json
import pathlib
import sys

fam_out, light_out = (pathlib.Path(a) for a in sys.argv[1:3])
families = ["uflow", "patchcore"]


def load(p):
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def pair(base, cat):
    """(with offset, without) category entries of base.eval.json and base.no-offset.eval.json."""
    a = load(base.with_name(base.name + ".eval.json"))
    b = load(base.with_name(base.name + ".no-offset.eval.json"))
    if a is None or b is None:
        return None
    return a["categories"][cat], b["categories"][cat]


def f(x, n=2):
    return "-" if x is None else f"{x:.{n}f}"


print("| category | family | held-out images | offset (log10) | held-out false alarms per image (95 % bound) | test false alarms per normal image, without / with the offset | mIoU at NFA < 1, without / with |")
print("|---|---|---|---|---|---|---|")
worst = {}
for tag, cat in [("demo-fabric", "fabric"), ("demo-leather", "leather"), ("demo-wood", "wood"),
                 ("mvtec-bottle", "bottle"), ("mvtec-leather", "leather"), ("mt-magnetic_tile", "magnetic_tile")]:
    for fam in families:
        p = pair(fam_out / f"{tag}.{fam}", cat)
        if p is None:
            continue
        w, wo = p
        cal = w.get("validation_calibration") or {}
        fa = (wo["false_alarms_per_normal_image"], w["false_alarms_per_normal_image"])
        worst.setdefault(fam, []).append(fa)
        print(f"| {tag} | {fam} | {cal.get('validation_images', '-')} | {f(cal.get('level_offset', 0.0))} | "
              f"{f(cal.get('false_alarms_per_normal_image'))} ({f(w.get('validation_false_alarms_upper_95'))}) | "
              f"{f(fa[0])} / {f(fa[1])} | {f(wo['miou_nfa'], 3)} / {f(w['miou_nfa'], 3)} |")
print()
for fam, rows in worst.items():
    print(f"{fam}: mean false alarms per normal image without / with {sum(r[0] for r in rows) / len(rows):.2f} / "
          f"{sum(r[1] for r in rows) / len(rows):.2f}, worst {max(r[0] for r in rows):.2f} / {max(r[1] for r in rows):.2f}")
print()
print("| category | family | test images | false alarms per normal image, without / with the offset | on the normals like training, without / with | normals unlike training | mIoU at NFA < 1, without / with |")
print("|---|---|---|---|---|---|---|")
drifts = [("asis-light", "as they are"), ("dark", "darker 8 %"), ("bright", "brighter 8 %"), ("warm", "warm cast")]
for cat in ["leather", "bottle", "magnetic_tile"]:
    for fam, pre in [("uflow", ""), ("patchcore", "patchcore-")]:
        for d, words in drifts:
            name = f"{cat}.{pre}standardise.asis-light" if d == "asis-light" else f"{cat}.{pre}standardise-{d}"
            p = pair(light_out / name, cat)
            if p is None:
                continue
            w, wo = p
            k = "false_alarms_per_normal_image"
            print(f"| {cat} | {fam} | {words} | {f(wo[k])} / {f(w[k])} | {f(wo[k + '_like_training'])} / {f(w[k + '_like_training'])} | "
                  f"{w.get('normals_unlike_training', '-')} | {f(wo['miou_nfa'], 3)} / {f(w['miou_nfa'], 3)} |")
