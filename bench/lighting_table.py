"""The tables of bench/lighting.sh: per category and photometric setting, the figures of `eval --json`
on the test images as they are and under each drift, and the label-issue finder on correct labels."""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
cats = ["leather", "bottle", "magnetic_tile"]
# The families and the names of their runs: U-Flow's as they were before PatchCore joined.
families = [("uflow", ""), ("patchcore", "patchcore-")]
drifts = [("asis-light", "as they are"), ("dark", "darker 8 %"), ("bright", "brighter 8 %"), ("warm", "warm cast")]


def load(p):
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


print("| category | family | lighting | test images | pixel AUROC | AU-PRO | image AUROC | mIoU at NFA < 1 | false alarms per normal image | on the normals like training | unlike training (normals / all) | training s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
means = {}
for c in cats:
    for fam, pre in families:
        for ph in ["as-is", "standardise"]:
            t = (out / f"{c}.{pre}{ph}.train.time")
            secs = t.read_text().strip() if t.exists() else "-"
            for d, words in drifts:
                name = f"{c}.{pre}{ph}.asis-light" if d == "asis-light" else f"{c}.{pre}{ph}-{d}"
                v = load(out / f"{name}.eval.json")
                if v is None:
                    continue
                e = v["categories"][c]
                row = [e.get(k) for k in ["pixel_auroc", "aupro", "image_auroc", "miou_nfa", "false_alarms_per_normal_image", "false_alarms_per_normal_image_like_training"]]
                m = means.setdefault((fam, ph, d), [])
                m.append(row)
                f = lambda x, n=1: "-" if x is None else f"{x:.{n}f}"
                print(f"| {c} | {fam} | {ph} | {words} | {f(row[0])} | {f(row[1])} | {f(row[2])} | {f(row[3], 3)} | {f(row[4], 2)} | {f(row[5], 2)} | {e.get('normals_unlike_training', '-')} / {e.get('unlike_training', 0)} | {secs if d == 'asis-light' else ''} |")
print()
print("| family | lighting | test images | mean pixel AUROC | mean AU-PRO | mean image AUROC | mean mIoU | mean false alarms per normal image |")
print("|---|---|---|---|---|---|---|---|")
for (fam, ph, d), rows in sorted(means.items()):
    words = dict(drifts)[d]
    mean = [sum(r[i] for r in rows if r[i] is not None) / max(1, sum(r[i] is not None for r in rows)) for i in range(5)]
    print(f"| {fam} | {ph} | {words} ({len(rows)} categories) | {mean[0]:.2f} | {mean[1]:.2f} | {mean[2]:.2f} | {mean[3]:.3f} | {mean[4]:.2f} |")
print()
print("| category | family | lighting | correct labels judged | accused (label without evidence) | the model cannot confirm | unlabelled detections |")
print("|---|---|---|---|---|---|---|")
for c in cats:
    for fam, pre in families:
        for ph in ["as-is", "standardise"]:
            v = load(out / f"{c}.{pre}{ph}.review.json")
            if v is None:
                continue
            mine = lambda xs: [x for x in xs if x["image"].startswith(c + "/")]
            issues = mine(v["label_issues"])
            acc = sum(x["kind"] == "label_without_evidence" for x in issues)
            unl = sum(x["kind"] == "unlabelled_detection" for x in issues)
            unc = len(mine(v.get("unconfirmed_labels", [])))
            print(f"| {c} | {fam} | {ph} | {v.get('labelled_regions_judged', {}).get(c, '-')} | {acc} | {unc} | {unl} |")
