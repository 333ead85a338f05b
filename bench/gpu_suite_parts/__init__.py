"""The parts of the GPU suite (bench/gpu_suite.py), one module per part, plus `common`."""
