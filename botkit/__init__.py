"""botkit: OAuth-scoped trading bots for WhiteBIT, with backtests and a local sandbox exchange."""

from botkit.market.types import BookSnapshot, Candle, Trade, TradeBatch
from botkit.strategy import Context, Strategy

__version__ = "0.1.0"
__all__ = ["BookSnapshot", "Candle", "Context", "Strategy", "Trade", "TradeBatch", "__version__"]
