# The same steps as the README's "Deploy" section: install the package, run bot.py.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=3000 \
    DATABASE_URL=sqlite:////data/accessbot.db \
    ACCESSBOT_CONFIG=/config/accessbot.yaml

WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir . \
    && useradd --uid 10001 --no-create-home accessbot \
    && mkdir -p /data /config && chown accessbot /data

USER accessbot
EXPOSE 3000
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=3s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz')"
CMD ["python", "bot.py"]
