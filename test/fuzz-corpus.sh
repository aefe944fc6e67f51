#!/usr/bin/env bash
# Grows the committed fuzz corpora: fuzzes each parser of outside input for
# FUZZTIME (default 30s), then copies up to 64 of the inputs the fuzzer
# found interesting into the package's testdata/fuzz/<Target>, where every
# plain `go test` runs them as regression cases.
#   test/fuzz-corpus.sh [Target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(
	"FuzzNegotiate ./sip" "FuzzSIPMessage ./sip" "FuzzHandleDatagram ./media" "FuzzSRTPDatagram ./media"
	"FuzzDecode ./realtime" "FuzzParse ./config" "FuzzPlaceCall ./api" "FuzzToolArguments ./bridge" "FuzzParseWAV ./sound"
)
cache=$(go env GOCACHE)/fuzz
module=$(go list -m)
for t in "${targets[@]}"; do
	read -r name pkg <<<"$t"
	if [ $# -gt 0 ] && [[ ! " $* " =~ " $name " ]]; then continue; fi
	go test -run '^$' -fuzz "^$name\$" -fuzztime "${FUZZTIME:-30s}" "$pkg" | tail -1
	src="$cache/$module/${pkg#./}/$name"
	dst="${pkg#./}/testdata/fuzz/$name"
	mkdir -p "$dst"
	ls -S -r "$src" 2>/dev/null | head -64 | while read -r f; do cp "$src/$f" "$dst/$f"; done
	echo "$name: $(ls "$dst" | wc -l) inputs in $dst"
done
