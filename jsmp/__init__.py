"""jsmp: a PyTorch Lightning + Hydra experiment framework for Jane Street Market Prediction."""

from jsmp.allocator import default_huge_pages

default_huge_pages()  # before anything imports torch (see jsmp/allocator.py)

__version__ = "0.1.0"
