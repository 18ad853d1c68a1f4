"""The torchvision counterpart of benches/data_pipeline.rs.

Same images (256-px JPEGs written by `fastburn synth` or the bench itself into
$TMPDIR/fastburn-bench-data-256), same steps: PIL decode → resize to 64 / 128 → random
dihedral + rotation ±10° (reflection padding) + zoom ≤ 1.05 + brightness/contrast 0.05 →
tensor → ImageNet normalisation → batches of 32, with 1 and 2 DataLoader workers.

    /tmp/venv/bin/pip install torch torchvision pillow
    /tmp/venv/bin/python scripts/bench_torchvision.py [IMAGE_DIR]

Prints one line per configuration: `torchvision size=64 workers=1 img_s=...`.
"""
import os
import sys
import tempfile
import time

import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

torch.set_num_threads(1)
root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    tempfile.gettempdir(), "fastburn-bench-data-256", "train-jpg")
files = sorted(os.path.join(root, f) for f in os.listdir(root) if f.endswith(".jpg"))


class Dihedral:
    def __call__(self, img):
        k = torch.randint(0, 8, ()).item()
        if k >= 4:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        for _ in range(k % 4):
            img = img.transpose(Image.ROTATE_90)
        return img


class Files(torch.utils.data.Dataset):
    def __init__(self, size):
        self.tf = T.Compose([
            T.Resize(size),
            Dihedral(),
            T.RandomAffine(degrees=10, scale=(1.0, 1.05)),
            T.ColorJitter(brightness=0.05, contrast=0.05),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ])

    def __len__(self):
        return len(files)

    def __getitem__(self, i):
        return self.tf(Image.open(files[i]).convert("RGB"))


for size in (64, 128):
    for workers in (1, 2):
        dl = torch.utils.data.DataLoader(Files(size), batch_size=32, shuffle=True,
                                         num_workers=workers, persistent_workers=True)
        for _ in dl:  # warm-up epoch (starts the workers)
            pass
        reps, t0 = 5, time.perf_counter()
        for _ in range(reps):
            for _ in dl:
                pass
        dt = time.perf_counter() - t0
        print(f"torchvision size={size} workers={workers} img_s={reps * len(files) / dt:.0f}",
              flush=True)
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
