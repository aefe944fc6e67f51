#!/usr/bin/env bash
# A bounded INVITE flood against a real voicebot process, loopback only:
# legitimate calls from an allowlisted PBX address (127.0.0.1), a scanner
# flooding INVITEs from 127.0.0.2, a password guesser on 127.0.0.3. It
# stops by itself and prints what was refused, how many calls were
# answered, and voicebot's memory before, at peak and after.
#   test/flood.sh [seconds] [invites-per-second]     (default 60 200)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v sipp >/dev/null || { echo "needs SIPp: apt-get install -y sip-tester" >&2; exit 1; }
seconds=${1:-60}
rate=${2:-200}
FLOOD_SECONDS=$seconds FLOOD_RATE=$rate VBTEST_PEERS=require \
	go test ./test/peers -run '^TestFloodWhileCallsRun$' -count=1 -v -timeout $((seconds * 3 + 120))s |
	grep -E 'flood:|^(--- |ok|FAIL)'
