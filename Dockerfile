# One image for every alarmflow flow; docker-compose.yml picks the flow per service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY alarmflow ./alarmflow
COPY flows ./flows
COPY operators ./operators
COPY state ./state
COPY samples ./samples
RUN pip install --no-cache-dir .
ENV ALARMFLOW_METRICS_ADDR=0.0.0.0
CMD ["python", "-m", "alarmflow.launch", "flows.alert", "-r", "/recovery", "-s", "5", "-b", "30"]
