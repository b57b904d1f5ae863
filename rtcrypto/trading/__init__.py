"""The one decision path shared by the trader (paper, sandbox, live) and the backtests.

``orders``: pure sizing (``price_intent``), the risk state and gate in front of an order
(``risk_state_for``, ``size_order``) and the paper fill model (``ioc_fill``, ``taker_fee_usd``).
``record_backtest``: the backtest fed what a streaming run saw (liquidity records and the
exchange's quotes) and ``first_difference`` between two order lists.
The strategy (``rtcrypto.trading.strategy``), the risk gate (``rtcrypto.trading.risk``) and the ledger
(``rtcrypto.trading.ledger``) are the rules these functions apply.
"""
