# vos on a CUDA-capable PyTorch base; `docker run --gpus all vos segment clip.mp4 --mask m.png`.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /opt/vos
COPY pyproject.toml README.md ./
COPY vos_cli ./vos_cli
COPY weights ./weights
# torch comes from the base image; the pins in pyproject.toml admit it.
RUN pip install --no-cache-dir .

WORKDIR /work
ENTRYPOINT ["vos"]
CMD ["--help"]
