"""One place that decides where a command computes: CPU, or which GPU index(es).

The choice is made once from `--cpu-only` / `--force-gpu-idxs` and handed to worker processes as
environment variables set before any framework is imported, which every Keras backend honours
(TensorFlow, PyTorch and JAX all read CUDA_VISIBLE_DEVICES).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from core.errors import UserError


def parse_gpu_idxs(text: str | None) -> tuple[int, ...]:
    """'0,1' -> (0, 1); empty or None -> () meaning 'all visible GPUs'."""
    if not text:
        return ()
    try:
        idxs = tuple(int(part) for part in text.replace(" ", "").split(",") if part != "")
    except ValueError:
        raise UserError(f"--force-gpu-idxs expects comma-separated GPU numbers like 0,1, got '{text}'") from None
    if any(i < 0 for i in idxs):
        raise UserError(f"--force-gpu-idxs: GPU numbers start at 0, got '{text}'")
    return idxs


def visible_gpus() -> list[int]:
    """Indices of NVIDIA GPUs seen by the driver, without importing a framework (cheap, no CUDA init)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [i for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


@dataclass(frozen=True)
class DeviceChoice:
    """Where to compute: `cpu_only`, or the GPU indices to use (empty = every visible GPU)."""

    cpu_only: bool = False
    gpu_idxs: tuple[int, ...] = ()

    @classmethod
    def from_flags(cls, cpu_only: bool = False, force_gpu_idxs: str | None = None) -> "DeviceChoice":
        return cls(cpu_only=cpu_only, gpu_idxs=() if cpu_only else parse_gpu_idxs(force_gpu_idxs))

    def gpus(self) -> list[int]:
        """The GPUs this command will use (none when CPU-only or when none is present)."""
        if self.cpu_only:
            return []
        available = visible_gpus()
        if not self.gpu_idxs:
            return available
        missing = [i for i in self.gpu_idxs if i not in available]
        if missing:
            raise UserError(f"--force-gpu-idxs: no GPU {missing[0]} here (found {len(available)} GPU(s))")
        return list(self.gpu_idxs)

    def env(self, gpu_idxs: list[int] | None = None) -> dict[str, str]:
        """Environment that restricts a process to `gpu_idxs` (default: this choice's GPUs)."""
        if self.cpu_only:
            return {"CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu"}
        idxs = self.gpus() if gpu_idxs is None else gpu_idxs
        if not idxs and not self.gpu_idxs:
            return {}
        return {"CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in idxs)}

    def worker_envs(self, cpu_workers: int) -> tuple[int, list[dict[str, str]]]:
        """(worker count, one environment per worker): one worker per GPU, else `cpu_workers` on CPU."""
        gpus = self.gpus()
        if gpus:
            return len(gpus), [self.env([g]) for g in gpus]
        cpu_env = {"CUDA_VISIBLE_DEVICES": "-1", "JAX_PLATFORMS": "cpu"}
        return cpu_workers, [cpu_env]

    def apply(self) -> None:
        """Restrict this process (call before importing a framework)."""
        os.environ.update(self.env())
