"""Huge pages for big CPU tensors: PyTorch's THP_MEM_ALLOC_ENABLE, on by default in jsmp.

glibc hands every freed block over 32 MB back to the kernel, so a training step that
allocates the same big tensors every time (an LSTM's activations, a batch of windows) gets
fresh memory every step, faulted in and zeroed by the kernel 4 KB at a time: about half of a
CPU LSTM step (`python -m jsmp.bench hugepages`). With THP_MEM_ALLOC_ENABLE=1, PyTorch's CPU
allocator asks the kernel for 2 MB transparent huge pages for tensors of 2 MB and more: 512
times fewer faults. PyTorch leaves it off because memory use rises a little (here, peak RSS
of LSTM training: +1% at batch 4096, +5% at batch 256 with W=128).

PyTorch reads the variable once, at its first CPU allocation, so it is set when jsmp is
imported (jsmp/__init__.py), before torch, unless the environment already sets it:
`THP_MEM_ALLOC_ENABLE=0 python train.py ...` turns it off.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "THP_MEM_ALLOC_ENABLE"
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")  # "always [madvise] never": [] marks the mode


def default_huge_pages() -> None:
    """Turn PyTorch's huge-page allocation on unless the environment says otherwise (before torch allocates)."""
    os.environ.setdefault(ENV, "1")


def kernel_offers_huge_pages() -> bool:
    """Whether the kernel's transparent huge pages are available: its THP mode is not [never]."""
    try:
        return "[never]" not in THP_MODE.read_text()
    except OSError:  # not Linux, or no THP support
        return False


def huge_pages_in_effect() -> bool:
    """Whether this process's big CPU tensors get huge pages: PyTorch then starts them on a page
    boundary (its default 64-byte alignment leaves them off one) and the kernel offers them."""
    import torch

    probe = torch.empty(1 << 20)  # 4 MB
    return probe.data_ptr() % os.sysconf("SC_PAGESIZE") == 0 and kernel_offers_huge_pages()
