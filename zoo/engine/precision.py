"""Numeric precision and memory layout: autocast dtypes by name, bfloat16 where the CPU has it, channels-last."""
from __future__ import annotations

import contextlib

import torch
from torch import nn


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX). Elsewhere oneDNN has no bfloat16
    convolution and torch falls back to its reference kernels, about 15x slower than float32 on 2 AVX2 cores."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


# Both spellings, so zoo-eval's precision= and the trainer's amp_dtype take the same words.
AUTOCAST_DTYPES = {"fp32": None, "float32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
                   "fp16": torch.float16, "float16": torch.float16}


def autocast_dtype(name: str, key: str) -> torch.dtype | None:
    """The autocast dtype a precision name stands for (None: float32, no autocast); ``key`` names the option."""
    if name not in AUTOCAST_DTYPES:
        raise ValueError(f"{key} must be one of {list(AUTOCAST_DTYPES)}, got '{name}'")
    return AUTOCAST_DTYPES[name]


def memory_format(channels_last: bool) -> torch.memory_format:
    """The layout images and weights take: channels-last (NHWC convolutions are faster on the CPU) or plain."""
    return torch.channels_last if channels_last else torch.contiguous_format


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def compile_for_inference(model: nn.Module) -> nn.Module:
    """``torch.compile`` with frozen weights: inductor folds the parameters in as constants, so on the CPU
    convolution weights are prepacked for oneDNN once instead of on every call. The first call compiles
    (tens of seconds; needs a C++ compiler on the CPU); data-dependent post-processing (NMS) stays eager
    behind graph breaks. Sets inductor's global ``freezing`` flag, which only affects inference."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(model)
