"""FrameParser is pure: no event loop, no clock; the same frames give the same events, and a depth break is an
event (the caller decides to resubscribe), after which deltas wait for a fresh snapshot."""

from __future__ import annotations

import json

from botkit.whitebit.ws import (
    BookChanged,
    BookTop,
    CandleRow,
    DepthBook,
    DepthGap,
    FrameParser,
    TradePrinted,
    WsClient,
    _CandleState,
)


def frame(method: str, params: list) -> str:
    return json.dumps({"id": None, "method": method, "params": params})


FRAMES = [
    frame("depth_update", [True, {"update_id": 10, "asks": [["101", "1"]], "bids": [["99", "2"]]}, "BTC_USDT"]),
    frame("depth_update", [False, {"update_id": 11, "past_update_id": 10, "bids": [["99", "0"], ["98", "5"]]},
                           "BTC_USDT"]),
    frame("depth_update", [False, {"update_id": 13, "past_update_id": 12, "asks": [["100", "1"]]}, "BTC_USDT"]),
    frame("depth_update", [False, {"update_id": 14, "past_update_id": 13, "asks": [["100", "1"]]}, "BTC_USDT"]),
    frame("trades_update", ["BTC_USDT", [{"id": 7, "time": 1700000000.25, "price": "100.5", "amount": "0.1",
                                          "type": "sell"}]]),
    frame("candles_update", [[1700000000, "1", "2", "3", "0.5", "10", "20", "BTC_USDT"]]),
    frame("candles_update", [[1700000060, "2", "2", "2", "2", "1", "2", "BTC_USDT"]]),
    frame("bookTicker_update", [[1700000000.1, 1700000000.2, "BTC_USDT", 5, "99", "2", "101", "1"]]),
    json.dumps({"id": 3, "result": "pong", "error": None}),
    "not json",
]


def parser() -> FrameParser:
    p = FrameParser()
    p.books["BTC_USDT"] = DepthBook("BTC_USDT", 20)
    p.candles = _CandleState("BTC_USDT", 60)
    return p


def test_frames_to_events_without_an_event_loop():
    events = run(FRAMES)
    again = run(FRAMES)
    assert events == again
    books = [e for e in events if isinstance(e, BookChanged)]
    assert [b.update_id for b in books] == [10, 11]  # 13 broke the chain, 14 waits for a snapshot
    assert books[0].book.time_ms == 42  # no timestamp in the frame: the caller's receive time
    assert books[1].book.bids == ((98.0, 5.0),) and books[1].book.asks == ((101.0, 1.0),)
    assert [e for e in events if isinstance(e, DepthGap)] == [DepthGap("BTC_USDT", 11, 12)]
    (trade,) = [e.trade for e in events if isinstance(e, TradePrinted)]
    assert (trade.time_ms, trade.price, trade.amount, trade.side, trade.trade_id) == \
        (1700000000250, 100.5, 0.1, "sell", 7)
    (row,) = [e for e in events if isinstance(e, CandleRow)]
    c = row.candle()  # WhiteBIT's order [t, open, close, high, low, ...]
    assert (c.time_ms, c.open, c.close, c.high, c.low, c.volume) == (1700000000000, 1.0, 2.0, 3.0, 0.5, 10.0)
    assert [e for e in events if isinstance(e, BookTop)] == [BookTop("BTC_USDT", 1700000000200, 5, 99.0, 2.0,
                                                                     101.0, 1.0)]


def run(frames: list[str]) -> list:
    """One fresh parser through all the frames, at a fixed receive time."""
    p = parser()
    return [ev for raw in frames for ev in p.parse(raw, now_ms=42)]


def test_the_live_client_parses_with_a_frame_parser():
    client = WsClient("ws://127.0.0.1:9/ws", lambda ev: None)
    client.subscribe_depth("BTC_USDT", 20)
    client.subscribe_candles("BTC_USDT", 60)
    assert isinstance(client.parser, FrameParser)
    assert client.books is client.parser.books and "BTC_USDT" in client.parser.books
    assert client.parser.candles is not None and client.parser.candles.interval == 60
