# The same steps as the README's "Deploy" section: install the pinned dependencies, then
# the code, and run `accessbot serve`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=3000 \
    DATABASE_URL=sqlite:////data/accessbot.db \
    ACCESSBOT_CONFIG=/config/accessbot.yaml

WORKDIR /app
# Dependencies first, from the lock file: a change to the code does not reinstall them.
COPY pyproject.toml requirements.lock ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--no-cache-dir', \
'-c', 'requirements.lock', *deps])"
# Then the code, without tests, scripts or the demo.
COPY bot.py settings.py alembic.ini LICENSE ./
COPY aws ./aws
COPY handlers ./handlers
COPY jobs ./jobs
COPY models ./models
COPY migrations ./migrations
COPY services ./services
RUN pip install --no-cache-dir --no-deps . \
    && useradd --uid 10001 --no-create-home accessbot \
    && mkdir -p /data /config && chown accessbot /data

USER accessbot
EXPOSE 3000
VOLUME ["/data"]
# SIGTERM lets the worker finish what it started, for DRAIN_SECONDS (8 s): inside `docker stop`'s
# default 10 s. (Kubernetes: terminationGracePeriodSeconds 30 is ample.)
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz')"
CMD ["accessbot", "serve"]
