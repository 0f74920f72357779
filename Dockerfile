# Mail Marketer as a container: the app installed as a wheel on a slim Python, run as a
# non-root user, data under the /data volume. `compose.yaml` runs PostgreSQL, one web process and
# two workers from this image (docs/operations.md, "Containers").

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mailmarketer ./mailmarketer
# The help pages: mailmarketer/web/docs is a link to docs/, followed when the wheel is built.
COPY docs ./docs
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MM_DATA_DIR=/data \
    MM_LOG_FORMAT=json
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home mailmarketer \
 && mkdir /data && chown mailmarketer:mailmarketer /data && chmod 0700 /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --disable-pip-version-check /wheels/*.whl && rm -rf /wheels
USER mailmarketer
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["mailmarketer"]
CMD ["web", "--bind", "0.0.0.0:8000"]
