from pathlib import Path

from botkit.plugins import load_strategy_class

ROOT = Path(__file__).resolve().parents[2]


def load(rel: str, name: str):
    return load_strategy_class(f"{ROOT / rel}:{name}")
