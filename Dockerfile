# Because: the recommendation service. Dependencies first, from the lock file, in a layer
# of their own (an edit to the sources reinstalls nothing); then the sources.
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The CPU build of torch from PyTorch's index keeps the image small; for a CUDA image:
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY requirements.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --index-url "$TORCH_INDEX" "$(grep '^torch==' requirements.lock)" \
 && /opt/venv/bin/pip install -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY because because
COPY models models
COPY service service
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11-slim
# /state: compose's volume for the model, the data and the key; a new volume takes this
# folder's owner, so setup writes there without root.
RUN useradd --create-home --uid 10001 because && mkdir /state && chown because:because /state
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
