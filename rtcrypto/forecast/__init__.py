"""Forecast: Prophet on log price (fast or book parity), walk-forward backtest, gated publish.

from rtcrypto.forecast import prepare, train, forecast
model = train(prepare(load_history("binance")))
frame = forecast(model, minutes=150_000)   # ds, yhat, yhat_lower, yhat_upper, side
"""

from rtcrypto.forecast.model import (
    BUY_SIDE,
    DEFAULT_HORIZON_MINUTES,
    FORECAST_COLUMNS,
    SELL_SIDE,
    ForecastError,
    ForecastModel,
    TrainOptions,
    aggregate,
    choose_bucket_minutes,
    forecast,
    prepare,
    side_codes,
    sides_from_yhat,
    train,
)

__all__ = [
    "BUY_SIDE",
    "DEFAULT_HORIZON_MINUTES",
    "FORECAST_COLUMNS",
    "SELL_SIDE",
    "ForecastError",
    "ForecastModel",
    "TrainOptions",
    "aggregate",
    "choose_bucket_minutes",
    "forecast",
    "prepare",
    "side_codes",
    "sides_from_yhat",
    "train",
]
