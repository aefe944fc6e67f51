#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with Go:
#   ./test.sh
# It installs the real SIP peers and audio tools it needs (SIPp, baresip, Linphone,
# sox, espeak-ng, Chromium for the live view, Kamailio in front of two
# instances, Redis for the shared caller memory; root or sudo), checks
# formatting and vet, runs every test
# with the race detector (real calls included; the committed fuzz corpora in
# */testdata/fuzz run as cases), then fuzzes each parser of outside input
# for a bounded time (FUZZTIME, default 10s each; test/fuzz-corpus.sh grows
# the corpora).
set -euo pipefail
cd "$(dirname "$0")"

install_peers() {
	local missing=()
	for tool in sipp baresip linphonec sox espeak-ng chromium kamailio redis-server curl; do
		command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "==> installing SIP peers and audio tools (missing: ${missing[*]})"
	local sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to apt-get install sip-tester baresip linphone-cli sox espeak-ng chromium kamailio redis-server curl" >&2; exit 1; }
		sudo="sudo"
	fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq sip-tester baresip linphone-cli sox espeak-ng chromium kamailio redis-server curl >/dev/null
}

install_peers

echo "==> gofmt"
unformatted=$(gofmt -l $(find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "==> go vet"
go vet ./...

echo "==> go test -race (real SIPp and baresip calls included)"
VBTEST_PEERS=require go test -race -count=1 -timeout 10m ./...

echo "==> fuzzing each parser for ${FUZZTIME:-10s}"
# One line per target when it passes; its whole report (the failing input's
# file, the panic or the error) when it does not.
fuzz() {
	local out
	if ! out=$(go test -run '^$' -fuzz "^$1\$" -fuzztime "${FUZZTIME:-10s}" "$2" 2>&1) &&
		! { echo "$out" | grep -q 'context deadline exceeded' && ! echo "$out" | grep -q 'Failing input' &&
			echo "$1: the fuzz engine timed out on a busy machine (no failing input); once more" &&
			out=$(go test -run '^$' -fuzz "^$1\$" -fuzztime "${FUZZTIME:-10s}" "$2" 2>&1); }; then
		echo "$1 ($2) failed:"
		echo "$out" | grep -v '^fuzz: elapsed' | tail -60
		return 1
	fi
	echo "$out" | tail -1
}
fuzz FuzzNegotiate ./sip
fuzz FuzzSIPMessage ./sip
fuzz FuzzHandleDatagram ./media
fuzz FuzzSRTPDatagram ./media
fuzz FuzzDecode ./media/g722
fuzz FuzzDecode ./realtime
fuzz FuzzClientEventSchema ./realtime
fuzz FuzzParse ./config
fuzz FuzzPlaceCall ./api
fuzz FuzzTurn ./api
fuzz FuzzToolArguments ./bridge
fuzz FuzzParseWAV ./sound
fuzz FuzzIdentity ./memory

echo "==> all tests passed"
