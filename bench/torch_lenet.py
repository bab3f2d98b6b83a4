"""LeNet (BVLC MNIST layout) FP32 training throughput in PyTorch CPU, for bench/train.ts.

Same net as examples/caffe_retrain/lenet_train_test.prototxt: conv 20@5x5, max-pool 2/2,
conv 50@5x5, max-pool 2/2, fc 500, ReLU, fc 10, softmax cross-entropy; SGD with momentum
0.9 and weight decay 5e-4, batch 64. Random inputs (throughput does not depend on the
values). Prints one JSON line.
Usage: /usr/bin/python3 bench/torch_lenet.py [iterations] [threads]
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.ip1 = nn.Linear(800, 500)
        self.ip2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2, 2)
        x = F.max_pool2d(self.conv2(x), 2, 2)
        x = F.relu(self.ip1(x.flatten(1)))
        return self.ip2(x)


def main():
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = LeNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))

    def step():
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(iterations):
        step()
    dt = time.perf_counter() - t0
    config = torch.__config__.show()
    blas = next((f.split("=", 1)[1] for f in config.replace(",", " ").split() if f.startswith("BLAS_INFO=")), "unknown")
    print(json.dumps({
        "torch": torch.__version__,
        "blas": blas,
        "threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "iterations": iterations,
        "ms_per_iteration": 1000 * dt / iterations,
        "images_per_second": 64 * iterations / dt,
    }))


if __name__ == "__main__":
    main()
