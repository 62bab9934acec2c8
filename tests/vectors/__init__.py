"""Public test vectors, read from ../shared/vectors beside the checkout."""
from pathlib import Path

VECTORS = (Path(__file__).resolve().parent.parent.parent / "../shared/vectors").resolve()
