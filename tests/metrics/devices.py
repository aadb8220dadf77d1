"""The devices the metric engine is tested on: the CPU, and CUDA where this machine has it."""

from sftscope.runtime import cuda_available

DEVICES = ["cpu"] + (["cuda"] if cuda_available() else [])
