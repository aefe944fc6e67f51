# Static, non-root voicebot image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/voicebot ./cmd/voicebot && mkdir -p /out/records /out/memory

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/voicebot /usr/local/bin/voicebot
COPY configs/voicebot.yaml /etc/voicebot/voicebot.yaml
# Owned by nonroot, so a volume mounted here (records.dir) is writable.
COPY --from=build --chown=nonroot:nonroot /out/records /var/lib/voicebot/records
# The caller memory's SQLite file (memory.store: sqlite), when a profile remembers.
COPY --from=build --chown=nonroot:nonroot /out/memory /var/lib/voicebot/memory
ENV VOICEBOT_SIP_LISTEN=0.0.0.0:5060 \
    VOICEBOT_LOG_FORMAT=json \
    VOICEBOT_MEMORY_PATH=/var/lib/voicebot/memory/voicebot-memory.db
# What is on by default: SIP over UDP and TCP, and RTP. (SIP over TLS on
# 5061 and the API on 8080 are off until configured: publish them then.)
EXPOSE 5060/udp 5060/tcp 10000-20000/udp
USER nonroot:nonroot
# The image has no shell: the binary probes itself (its /healthz when the
# API is on, else an OPTIONS to its SIP listener).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/voicebot", "-config", "/etc/voicebot/voicebot.yaml", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/voicebot", "-config", "/etc/voicebot/voicebot.yaml"]
