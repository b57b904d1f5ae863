"""``rtc``: one command line in front of the platform. Sub-commands live in sibling modules."""

from __future__ import annotations

import typer

from rtcrypto.cli import (
    airflow,
    bars,
    forecast,
    history,
    ingest,
    liquidity,
    market,
    platform,
    prepare,
    report,
    service,
    stack,
    trader,
)
from rtcrypto.config import settings_or_exit

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def _check_settings() -> None:
    """Every command starts by reading the RTC_* settings: bad ones exit 2 with a message."""
    settings_or_exit()


app.add_typer(stack.app, name="stack", help="Start, stop and inspect the embedded local services.")
app.add_typer(history.app, name="history", help="Import minute-bar history and show what is there.")
app.add_typer(
    forecast.app, name="forecast", help="Train, backtest and publish the Prophet forecast."
)
app.add_typer(liquidity.app, name="liquidity", help="The Spark liquidity job and its output.")
app.add_typer(bars.app, name="bars", help="The Spark job recording the feed's own minute bars.")
app.add_typer(service.app, name="service", help="Run one streaming service in the foreground.")
market.register(app)  # rtc simulate
ingest.register(app)  # rtc ingest
platform.register(app)  # rtc up, rtc down, rtc status
prepare.register(app)  # rtc prepare (docker-compose's bootstrap service)
trader.register(app)  # rtc trader
report.register(app)  # rtc report
airflow.register(app)  # rtc airflow (Airflow's CLI on the platform's Airflow)

if __name__ == "__main__":
    app()
