# Because: the recommendation service. The model artifact is mounted at /artifact
# (or baked in with --build-arg ARTIFACT=path/inside/context).
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# CPU torch from PyTorch's CPU index keeps the image small; pass
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 for a CUDA image.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --index-url "$TORCH_INDEX" "torch>=2.4"
COPY pyproject.toml README.md ./
COPY because because
COPY models models
COPY service service
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 because
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BECAUSE_ARTIFACT=/artifact \
    BECAUSE_DATA_DIR=/home/because/var
USER because
WORKDIR /home/because
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"
CMD ["because", "serve", "--host", "0.0.0.0", "--port", "8000"]
