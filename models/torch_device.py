"""The torch device a training runs on, checked before minutes of data generation."""

from __future__ import annotations

from foveate.system.errors import ConfigError


def resolve_device(name: str):
    """``name`` (``cpu``, ``cuda``, ``cuda:N``) as a ``torch.device``; a clear error for one this machine lacks."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: expected cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r}: expected cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: this torch ({torch.__version__}) sees no CUDA GPU; use --device cpu")
    return device


def describe(device: str) -> str:
    """The machine a run used, for weight cards: CPU architecture, torch, threads and the GPU if any."""
    import platform

    import torch

    cpu = f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    dev = torch.device(device)
    return f"{cpu}, GPU {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else cpu


def cpu_state_dict(module) -> dict:
    """``module``'s state on the CPU, so a checkpoint written on a GPU loads anywhere."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}
