"""kernelsmith: an evolutionary optimizer that turns PyTorch modules into faster, verified Triton kernels."""

__version__ = "0.1.0"
