# Production image: the package, the shipped tier files, a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BILLING_TIERS_DIR=/app/pricing_tiers \
    BILLING_DATABASE_URL=sqlite:////data/billing.db

WORKDIR /app
RUN useradd --create-home --uid 10001 billing && mkdir -p /data && chown billing /data

COPY pyproject.toml README.md ./
COPY billing ./billing
RUN pip install .
COPY pricing_tiers ./pricing_tiers

USER billing
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
CMD ["billing", "serve", "--host", "0.0.0.0", "--port", "8000"]
