"""jsmp: a PyTorch Lightning + Hydra experiment framework for Jane Street Market Prediction."""

__version__ = "0.1.0"
