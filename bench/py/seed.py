#!/usr/bin/python3
"""PyTorch's side of the seed scenario (see bench/cmd/runbench, -only
seed): the fine-tuning loop a competent PyTorch user writes, run once
from start to end, against which the runner times the finetune command.

Run it with Debian's system python, /usr/bin/python3, whose python3-torch
1.13 is the libtorch build the Go bindings link:

    /usr/bin/python3 bench/py/seed.py weights PATH [--arch resnet50]
    /usr/bin/python3 bench/py/seed.py train --train DIR --val DIR --weights PATH [--arch resnet50] [--test DIR]

"weights" saves a randomly initialised torchvision model's state_dict to
PATH: the stand-in for ImageNet weights on an offline machine, loaded by
both tools. Speed does not depend on the values, but the BatchNorm
statistics are estimated on a few batches of random images first, as a
trained model's are, so that the activations in eval mode keep a
trained model's scale instead of growing from block to block.

"train" fine-tunes the model in two epochs, each followed by a pass over
the validation folder:

  head    every backbone parameter requires_grad=False, every BatchNorm
          layer in eval mode (stored statistics), a new Linear(features,
          classes) trained by AdamW(lr 1e-3, weight decay 0.01);
  layer4  layer4 unfrozen too, at a tenth of the head's learning rate, its
          BatchNorm layers still in eval mode (finetune's
          train.batchnorm: frozen); a new AdamW over both groups.

Data: torchvision's ImageFolder, RandomResizedCrop(224, scale=(0.7, 1)),
RandomHorizontalFlip, ColorJitter(0.2, 0.2, 0.2), ToTensor, ImageNet
normalisation for training; Resize(256), CenterCrop(224) for validation;
DataLoader(batch_size=32, shuffle=True, num_workers=WORKERS), the
workers started afresh for each pass as DataLoader does by default. The
loss is cross entropy with label smoothing 0.1.

It prints one JSON line when it is ready to train ({"event": "ready",
...}, after the import, the model and the datasets), and one at the end
of each part of each epoch:

  {"event": "train", "stage": "head", "seconds": s, "steps": n, "loss": l, "accuracy": a}
  {"event": "val", "stage": "head", "seconds": s, "steps": n, "loss": l, "accuracy": a}

where seconds is the part's wall time (time.perf_counter) and steps its
batches. With --test, the model after both epochs is evaluated on that
folder (validation's transforms) and a last line says so:

  {"event": "test", "seconds": s, "steps": n, "loss": l, "accuracy": a}
 The runner reads the process's CPU time and page faults from
/proc when each line arrives; a part's workers have exited by then.
"""

import argparse
import json
import time

import torch
import torchvision
from torch import nn
from torchvision import datasets, transforms

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def say(**kw):
    print(json.dumps(kw), flush=True)


def save_weights(a):
    torch.manual_seed(a.seed)
    m = getattr(torchvision.models, a.arch)()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.momentum = None  # a cumulative average over the batches
    m.train()
    with torch.no_grad():
        for _ in range(4):
            m(torch.randn(16, 3, 224, 224))
    torch.save(m.state_dict(), a.path)


def freeze_bn(m):
    """Puts every BatchNorm layer in eval mode: stored statistics."""
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.eval()


def train(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train_tf = transforms.Compose([
        transforms.RandomResizedCrop(224, scale=(0.7, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(0.2, 0.2, 0.2),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])
    val_tf = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])
    train_ds = datasets.ImageFolder(a.train, train_tf)
    val_ds = datasets.ImageFolder(a.val, val_tf)
    train_dl = torch.utils.data.DataLoader(train_ds, batch_size=a.batch, shuffle=True, num_workers=a.workers)
    val_dl = torch.utils.data.DataLoader(val_ds, batch_size=a.batch, num_workers=a.workers)

    m = getattr(torchvision.models, a.arch)()
    m.load_state_dict(torch.load(a.weights))
    for p in m.parameters():
        p.requires_grad_(False)
    m.fc = nn.Linear(m.fc.in_features, len(train_ds.classes))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    say(event="ready", threads=torch.get_num_threads(), version=torch.__version__,
        train_images=len(train_ds), val_images=len(val_ds))

    def evaluate(loader):
        """Returns the loss, accuracy, steps and seconds of m on loader."""
        m.eval()
        start = time.perf_counter()
        steps = seen = correct = 0
        loss_sum = 0.0
        with torch.no_grad():
            for x, y in loader:
                out = m(x)
                loss_sum += nn.functional.cross_entropy(out, y, reduction="sum").item()
                correct += (out.argmax(1) == y).sum().item()
                seen += len(y)
                steps += 1
        return dict(seconds=time.perf_counter() - start, steps=steps, loss=loss_sum / seen, accuracy=correct / seen)

    def epoch(stage, opt):
        m.train()
        freeze_bn(m)
        start = time.perf_counter()
        steps = seen = correct = 0
        loss_sum = 0.0
        for x, y in train_dl:
            opt.zero_grad(set_to_none=True)
            out = m(x)
            loss = criterion(out, y)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            seen += len(y)
            steps += 1
        say(event="train", stage=stage, seconds=time.perf_counter() - start, steps=steps,
            loss=loss_sum / seen, accuracy=correct / seen)

        say(event="val", stage=stage, **evaluate(val_dl))

    epoch("head", torch.optim.AdamW(m.fc.parameters(), lr=a.lr, weight_decay=0.01))
    for p in m.layer4.parameters():
        p.requires_grad_(True)
    epoch("layer4", torch.optim.AdamW([
        {"params": m.fc.parameters()},
        {"params": m.layer4.parameters(), "lr": a.lr * 0.1},
    ], lr=a.lr, weight_decay=0.01))
    if a.test:
        test_ds = datasets.ImageFolder(a.test, val_tf)
        if test_ds.classes != train_ds.classes:
            raise SystemExit(f"{a.test}: classes {test_ds.classes}, training has {train_ds.classes}")
        say(event="test", **evaluate(torch.utils.data.DataLoader(test_ds, batch_size=a.batch, num_workers=a.workers)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("weights")
    w.add_argument("path")
    w.add_argument("--arch", default="resnet50")
    w.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("train")
    t.add_argument("--train", required=True)
    t.add_argument("--val", required=True)
    t.add_argument("--weights", required=True)
    t.add_argument("--test", help="a folder to evaluate the final model on")
    t.add_argument("--arch", default="resnet50")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    if a.cmd == "weights":
        save_weights(a)
    else:
        train(a)


if __name__ == "__main__":
    main()
