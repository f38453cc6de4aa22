"""anomalib's U-Flow timed the way `contrario bench uflow` times ours, for a side-by-side run
(bench/compare_uflow.sh). Needs a separate environment with anomalib (it brings its own torch):

    python3 -m venv ~/.cache/contrario/anomalib-venv
    ~/.cache/contrario/anomalib-venv/bin/pip install anomalib torch==2.13.0

No weights can be downloaded here, so timm is asked for randomly initialised backbones
(`pretrained=False`): timing does not depend on the weights. Backbone: resnet18 (the closest in
size to EfficientNet-Lite0 that anomalib's U-Flow offers), 256 px, 4 flow steps per scale.
"""
import json
import statistics
import sys
import time

import timm
import torch

_create = timm.create_model


def _random_weights(*args, **kwargs):
    kwargs["pretrained"] = False
    return _create(*args, **kwargs)


timm.create_model = _random_weights

from anomalib.models.image.uflow.loss import UFlowLoss  # noqa: E402
from anomalib.models.image.uflow.torch_model import UflowModel  # noqa: E402


def median_time(f, repeat):
    f()
    per = max(repeat // 5, 1)
    batches = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(per):
            f()
        batches.append((time.perf_counter() - t) / per)
    return statistics.median(batches)


def main():
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    images = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    torch.manual_seed(0)
    model = UflowModel(input_size=(256, 256), flow_steps=4, backbone="resnet18")
    model.eval()
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        feats = model.feature_extractor(x)
        t_backbone = median_time(lambda: model.feature_extractor(x), repeat)
        t_flow = median_time(lambda: model.encode(feats), repeat)
        z, _ = model.encode(feats)
        t_map = median_time(lambda: model.anomaly_map_generator(z), repeat)
    # One epoch as anomalib's Lightning module trains: backbone and flow on every batch.
    model.train()
    loss_fn = UFlowLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    data = torch.randn(images, 3, 256, 256)

    def epoch(cached=None):
        t = time.perf_counter()
        for k in range(0, images, 8):
            if cached is None:
                z, ljd = model(data[k:k + 8])
            else:
                z, ljd = model.encode([f[k:k + 8] for f in cached])
            loss = loss_fn(z, ljd)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - t

    epoch()
    per_epoch = statistics.median([epoch() for _ in range(3)])
    with torch.no_grad():
        cached = model.feature_extractor(data)
    per_epoch_cached = statistics.median([epoch(cached) for _ in range(3)])
    print(json.dumps({
        "threads": torch.get_num_threads(),
        "inference_seconds_per_image": {
            "backbone": t_backbone, "flow": t_flow, "anomaly_map": t_map,
            "total": t_backbone + t_flow + t_map,
        },
        "training": {"images": images, "batch": 8, "seconds_per_epoch": per_epoch,
                     "seconds_per_epoch_flow_only": per_epoch_cached},
    }, indent=2))


if __name__ == "__main__":
    main()
