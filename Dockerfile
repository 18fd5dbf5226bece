# The evaluator service of one GPU host: `python -m evaluators` on port 8470, one slot per GPU.
#
# GPU (default): an official PyTorch CUDA runtime image, which ships torch, Triton and the CUDA
# runtime; the host needs the NVIDIA driver and the NVIDIA Container Toolkit (`--gpus all`).
# Any image with torch >= 2.4 and Triton >= 3.0 works, e.g. NVIDIA's NGC image
# nvcr.io/nvidia/pytorch:24.10-py3:
#   docker build -t kernelsmith-evaluator .
#   docker run --gpus all --cap-add SYS_ADMIN --shm-size 2g -p 8470:8470 \
#     -e KERNELSMITH_EVALUATOR_TOKEN="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" \
#     kernelsmith-evaluator
#
# CPU only (the Triton interpreter: correctness checks, no timings), a much smaller image:
#   docker build -t kernelsmith-evaluator:cpu --build-arg BASE_IMAGE=python:3.11-slim \
#     --build-arg TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu" .
#
# The service refuses to listen on 0.0.0.0 without KERNELSMITH_EVALUATOR_TOKEN (16+ characters).
# --cap-add SYS_ADMIN lets the judge put each worker in an empty network namespace; candidates
# themselves run as `nobody` with no capabilities. Without it, results say network_isolated=false.
# See docs/deploy.md.

ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

ARG TORCH_SPEC=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/kernelsmith
# torch first: the GPU base image already has it (and its Triton); the CPU build names a CPU wheel
RUN if [ -n "$TORCH_SPEC" ]; then pip install $TORCH_SPEC; fi
COPY pyproject.toml README.md ./
COPY evaluators ./evaluators
COPY kernelsmith ./kernelsmith
COPY archive ./archive
COPY prompts ./prompts
RUN pip install . && python -c "import evaluators.service, torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"

EXPOSE 8470
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8470/v1/health', timeout=4)"
# workers are sandboxed children of this process; run it as root so that they can drop to `nobody`
CMD ["python", "-m", "evaluators", "--host", "0.0.0.0", "--port", "8470"]
