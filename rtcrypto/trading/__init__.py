"""The one decision path shared by the trader (paper, sandbox, live) and the backtests.

What lives here: the strategy (``strategy``: the side and size an intent asks for), the risk gate
(``risk``), the ledger (``ledger``: fills, balances, round trips, equity), the order value types
(``order_types``: ``OrderRequest``, ``TopOfBook``), the simulated account (``account``) and the
backtests (``backtest`` over minute bars, ``record_backtest`` over a streaming run's records).
It is pure: no clock, no network, no Kafka, Elasticsearch or exchange I/O. It may import
``rtcrypto.market`` and the root utilities (``rtcrypto.config``, ``rtcrypto.logs``,
``rtcrypto.bounded``) only; the exchange adapters and the trader service build on it.

``orders``: pure sizing (``price_intent``), the risk state and gate in front of an order
(``risk_state_for``, ``size_order``) and the paper fill model (``ioc_fill``, ``taker_fee_usd``).
``record_backtest``: the backtest fed what a streaming run saw (liquidity records and the
exchange's quotes) and ``first_difference`` between two order lists.
The strategy, the risk gate and the ledger are the rules these functions apply.
"""
