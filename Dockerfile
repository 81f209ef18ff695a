# qdrant-mcp server image.
#
#   docker compose build mcp-server                      # normal build (bakes the default model)
#   docker compose build --build-arg EMBEDDING_MODEL_BAKE= mcp-server   # no model: mount a cache
#
# Build args:
#   PYTHON_IMAGE          base for every stage. Any Debian-like image with python3 + venv works
#                         (the stack tests use a debootstrap'ed bookworm imported locally).
#   EMBEDDING_MODEL_BAKE  fastembed model baked into /opt/models at build time, from model-cache/
#                         when a fastembed cache is there, else from the Hugging Face hub; verified.
#                         Empty = bake nothing; mount a fastembed cache at /opt/models instead.
#   VERSION, REVISION, CREATED, SOURCE   OCI labels: `eval "$(scripts/image-env)"` before
#                         `docker compose build` (scripts/up and CI do), from server/pyproject.toml and git.
# Build secret (optional):
#   ca    PEM bundle of extra CA certificates for HTTPS during the build (corporate proxies):
#         `docker compose build` with `secrets: [build_ca]`, or BUILD_CA_FILE in .env.
#
# Layers: dependencies (from the hash-pinned server/requirements.lock) come before the source, so
# editing server/src rebuilds only the last small layer; the model bake hangs off the dependency
# stage, so source edits never re-download the model.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm
# checkov:skip=CKV_DOCKER_7:FROM ${PYTHON_IMAGE} is this build arg, whose default above is the pinned python:3.12-slim-bookworm; checkov does not resolve ARG defaults

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
# ORT_*: onnxruntime >= 1.29 uploads usage telemetry on Linux unless opted out before import
# (ORT_DISABLE_TELEMETRY; ORT_TELEMETRY_DISABLED is the older spelling). Same for the HF hub.
ENV LANG=C.UTF-8 \
    ORT_DISABLE_TELEMETRY=1 \
    ORT_TELEMETRY_DISABLED=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

# ---------------------------------------------------------------------------------------------
FROM base AS deps
# `python3 -m venv` works on the official image (/usr/local/bin/python3) and on Debian's python3
# (/usr/bin/python3); the venv's interpreter link stays valid because the runtime shares the base.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY server/requirements.lock /tmp/requirements.lock
# Wheels only: nothing is compiled, so no compiler is needed in any stage.
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca SSL_CERT_FILE=/run/secrets/ca; fi \
 && pip install --require-hashes --only-binary=:all: --no-deps -r /tmp/requirements.lock

# ---------------------------------------------------------------------------------------------
# The model, verified: from the build context's model-cache/ folder when a fastembed cache is
# there (no network needed), else downloaded from the Hugging Face hub (see server/bake_model.py).
FROM deps AS model
ARG EMBEDDING_MODEL_BAKE=sentence-transformers/all-MiniLM-L6-v2
ENV FASTEMBED_CACHE_PATH=/opt/models
COPY model-cache/ /opt/models/
COPY server/bake_model.py /tmp/bake_model.py
RUN --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca REQUESTS_CA_BUNDLE=/run/secrets/ca; fi \
 && python /tmp/bake_model.py "$EMBEDDING_MODEL_BAKE" /opt/models \
 && chmod -R a+rX /opt/models

