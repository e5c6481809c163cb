#!/usr/bin/python3
"""PyTorch's side of the benchmarks (see bench/cmd/gowork, which serves
the Go side with the same protocol, and bench/cmd/runbench, which drives
both).

Run it with Debian's system python, /usr/bin/python3, whose python3-torch
1.13 is the libtorch build the Go bindings link:

    /usr/bin/python3 bench/py/work.py --task train --arch resnet18 --batch 32 --size 64

It builds the workload, prints {"ready": true, ...}, then for each line on
stdin:

    run VARIANT K   runs K units (training steps, inference batches or
                    epochs) and prints {"seconds": s, "units": K,
                    "done": all units so far, "rss": VmRSS, "peak": VmHWM}
    quit            exits

The workloads are what a PyTorch user writes:

train   torchvision's resnet in train mode; per step: forward,
        F.cross_entropy, loss.item(), backward, SGD(lr 0.01, momentum 0.9)
        step, zero_grad(set_to_none=True) (the Go optimizer's ZeroGrad
        drops gradients too; 1.13's default would fill them with zeros).
infer   the model in eval mode under torch.no_grad(); variant "plain"
        (contiguous input) or "cl" (model and input channels-last).
frozen  the plain fine-tuning loop: every backbone parameter
        requires_grad=False, model.eval() (BatchNorm uses its stored
        statistics; there is no dropout), the whole model runs on every
        batch of every epoch, SGD trains the fc layer; shuffled batches
        from a fixed tensor of N random images. Variant "plain".
"""

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

LR, MOMENTUM = 0.01, 0.9


def rss():
    now = peak = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) << 10
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) << 10
    return now, peak


def model(arch, classes):
    return getattr(torchvision.models, arch)(num_classes=classes)


def train(a):
    m = model(a.arch, a.classes)
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=LR, momentum=MOMENTUM)
    x = torch.randn(a.batch, 3, a.size, a.size)
    y = torch.randint(0, a.classes, (a.batch,))

    def step(_variant):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(m(x), y)
        loss.item()
        loss.backward()
        opt.step()

    return step


def infer(a):
    m = model(a.arch, a.classes)
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    x = torch.randn(a.batch, 3, a.size, a.size)
    state = {"variant": "plain"}

    def step(variant):
        nonlocal x
        if variant != state["variant"]:
            fmt = {"plain": torch.contiguous_format, "cl": torch.channels_last}[variant]
            m.to(memory_format=fmt)
            x = x.contiguous(memory_format=fmt)
            state["variant"] = variant
        with torch.no_grad():
            m(x)

    return step


def frozen(a):
    m = model(a.arch, a.classes)
    for p in m.parameters():
        p.requires_grad_(False)
    for p in m.fc.parameters():
        p.requires_grad_(True)
    m.eval()
    opt = torch.optim.SGD(m.fc.parameters(), lr=LR, momentum=MOMENTUM)
    images = torch.randn(a.n, 3, a.size, a.size)
    labels = torch.randint(0, a.classes, (a.n,))

    def epoch(variant):
        if variant != "plain":
            raise ValueError("frozen: unknown variant %r" % variant)
        order = torch.randperm(a.n)
        for i in range(0, a.n, a.batch):
            idx = order[i:i + a.batch]
            x, y = images[idx], labels[idx]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(x), y)
            loss.item()
            loss.backward()
            opt.step()

    return epoch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--task", default="train", choices=["train", "infer", "frozen"])
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    run = {"train": train, "infer": infer, "frozen": frozen}[a.task](a)

    def say(r):
        r["rss"], r["peak"] = rss()
        print(json.dumps(r), flush=True)

    say({"ready": True, "threads": torch.get_num_threads(), "version": torch.__version__})
    done = 0
    for line in sys.stdin:
        f = line.split()
        if not f:
            continue
        if f[0] == "quit":
            return
        r = {}
        start = time.perf_counter()
        try:
            if f[0] != "run" or len(f) != 3:
                raise ValueError("want: run VARIANT K")
            k = int(f[2])
            for _ in range(k):
                run(f[1])
            r["units"] = k
            done += k
        except Exception as e:  # reported to the runner, which stops
            r["error"] = repr(e)
        r["seconds"] = time.perf_counter() - start
        r["done"] = done
        say(r)


if __name__ == "__main__":
    main()
