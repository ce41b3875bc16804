"""Peak memory probes: process RSS (psutil) and, on CUDA, the torch allocator's peak."""

from __future__ import annotations

import psutil
import torch


class PeakMemory:
    def __init__(self, device: torch.device):
        self.device = device
        self._process = psutil.Process()
        self.cpu_rss_peak_mb = 0.0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def sample(self) -> None:
        self.cpu_rss_peak_mb = max(self.cpu_rss_peak_mb, self._process.memory_info().rss / 2**20)

    def as_dict(self) -> dict:
        self.sample()
        out = {"cpu_rss_peak_mb": round(self.cpu_rss_peak_mb, 1)}
        if self.device.type == "cuda":
            out["gpu_mem_peak_torch_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return out
