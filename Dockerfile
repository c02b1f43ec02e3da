# The otelcol-authz distribution as a container image: the static binary,
# CA certificates (object stores are reached over TLS), the drop-in config
# from deploy/collector-config.yaml, and a non-root user.
#
# Nothing is pulled: `make image` cross-builds the binary for each
# architecture and stages the build context in _build/image:
#   linux-<arch>/otelcol-authz   the distribution, CGO_ENABLED=0
#   rootfs/                      /etc/passwd, /etc/group, the CA bundle, the config
#   state/                       empty; becomes /var/lib/otelcol-authz, owned by 10001
FROM scratch
ARG TARGETARCH
COPY rootfs/ /
COPY --chown=10001:10001 state/ /var/lib/otelcol-authz/
COPY linux-${TARGETARCH}/otelcol-authz /otelcol-authz
USER 10001:10001
# OTLP gRPC and HTTP, health_check, the collector's own metrics, the bundle server.
EXPOSE 4317 4318 13133 8888 8090
ENTRYPOINT ["/otelcol-authz"]
CMD ["--config", "/etc/otelcol-authz/config.yaml"]
