"""PyTorch's own eager training loop with gpubench's settings.

Synthetic images, cross-entropy, SGD (lr 0.1, momentum 0.9, weight decay
1e-4, PyTorch's default implementation), cuDNN benchmark mode, and by
default bfloat16 autocast and the channels-last layout on CUDA. It prints
one line in gpubench's format, then the peak memory PyTorch's allocator saw.
"""
import argparse
import time

import torch
import torch.nn.functional as F
import torchvision


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--amp", choices=["bf16", "fp16", "off"], default="bf16")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=30)
    a = p.parse_args()

    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    m = getattr(torchvision.models, a.arch)(num_classes=a.classes).to(dev, memory_format=fmt)
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    if hasattr(torch.amp, "GradScaler"):  # torch 2.3 and later
        scaler = torch.amp.GradScaler("cuda", enabled=a.amp == "fp16")
    else:
        scaler = torch.cuda.amp.GradScaler(enabled=a.amp == "fp16")
    dtype = torch.float16 if a.amp == "fp16" else torch.bfloat16
    x = torch.randn(a.batch, 3, a.size, a.size, device=dev).contiguous(memory_format=fmt)
    y = torch.randint(0, a.classes, (a.batch,), device=dev)

    def step(read):
        with torch.autocast("cuda", dtype=dtype, enabled=a.amp != "off"):
            loss = F.cross_entropy(m(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        return loss.item() if read else None

    for _ in range(a.warmup):
        step(False)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(a.steps):
        loss = step(i == a.steps - 1)
    torch.cuda.synchronize()
    secs = time.perf_counter() - start
    layout = "channels_last" if a.channels_last else "contiguous"
    print(f"pytorch {torch.__version__}: {a.arch}, batch {a.batch} at {a.size}, {a.amp}, {layout}, cuda:0: "
          f"{a.batch * a.steps / secs:.1f} images/s ({a.steps} steps in {secs:.2f} s, loss {loss:.3f})")
    mib = 1 << 20
    print(f"pytorch: peak memory {torch.cuda.max_memory_allocated() / mib:.0f} MiB allocated, "
          f"{torch.cuda.max_memory_reserved() / mib:.0f} MiB reserved by the caching allocator")


if __name__ == "__main__":
    main()
