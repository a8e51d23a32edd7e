"""Where the golden tlog vectors are: vendored here (README.md), or HUB_VECTORS_DIR."""

import os
from pathlib import Path

VENDORED = Path(__file__).resolve().parent
TLOG_VECTORS = Path(os.environ.get("HUB_VECTORS_DIR") or VENDORED / "tlog")
