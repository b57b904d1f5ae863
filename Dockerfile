# The application image for docker-compose users: the rtcrypto package, its services and
# spark-submit with the Kafka connector jars. The embedded stack (`make up`) does not use it.
FROM maven:3.9-eclipse-temurin-17 AS jars
COPY services/maven /maven
RUN cd /maven/spark-kafka && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=/jars/spark-kafka

FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt
COPY . .
RUN pip install --no-cache-dir -e . --no-deps
COPY --from=jars /jars /app/.rtc/lib
ENV RTC_HOME=/app/.rtc SPARK_LOCAL_IP=127.0.0.1 PYTHONUNBUFFERED=1
