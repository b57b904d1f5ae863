# The application image of docker-compose.yml: the rtcrypto package, its services, Airflow and
# spark-submit with Spark's Kafka connector. The embedded stack (`make up`) does not use it.
# Build context: the repository (.dockerignore keeps .env, .venv and .rtc out of the image).

# Spark's Kafka connector from Maven Central, with the same pom as the local stack; must match
# pyspark's version (requirements.txt) and Settings.spark_version.
FROM maven:3.9-eclipse-temurin-17 AS jars
ARG SPARK_VERSION=4.2.0
COPY services/maven/spark-kafka/pom.xml /maven/spark-kafka/pom.xml
RUN mvn -q -B -f /maven/spark-kafka/pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -Dspark.version=${SPARK_VERSION} -DoutputDirectory=/jars/spark-kafka

FROM python:3.11-slim-bookworm
# Java 17 for spark-submit; procps for ps/pkill inside a container when debugging.
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*
# One unprivileged user owns the state folders; named volumes mounted there inherit the owner.
RUN useradd --uid 50000 --create-home --shell /usr/sbin/nologin rtc
WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt
COPY --chown=rtc:rtc . .
RUN pip install --no-cache-dir --no-deps -e . \
    && mkdir -p /app/.rtc/history /app/.rtc/forecast /app/.rtc/trader /app/.rtc/airflow \
         /app/.rtc/run/checkpoints /app/.rtc/simulator \
    && chown -R rtc:rtc /app/.rtc
# Outside RTC_HOME, so no volume mounted under /app/.rtc ever hides them.
COPY --from=jars /jars/spark-kafka /opt/rtc/jars/spark-kafka
ENV RTC_HOME=/app/.rtc \
    SPARK_LOCAL_IP=127.0.0.1 \
    PYTHONUNBUFFERED=1
USER rtc
