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
# SIP (UDP, TCP; 5061 when sip.tls is set), RTP, and the API with
# /metrics, /healthz, /readyz and /ui when api.listen is set.
EXPOSE 5060/udp 5060/tcp 5061/tcp 10000-20000/udp 8080/tcp
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/voicebot", "-config", "/etc/voicebot/voicebot.yaml"]
