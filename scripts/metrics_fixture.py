"""Regenerate tests/fixtures/metrics.json: small inputs with ties and the values scikit-learn
computes for them (roc_auc_score, jaccard_score). Run once with scikit-learn installed:

    ~/.cache/contrario/torch-2.13.0/bin/pip install scikit-learn
    ~/.cache/contrario/torch-2.13.0/bin/python scripts/metrics_fixture.py
"""
import json
import pathlib

import numpy as np
from sklearn.metrics import jaccard_score, roc_auc_score

rng = np.random.default_rng(20261128)
cases = []
for n, levels in [(12, 4), (200, 7), (1000, 1000), (5000, 20)]:
    # Quantised scores make many ties; labels correlated with the score.
    scores = np.round(rng.normal(size=n) * levels / 3) / levels
    labels = (scores + rng.normal(size=n) * 0.7) > 0.4
    if labels.all() or not labels.any():
        labels[0] = not labels[0]
    pred = scores > 0.2
    cases.append({
        "scores": [float(s) for s in scores.astype(np.float32)],
        "labels": [bool(l) for l in labels],
        "auroc": float(roc_auc_score(labels, scores.astype(np.float32))),
        "iou": float(jaccard_score(labels, pred)),
        "iou_threshold": 0.2,
    })
out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "metrics.json"
out.write_text(json.dumps({"generator": "scikit-learn", "cases": cases}))
print(f"wrote {out}")
