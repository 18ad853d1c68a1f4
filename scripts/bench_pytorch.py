"""PyTorch's side of `fastburn bench`: the same model and steps, on the same machine.

Model: a torchvision ResNet cut before its pooling + fastai's head (concat pool, BN,
dropout, linear 512 without bias, ReLU, BN, dropout, linear to 17 classes without bias).
Training step: forward, BCE-with-logits loss, backward, SGD (momentum 0.9) step.
Inference: forward in eval mode under no_grad. Random inputs and multi-hot targets.

    /tmp/venv/bin/pip install torch torchvision
    /tmp/venv/bin/python scripts/bench_pytorch.py --arch resnet34 --size 64 --bs 64 --iters 5 --threads 2

Prints one line: `pytorch arch=… size=… bs=… threads=… train_img_s=… infer_img_s=…`.
"""
import argparse
import time

import torch
import torch.nn as nn
import torchvision


class ConcatPool(nn.Module):
    def forward(self, x):
        return torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)


def model(arch, n_classes):
    net = getattr(torchvision.models, arch)(weights=None)
    if arch.startswith("resnet"):
        body = nn.Sequential(*list(net.children())[:-2])
        nf = 512 if arch in ("resnet18", "resnet34") else 2048
    else:  # mobilenet_v2, efficientnet_b0: the body is `features`, as in fastburn
        body = net.features
        nf = net.classifier[-1].in_features
    head = nn.Sequential(
        ConcatPool(), nn.BatchNorm1d(2 * nf), nn.Dropout(0.25), nn.Linear(2 * nf, 512, bias=False),
        nn.ReLU(inplace=True), nn.BatchNorm1d(512), nn.Dropout(0.5), nn.Linear(512, n_classes, bias=False))
    return nn.Sequential(body, head)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="resnet34")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--classes", type=int, default=17)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    m = model(a.arch, a.classes).to(dev)
    opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.BCEWithLogitsLoss()
    x = torch.randn(a.bs, 3, a.size, a.size, device=dev)
    y = (torch.rand(a.bs, a.classes, device=dev) < 0.2).float()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    m.train()
    for i in range(a.warmup + a.iters):
        if i == a.warmup:
            sync()
            t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(m(x), y)
        loss.backward()
        opt.step()
        loss.item()
    sync()
    train = a.iters * a.bs / (time.perf_counter() - t0)

    m.eval()
    with torch.no_grad():
        for i in range(a.warmup + a.iters):
            if i == a.warmup:
                sync()
                t0 = time.perf_counter()
            m(x).sum().item()
    sync()
    infer = a.iters * a.bs / (time.perf_counter() - t0)
    print(f"pytorch arch={a.arch} size={a.size} bs={a.bs} threads={a.threads} "
          f"train_img_s={train:.1f} infer_img_s={infer:.1f} (torch {torch.__version__})", flush=True)


if __name__ == "__main__":
    main()
