"""Airflow hooks, sensors, operators and assets of Real-Time Crypto.

``hooks`` (service supervision, Elasticsearch, the connections ``rtc up`` creates),
``kaggle_hook`` (the Kaggle download of ``history_download``), ``sensors`` (heartbeat health,
Kafka lag), ``operators`` (start, stop, restart a service) and ``assets`` (``rtc_history``,
``rtc_forecast``, ``forecast_retrain``'s schedule). Airflow puts ``[core] plugins_folder`` on
``sys.path`` when it initialises (``rtc stack up`` sets ``AIRFLOW__CORE__PLUGINS_FOLDER`` to this
repo's ``plugins/``), so DAGs import ``rtc_airflow.sensors`` and friends directly. Every module
imports ``rtcrypto`` inside methods only: the scheduler parses DAG files constantly, and the
plugin manager imports this folder (every file also under its bare name: none may be named after
an installed package).
"""
