# SPDX-License-Identifier: Apache-2.0
#
# Redis for the compose stack, built from the same Debian base as the Lanner image so the stack needs no registry
# beyond the base image. With a registry, `LANNER_REDIS_IMAGE=redis:7-bookworm` in the environment works as well.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--appendonly", "yes", "--dir", "/data"]
