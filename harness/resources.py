"""Peak memory probes: process RSS (psutil) and, on CUDA, the torch allocator's peak."""

from __future__ import annotations

import threading

import psutil
import torch


def rss_mb() -> float:
    """Resident set size of this process, MB."""
    return psutil.Process().memory_info().rss / 2**20


class RssPeak:
    """Highest RSS seen by a sampling thread while the context is open (ru_maxrss would include
    the peaks of imports and env construction; `harness profile` uses this)."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, rss_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())


class PeakMemory:
    def __init__(self, device: torch.device):
        self.device = device
        self.cpu_rss_peak_mb = 0.0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def sample(self) -> None:
        self.cpu_rss_peak_mb = max(self.cpu_rss_peak_mb, rss_mb())

    def as_dict(self) -> dict:
        self.sample()
        out = {"cpu_rss_peak_mb": round(self.cpu_rss_peak_mb, 1)}
        if self.device.type == "cuda":
            out["gpu_mem_peak_torch_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return out
