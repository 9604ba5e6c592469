# Production image: granian serving config.wsgi (config/serve.py); the same image runs the Celery worker and beat.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt .
RUN python -m venv /venv && /venv/bin/pip install -r requirements.txt

FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DEBUG=False
RUN useradd --system --uid 10001 --home /app creditdesk
WORKDIR /app
COPY --from=build /venv /venv
COPY --chown=creditdesk:creditdesk . .
# WORKDIR made /app root's; the app user writes there (Celery beat's schedule file).
RUN chown creditdesk:creditdesk /app
# collectstatic needs settings but no database: a throwaway key for the build step only.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput
USER creditdesk
EXPOSE 8000
ENV HOST=0.0.0.0 PORT=8000
CMD ["python", "-m", "config.serve"]