# ---------------------------------------------------------------------------------------------
# Build-only: binutils' strip, for the venv's shared libraries below.
FROM base AS strip-tools
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------------------------
# The dependency venv as the runtime gets it: without pip/setuptools, and without what the server
# never loads (the modules it imports and the libraries it maps were listed under load, for every
# transport, engine and exporter: `python -m bench --phases image`, bench/README.md):
#   - hf_xet, huggingface_hub's optional download accelerator (the image runs offline; without it
#     a model download goes over plain HTTP);
#   - onnxruntime's C API library (its Python binding has the runtime linked in) and its model
#     conversion, optimisation and quantisation scripts;
#   - Pillow's AVIF, WebP, colour-management and font modules and their libraries (fastembed imports
#     Pillow for its image models; the server embeds text);
#   - huggingface_hub's command line and Inference API client, pydantic's v1 compatibility layer;
#   - the packages' test suites and numpy's test-only extensions, type stubs, C headers and Cython
#     declarations, numpy's build tools (f2py, distutils);
#   - the extension modules' debug symbols (`strip --strip-unneeded` keeps what the loader needs;
#     the libraries auditwheel grafted into *.libs/ are left alone: patchelf rewrote their program
#     headers, which strip breaks). Every shared library is then loaded once, so a broken one
#     fails the build.
# Each path is named exactly (rm -r fails on one that no longer exists: a new release is looked at
# again). Cached until the lock changes.
FROM strip-tools AS venv
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip uninstall -y -q hf-xet pip setuptools \
 && site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
 && rm -r "$site"/onnxruntime/capi/libonnxruntime.so.* \
          "$site"/onnxruntime/backend "$site"/onnxruntime/datasets "$site"/onnxruntime/quantization \
          "$site"/onnxruntime/tools "$site"/onnxruntime/transformers \
          "$site"/numpy/f2py "$site"/numpy/_core/include "$site"/numpy/_core/_*_tests.*.so \
          "$site"/numpy/_core/_simd.*.so \
          "$site"/PIL/_avif.*.so "$site"/PIL/_imagingcms.*.so "$site"/PIL/_imagingft.*.so "$site"/PIL/_webp.*.so \
          "$site"/pillow.libs/libavif-*.so* "$site"/pillow.libs/liblcms2-*.so* "$site"/pillow.libs/libfreetype-*.so* \
          "$site"/pillow.libs/libharfbuzz-*.so* "$site"/pillow.libs/libpng16-*.so* "$site"/pillow.libs/libbrotli*.so* \
          "$site"/pillow.libs/libwebp*.so* "$site"/pillow.libs/libsharpyuv-*.so* \
          "$site"/huggingface_hub/cli "$site"/huggingface_hub/inference "$site"/pydantic/v1 \
 && rm -rf "$site"/numpy/distutils \
 && find "$site" -depth -type d -name tests -exec rm -r {} + \
 && find "$site" -type f \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' -o -name '*.h' \) -delete \
 && find "$site" -type f -name '*.so*' -not -path '*.libs/*' -exec strip --strip-unneeded {} + \
 && find "$site" -type f -name '*.so*' -exec python -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1])' {} \;

# ---------------------------------------------------------------------------------------------
FROM deps AS build
COPY server/pyproject.toml server/README.md server/LICENSE /src/server/
COPY server/src /src/server/src
# --no-deps: every dependency is already in the venv. --prefix /pkg: only the package's own files
# (site-packages + console scripts, whose shebang is /opt/venv/bin/python) land in /pkg, so the
# runtime adds a small layer on top of the cached venv. Byte-compiled as if under /opt/venv, since
# the read-only runtime cannot write __pycache__. The build backend (setuptools, per pyproject
# [build-system]) is fetched into pip's isolated build environment.
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca SSL_CERT_FILE=/run/secrets/ca; fi \
 && pip install --no-deps --no-compile --prefix /pkg /src/server \
 && python -m compileall -q -s /pkg -p /opt/venv /pkg/lib

# ---------------------------------------------------------------------------------------------
# `--target test`: the server's test suite, run inside an image built from the same dependency,
# package and model layers as the runtime. The runtime image below never contains any of it.
FROM deps AS test
COPY tests/requirements.txt /tmp/test-requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca SSL_CERT_FILE=/run/secrets/ca; fi \
 && pip install --only-binary=:all: -r /tmp/test-requirements.txt
COPY --from=build /pkg/ /opt/venv/
COPY --from=model /opt/models /opt/models
COPY pytest.ini /src/pytest.ini
COPY tests /src/tests
# What the tests share with the benchmark: the server-spawning helper (tests/support.py) and the evaluation sets.
COPY bench/__init__.py bench/serverproc.py bench/evalset.py /src/bench/
ENV FASTEMBED_CACHE_PATH=/opt/models \
    HF_HUB_OFFLINE=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The in-process and subprocess server suites (with the golden vectors in tests/data), without
# those that need what the image leaves out: Node (the Inspector) and LlamaIndex's venv.
ENTRYPOINT ["python", "-m", "pytest", "-p", "no:cacheprovider", "-q"]
CMD ["tests/server", "tests/telemetry", "--ignore=tests/server/test_inspector.py", \
     "--deselect=tests/server/test_foreign_layouts.py::test_a_llamaindex_collection_is_searched_written_and_read_back_by_llamaindex"]

# ---------------------------------------------------------------------------------------------
FROM base AS runtime
# The official python image ships pip in the base: the runtime installs nothing, so it goes
# (and with it what a scanner would report about it).
RUN if python3 -m pip --version >/dev/null 2>&1; then python3 -m pip uninstall -y -q pip; fi
# Fixed non-root identity 10001:10001 (USER names the uid only: the primary group comes from
# /etc/passwd, and Docker's copy API - used by `compose watch` - resolves a bare uid only).
# /data: persistent default for embedded Qdrant (XDG_DATA_HOME) — the only writable path
# besides /tmp, so the container runs with a read-only root filesystem.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin app \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 0750 /data

COPY --from=venv /opt/venv /opt/venv
COPY --from=model /opt/models /opt/models
COPY --from=build /pkg/ /opt/venv/

ENV PATH=/opt/venv/bin:$PATH \
    HOME=/data \
    XDG_DATA_HOME=/data \
    XDG_CACHE_HOME=/tmp/.cache \
    FASTEMBED_CACHE_PATH=/opt/models \
    HF_HUB_OFFLINE=1 \
    MCP_TRANSPORT=streamable-http \
    MCP_HOST=0.0.0.0 \
    MCP_PORT=8000

USER 10001
WORKDIR /
VOLUME ["/data"]
EXPOSE 8000

# /readyz: 200 once the model is loaded and Qdrant answers. No curl in the image: use Python.
HEALTHCHECK --interval=10s --timeout=4s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os,urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('MCP_PORT', '8000'), timeout=3)"]

# Build metadata last: CREATED/REVISION change on every build and must not invalidate layers.
ARG VERSION=dev
ARG REVISION=local
ARG CREATED=""
ARG SOURCE=""
LABEL org.opencontainers.image.title="qdrant-mcp-memory" \
      org.opencontainers.image.description="MCP server for Qdrant (semantic memory) with health checks, auth and OpenTelemetry" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

STOPSIGNAL SIGTERM
ENTRYPOINT ["qdrant-mcp-memory"]
CMD []
