#!/usr/bin/env python3
"""The README's table of bench/outline.sh: per category (and defect kind), regions as tested
against regions outlined by evidence, on the same model. Usage: bench/outline_table.py OUT_DIR"""
import json
import os
import sys

out = sys.argv[1]


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


print(
    "| category / defect kind | pixel AUROC | mIoU at NFA < 1, as tested | by evidence "
    "| oracle mIoU, as tested | by evidence | oracle's log10 NFA, as tested | by evidence "
    "| false alarms per normal image, as tested | by evidence |"
)
print("|---" * 10 + "|")
gaps = {"tested": [], "evidence": []}
for name in ["demo", "mvtec", "mt"]:
    runs = {}
    for o in ["tested", "evidence"]:
        p = os.path.join(out, f"{name}.{o}.json")
        if os.path.exists(p):
            runs[o] = json.load(open(p))
    if len(runs) < 2:
        continue
    for cat, t in runs["tested"]["categories"].items():
        e = runs["evidence"]["categories"][cat]
        for o, r in (("tested", t), ("evidence", e)):
            gaps[o].append((r["miou_nfa"], r["miou_oracle"]))
        print(
            f"| {name} {cat} | {t['pixel_auroc']:.1f} | {t['miou_nfa']:.3f} | **{e['miou_nfa']:.3f}** "
            f"| {t['miou_oracle']:.3f} | {e['miou_oracle']:.3f} "
            f"| {t['oracle_threshold']:.0f} | {e['oracle_threshold']:.0f} "
            f"| {t['false_alarms_per_normal_image']:.2f} | {e['false_alarms_per_normal_image']:.2f} |"
        )
        for kind, tk in t["per_kind"].items():
            ek = e["per_kind"][kind]
            print(
                f"| &nbsp;&nbsp;{kind} | {tk['pixel_auroc']:.1f} | {tk['miou_nfa']:.3f} "
                f"| {ek['miou_nfa']:.3f} | | | | | | |"
            )
for o, v in gaps.items():
    if v:
        n = len(v)
        print(
            f"\nmean over {n} categories, {o}: mIoU at NFA < 1 {sum(a for a, _ in v) / n:.3f}, "
            f"oracle {sum(b for _, b in v) / n:.3f}, gap {sum(b - a for a, b in v) / n:.3f}, "
            f"largest gap {max(b - a for a, b in v):.3f}"
        )
