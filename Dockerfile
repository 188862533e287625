# alb-sg-monitor container image.
# Two stages: the first builds a virtualenv from the pinned constraints, the second copies only
# that virtualenv onto a clean base, so no compiler, pip cache or build backend ships.
# BASE_IMAGE must provide python3 with the venv module; the default is the official slim image,
# and scripts/build-image passes the Debian base scripts/base-image makes where no registry can be
# reached.
ARG BASE_IMAGE=python:3.12-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python3 -m venv /opt/alb-sg-monitor
# Dependencies first (read from pyproject.toml, pinned by constraints.txt), so that editing the
# code does not invalidate this layer.
COPY constraints.txt pyproject.toml README.md ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && /opt/alb-sg-monitor/bin/pip install --quiet -c constraints.txt -r requirements.txt
COPY monitor ./monitor
RUN /opt/alb-sg-monitor/bin/pip install --quiet --no-deps .
# The runtime needs neither pip nor setuptools (pip has already compiled the bytecode), nor the
# kubernetes client's asyncio twin (kubernetes/aio, about a third of the image's Python code):
# the monitor uses the synchronous client, and `import kubernetes` does not load aio.
RUN /opt/alb-sg-monitor/bin/python -m pip uninstall --quiet --yes pip setuptools \
 && rm -rf /opt/alb-sg-monitor/lib/python3*/site-packages/kubernetes/aio

FROM ${BASE_IMAGE}
ARG UID=65532
# scripts/build-image passes the package version; a plain `docker build` says "unknown".
ARG VERSION=unknown
LABEL org.opencontainers.image.title="alb-sg-monitor" \
      org.opencontainers.image.description="Watches that every ALB of an EKS cluster can still reach its targets through the node and pod security groups." \
      org.opencontainers.image.source="https://github.com/alb-sg-monitor/alb-sg-monitor" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A passwd entry keeps tools that look up the current user (botocore's ~ expansion) well behaved.
RUN groupadd --system --gid ${UID} monitor \
 && useradd --system --uid ${UID} --gid ${UID} --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin monitor
COPY --from=build /opt/alb-sg-monitor /opt/alb-sg-monitor
ENV PATH=/opt/alb-sg-monitor/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER ${UID}:${UID}
EXPOSE 9917
ENTRYPOINT ["alb-sg-monitor"]
CMD ["run"]
