module github.com/voicebot/voicebot

go 1.26.8

require (
	github.com/gorilla/websocket v1.5.3
	github.com/pion/rtp v1.10.6
	github.com/rs/zerolog v1.35.1
	github.com/zaf/g711 v1.4.0
	golang.org/x/sys v0.29.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/pion/randutil v0.1.0 // indirect
)
