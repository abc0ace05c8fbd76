# One image for every alarmflow flow; docker-compose.yml picks the flow per service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY alarmflow ./alarmflow
COPY flows ./flows
COPY operators ./operators
COPY state ./state
COPY samples ./samples
# Editable, so that the C extension is compiled next to the sources the flows run from; the
# compiler is removed again in the same layer.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && pip install --no-cache-dir -e . \
 && apt-get purge -y --auto-remove gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV ALARMFLOW_METRICS_ADDR=0.0.0.0
CMD ["python", "-m", "alarmflow.launch", "flows.alert", "-r", "/recovery", "-s", "5", "-b", "30"]
