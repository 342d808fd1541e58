"""Repository root on sys.path, so every test can import the shared `tools` package
(the Outspeed stand-in, the function server) however pytest is invoked."""
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
