#!/usr/bin/env python3
"""The README's table of bench/test_count.sh: per category (and defect kind), thesis count
against per-area count on the same model. Usage: bench/test_count_table.py OUT_DIR"""
import json
import os
import sys

out = sys.argv[1]


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


rows = []
for name in ["demo", "mvtec", "mt"]:
    runs = {}
    for count in ["thesis", "per-area"]:
        p = os.path.join(out, f"{name}.{count}.json")
        if os.path.exists(p):
            runs[count] = json.load(open(p))
    if len(runs) < 2:
        continue
    for cat, t in runs["thesis"]["categories"].items():
        a = runs["per-area"]["categories"][cat]
        rows.append(
            (
                f"{name} {cat}",
                t["pixel_auroc"],
                t["miou_nfa"],
                a["miou_nfa"],
                t["miou_oracle"],
                a["miou_oracle"],
                t["oracle_threshold"],
                a["oracle_threshold"],
                t["false_alarms_per_normal_image"],
                a["false_alarms_per_normal_image"],
            )
        )
        for kind, tk in t["per_kind"].items():
            ak = a["per_kind"][kind]
            rows.append(
                (
                    f"  {kind}",
                    tk["pixel_auroc"],
                    tk["miou_nfa"],
                    ak["miou_nfa"],
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            )

print(
    "| category / defect kind | pixel AUROC | mIoU at NFA < 1, thesis | per-area | oracle mIoU, thesis | per-area "
    "| oracle's log10 NFA, thesis | per-area | false alarms per normal image, thesis | per-area |"
)
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(
        "| "
        + " | ".join(
            [r[0]]
            + [fmt(r[1], ".1f")]
            + [fmt(v, ".3f") for v in r[2:6]]
            + [fmt(v, ".1f") for v in r[6:8]]
            + [fmt(v, ".2f") for v in r[8:10]]
        )
        + " |"
    )
