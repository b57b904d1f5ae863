"""Airflow hooks, sensors and operators of Real-Time Crypto (the streaming supervisor).

Airflow puts ``[core] plugins_folder`` on ``sys.path`` when it initialises (``rtc stack up``
sets ``AIRFLOW__CORE__PLUGINS_FOLDER`` to this repo's ``plugins/``), so DAGs import
``rtc_airflow.sensors`` and friends directly. Every module imports ``rtcrypto`` inside methods
only: the scheduler parses DAG files constantly, and the plugin manager imports this folder.
"""
