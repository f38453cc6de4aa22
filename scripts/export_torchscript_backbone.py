"""Export a timm backbone to TorchScript for Contrario (`--backbone path/to/model.pt`).

The exported module takes a normalised N x 3 x H x W batch (ImageNet mean/std) and returns a
list of feature maps, finest first, each half the size of the previous one. Needs internet once
(timm downloads the weights) and `pip install timm`:

    python scripts/export_torchscript_backbone.py resnet18 resnet18.pt
    python scripts/export_torchscript_backbone.py wide_resnet50_2 wrn50.pt
    python scripts/export_torchscript_backbone.py mscait mscait.pt     # thesis default, 448 px
    python scripts/export_torchscript_backbone.py tiny tiny.pt --random  # offline test model

`--random` skips pretrained weights (useful offline, for tests only).
"""
import argparse
from typing import List

import torch
from torch import nn


class ResNetLevels(nn.Module):
    """layer1..layer3 of a torchvision-style ResNet (strides 4, 8, 16)."""

    def __init__(self, net):
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.act1 if hasattr(net, "act1") else net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3

    def forward(self, x) -> List[torch.Tensor]:
        x = self.stem(x)
        a = self.layer1(x)
        b = self.layer2(a)
        c = self.layer3(b)
        return [a, b, c]


class MsCait(nn.Module):
    """cait_m48_448 blocks 0-40 on the 448 image and cait_s24_224 blocks 0-20 on the image resized
    to 224, each with its final norm, as (C, H, W) maps (reference section 1)."""

    def __init__(self, big, small):
        super().__init__()
        self.big, self.small = big, small

    @staticmethod
    def tokens(model, x, blocks: int):
        x = model.patch_embed(x) + model.pos_embed
        for i in range(blocks):
            x = model.blocks[i](x)
        x = model.norm(x)
        n, t, c = x.shape
        side = int(t ** 0.5)
        return x.transpose(1, 2).reshape(n, c, side, side)

    def forward(self, x) -> List[torch.Tensor]:
        small = nn.functional.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False)
        return [self.tokens(self.big, x, 41), self.tokens(self.small, small, 21)]


class Tiny(nn.Module):
    """A small random network with the backbone contract, for offline tests."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU())
        self.c = nn.Sequential(nn.Conv2d(12, 16, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, x) -> List[torch.Tensor]:
        a = self.a(x)
        b = self.b(a)
        c = self.c(b)
        return [a, b, c]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name", help="resnet18 | wide_resnet50_2 | mscait | tiny")
    ap.add_argument("out")
    ap.add_argument("--random", action="store_true", help="random weights (no download)")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.name == "tiny":
        model = Tiny()
    else:
        import timm

        pretrained = not args.random
        if args.name == "mscait":
            model = MsCait(timm.create_model("cait_m48_448", pretrained=pretrained),
                           timm.create_model("cait_s24_224", pretrained=pretrained))
        else:
            model = ResNetLevels(timm.create_model(args.name, pretrained=pretrained))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    torch.jit.script(model).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
