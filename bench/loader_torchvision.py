#!/usr/bin/python3
"""The torchvision side of the loader benchmark (see bench/loader).

Run it with Debian's system python, which has python3-torch,
python3-torchvision and python3-pil:

    /usr/bin/python3 bench/loader_torchvision.py make DIR [--count 2000]
    /usr/bin/python3 bench/loader_torchvision.py run DIR [--workers 2] [--batch 32] [--epochs 3]
    /usr/bin/python3 bench/loader_torchvision.py serve DIR [--workers 2] [--batch 32]

"make" writes an ImageFolder of real JPEGs: the first COUNT Fashion-MNIST
training images from Debian's dataset-fashion-mnist package, one folder per
class, upscaled to 256x256 with PIL's bicubic filter, converted to RGB and
saved as JPEG quality 90. It does nothing when DIR already holds COUNT
images.

"run" times torchvision's DataLoader over DIR with the standard training
transforms (RandomResizedCrop(224), RandomHorizontalFlip(), ToTensor(),
Normalize(ImageNet)), PIL decoding, shuffling, WORKERS worker processes
kept alive across epochs, and prints one JSON object per epoch:
{"epoch": e, "images": n, "seconds": s, "images_per_s": r, "cpu_seconds": c},
where c is the CPU time (user and system) that the main process and the
workers spent in the epoch, worker start-up included.

"serve" does the same, one epoch for each line it reads on stdin: it lets
bench/loader run the two loaders' epochs in turn, so that both see the
same load from whatever else runs on the machine.
"""

import argparse
import gzip
import json
import os
import sys
import time

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
MNIST = "/usr/share/datasets/fashion-mnist"


def make(root, count):
    import numpy as np
    from PIL import Image

    have = sum(len(files) for _, _, files in os.walk(root)) if os.path.isdir(root) else 0
    if have == count:
        return
    if have:
        sys.exit("%s holds %d files, want %d: remove it first" % (root, have, count))
    with gzip.open(os.path.join(MNIST, "train-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(MNIST, "train-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    for c in CLASSES:
        os.makedirs(os.path.join(root, c), exist_ok=True)
    for i in range(count):
        img = Image.fromarray(images[i], "L").resize((256, 256), Image.BICUBIC).convert("RGB")
        img.save(os.path.join(root, CLASSES[labels[i]], "%05d.jpg" % i), "JPEG", quality=90)


def cpu_seconds(pids):
    """Returns the user and system CPU time of the processes pids."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def epochs(root, workers, batch):
    """Yields, epoch after epoch, the JSON line that measures it."""
    import torch
    from torchvision import datasets, transforms

    tf = transforms.Compose([
        transforms.RandomResizedCrop(224),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    ds = datasets.ImageFolder(root, transform=tf)
    torch.manual_seed(1)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch, shuffle=True, num_workers=workers,
        persistent_workers=workers > 0)
    cpu = cpu_seconds([os.getpid()])  # workers start at 0
    epoch = 0
    while True:
        n = 0
        start = time.perf_counter()
        for images, labels in loader:
            assert images.shape[1:] == (3, 224, 224) and labels.dtype == torch.int64
            n += images.shape[0]
        s = time.perf_counter() - start
        pids = [os.getpid()] + [w.pid for w in getattr(loader._iterator, "_workers", [])]
        now = cpu_seconds(pids)
        yield json.dumps({"epoch": epoch, "images": n, "seconds": s, "images_per_s": n / s,
                          "cpu_seconds": now - cpu})
        cpu = now
        epoch += 1


def run(root, workers, batch, count):
    """Prints the measures of count epochs."""
    for _, line in zip(range(count), epochs(root, workers, batch)):
        print(line, flush=True)


def serve(root, workers, batch):
    """Runs an epoch and prints its measure for every line read from
    stdin, so that bench/loader can interleave them with its own."""
    it = epochs(root, workers, batch)
    for _ in sys.stdin:
        print(next(it), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--count", type=int, default=2000)
    for cmd in ("run", "serve"):
        r = sub.add_parser(cmd)
        r.add_argument("dir")
        r.add_argument("--workers", type=int, default=2)
        r.add_argument("--batch", type=int, default=32)
        if cmd == "run":
            r.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    if a.cmd == "make":
        make(a.dir, a.count)
    elif a.cmd == "run":
        run(a.dir, a.workers, a.batch, a.epochs)
    else:
        serve(a.dir, a.workers, a.batch)


if __name__ == "__main__":
    main()
