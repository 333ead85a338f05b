"""valuecsv-ray: audit the Core Socialist Values expressed by LLM outputs, at scale, on Ray.

    valuecsv-ray train --config configs/train/quickstart.yaml
    valuecsv-ray registry show runs/quickstart
"""

__version__ = "0.1.0"
