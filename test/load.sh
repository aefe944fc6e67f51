#!/usr/bin/env bash
# Load benchmark, loopback only, bounded: for each N, SIPp places N
# concurrent calls (each ~30 s, the caller talking the whole time, the demo
# model echoing every turn, so audio flows both ways) into a voicebot
# process whose model, the demo, runs in a process of its own. Reported per
# N: voicebot's CPU time per call-second, RSS per call, pacer lateness
# (p50/p99 as histogram bucket bounds, max from the calls' logs), RTP loss,
# failed calls; CPU and p99 also for the steady state alone (every call up,
# none ending: no call setup in the window), with the share of frames sent
# within 2 ms and voicebot's thread switches per second (each a wake-up or
# a preemption: on a VM the largest cost after the traffic itself). Then
# test/floor runs the same traffic with nothing else (raw system calls on
# one thread) for the floor any design has on this machine, in the same
# sitting. It stops by itself.
#   test/load.sh [N ...]                      (default 50 100 200 400)
#   TRANSCODE=passthrough test/load.sh ...    (G.711 straight to the model)
#   CODEC=G722 test/load.sh ...               (the callers speak G.722, HD voice: 16 kHz both
#                                              ways, resampled 16 ⇄ 24 kHz; default PCMA)
#   APPEND=100ms test/load.sh ...             (caller audio batched per append)
#   PROFILE=/tmp/vb test/load.sh 200          (perf profile mid-run: /tmp/vb.200.data)
#   TAGS=pprof test/load.sh 200               (Go heap profile mid-run: /tmp/vb.200.heap)
#   PIN=1 test/load.sh 200                    (voicebot on core 1, SIPp and the demo on core 0:
#                                              the load generator does not take voicebot's CPU)
#   LOADNICE=10 test/load.sh 200              (SIPp and the demo at a lower priority)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
command -v sipp >/dev/null || { echo "needs SIPp: apt-get install -y sip-tester" >&2; exit 1; }
ns=("$@")
[ ${#ns[@]} -gt 0 ] || ns=(50 100 200 400)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build ${TAGS:+-tags "$TAGS"} -o "$work/voicebot" ./cmd/voicebot
go build -o "$work/floor" ./test/floor
mkdir -p "$work/sipp"
# SIPp's own speech, as the raw A-law its rtp_stream plays (uac_load.xml);
# with CODEC=G722 the same speech coded as G.722 and the scenario offering
# it (payload type 9, G722/8000)
case "${CODEC:=PCMA}" in
PCMA)
	go run ./test/pcapaudio /usr/share/sip-tester/g711a.pcap "$work/sipp/speech.alaw"
	cp test/sipp/uac_load.xml "$work/sipp/uac_load.xml" ;;
G722)
	go run ./test/pcapaudio -g722 /usr/share/sip-tester/g711a.pcap "$work/sipp/speech.g722"
	sed -e 's|RTP/AVP 8 101|RTP/AVP 9 101|; s|a=rtpmap:8 PCMA/8000|a=rtpmap:9 G722/8000|; s|speech.alaw,4,8|speech.g722,4,9|' \
		test/sipp/uac_load.xml >"$work/sipp/uac_load.xml"
	grep -q 'speech.g722,4,9' "$work/sipp/uac_load.xml" || { echo "load.sh: uac_load.xml no longer has the lines CODEC=G722 rewrites" >&2; exit 1; } ;;
*) echo "load.sh: CODEC is PCMA or G722" >&2; exit 1 ;;
esac
ulimit -n 65536 2>/dev/null || true

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
metric() { curl -s "http://127.0.0.1:18080/metrics" | awk -v m="$1" 'index($0, m) == 1 {print $NF; exit}'; }
# quantile q of the pacer lateness histogram, as the upper bound of its
# bucket (ms): over the run so far, or (with a second, earlier scrape)
# between the two scrapes
lateness_q() {
	awk -v q="$1" '
		FNR == 1 { f++ }
		/^voicebot_pacer_lateness_seconds_bucket/ { match($0, /le="[^"]+"/); le = substr($0, RSTART+4, RLENGTH-5); i = ++n[f]; b[i] = le; c[f, i] = $NF }
		END { last = f; total = c[last, n[last]] - (f > 1 ? c[1, n[1]] : 0)
			for (i = 1; i <= n[last]; i++) if (c[last, i] - (f > 1 ? c[1, i] : 0) >= q * total) { if (b[i] == "+Inf") print ">50"; else printf "%g\n", b[i] * 1000; exit } }' "${@:2}"
}
# the share of pacer sends at most 2 ms late (the target's bound) between two scrapes
within_2ms() {
	awk 'FNR == 1 { f++ } /^voicebot_pacer_lateness_seconds_bucket\{le="0.002"\}/ { w[f] = $NF } /^voicebot_pacer_lateness_seconds_count/ { c[f] = $NF }
		END { if (c[2] > c[1]) printf "%.2f%%", 100 * (w[2] - w[1]) / (c[2] - c[1]); else print "?" }' "$1" "$2"
}
# voicebot's thread switches so far, voluntary and involuntary, over all its threads
switches() { cat /proc/$1/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {v += $2} /^nonvoluntary_ctxt_switches/ {n += $2} END {print v + 0, n + 0}'; }
scrape() { curl -s "http://127.0.0.1:18080/metrics" >"$1"; echo "$(cpu_ticks $vb) $(date +%s.%N) $(switches $vb)" >"$1.cpu"; }

echo "| N | codec, transcode, append | calls ok/failed | CPU ms per call-second (whole run / all calls up) | floor: the traffic alone | RSS per call | pacer p50 | pacer p99 (whole run / all calls up) | pacer max | RTP lost (in) | thread switches per second, all calls up (voluntary / involuntary) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for n in "${ns[@]}"; do
	VOICEBOT_PPROF=127.0.0.1:6061 ${PIN:+taskset -c 0} ${LOADNICE:+nice -n $LOADNICE} "$work/voicebot" -serve-demo 127.0.0.1:18090 2>"$work/demo.log" &
	demo=$!
	cat >"$work/vb.yaml" <<YAML
log: {level: info, format: json}
sip: {listen: 127.0.0.1:15060, transports: [udp]}
media: {port_min: 20000, port_max: 29998}
realtime: {url: "ws://127.0.0.1:18090/v1/realtime?model=demo", append_interval: ${APPEND:-20ms}}
api: {listen: 127.0.0.1:18080, token: load-test-token-0123456789}
admission: {allow: [127.0.0.1]}
agent: {tools: [end_call]}
memory: {path: $work/memory.db}
YAML
	if [ -n "${TRANSCODE:-}" ]; then echo "audio: {transcode: $TRANSCODE}" >>"$work/vb.yaml"; fi
	${PIN:+taskset -c 1} "$work/voicebot" -config "$work/vb.yaml" 2>"$work/vb.log" &
	vb=$!
	for _ in $(seq 50); do grep -q "voicebot ready" "$work/vb.log" && break; sleep 0.1; done
	sleep 1
	idle=$(rss_kib $vb)
	cpu0=$(cpu_ticks $vb)
	t0=$(date +%s.%N)
	(cd "$work/sipp" && ${PIN:+taskset -c 0} ${LOADNICE:+nice -n $LOADNICE} sipp -sf "$work/sipp/uac_load.xml" 127.0.0.1:15060 -i 127.0.0.1 -p 15090 -mp 16000 \
		-r 50 -l "$n" -m "$n" -nostdin -timeout 120s >/dev/null 2>&1 || true) &
	sippjob=$!
	peak=$idle
	if [ -n "${PROFILE:-}" ]; then
		# a CPU profile of voicebot in the middle of the run (perf, kernel and Go frames)
		(sleep 12; perf record -F ${PROFILE_HZ:-499} -g -p $vb -o "$PROFILE.$n.data" -- sleep 10 >/dev/null 2>&1) &
	fi
	if [ -n "${TAGS:-}" ]; then
		# a pprof build (TAGS=pprof): the heap mid-run, beside the perf profile
		(sleep 15; curl -s "http://127.0.0.1:6060/debug/pprof/heap" -o "${PROFILE:-/tmp/vb}.$n.heap"; curl -s "http://127.0.0.1:6060/debug/pprof/goroutine?debug=1" -o "${PROFILE:-/tmp/vb}.$n.goroutines"; curl -s "http://127.0.0.1:18080/metrics" -o "${PROFILE:-/tmp/vb}.$n.metrics") &
	fi
	# The steady state: from 3 s after the last call started (50 a second)
	# to 27 s, before the first calls end; no call setup in the window.
	rm -f "$work/steady1" "$work/steady2"
	(sleep $(awk -v n="$n" 'BEGIN {print n / 50 + 3}'); scrape "$work/steady1"; sleep $(awk -v n="$n" 'BEGIN {print 24 - n / 50}'); scrape "$work/steady2") &
	while kill -0 $sippjob 2>/dev/null; do
		r=$(rss_kib $vb); [ "$r" -gt "$peak" ] && peak=$r
		sleep 1
	done
	t1=$(date +%s.%N)
	cpu1=$(cpu_ticks $vb)
	hz=$(getconf CLK_TCK)
	ok=$(grep -c '"outcome":"caller_hung_up"' "$work/vb.log" || true)
	answered=$(grep -c '"message":"call: answered"' "$work/vb.log" || true)
	failed=$((n - ok))
	callsec=$(awk -v n="$ok" 'BEGIN {print n * 30.8}')
	cpu_ms=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$hz" -v cs="$callsec" 'BEGIN { if (cs > 0) printf "%.3f", (b - a) * 1000 / hz / cs; else print "n/a" }')
	per_call=$(awk -v p="$peak" -v i="$idle" -v n="$n" 'BEGIN { printf "%.0f KiB", (p - i) / n }')
	scrape "$work/end"
	p50=$(lateness_q 0.5 "$work/end"); p99=$(lateness_q 0.99 "$work/end")
	steady_p99="?"; steady_cpu="?"; steady_switches="?"
	if [ -s "$work/steady2" ] && [ "$(awk -v n="$n" 'BEGIN {print (24 - n / 50 > 2)}')" = 1 ]; then
		steady_p99="$(lateness_q 0.99 "$work/steady1" "$work/steady2") ms ($(within_2ms "$work/steady1" "$work/steady2") ≤ 2 ms)"
		steady_cpu=$(awk -v n="$n" -v hz="$(getconf CLK_TCK)" 'NR == 1 {c0 = $1; t0 = $2} NR == 2 {printf "%.3f", ($1 - c0) * 1000 / hz / (n * ($2 - t0))}' "$work/steady1.cpu" "$work/steady2.cpu")
		steady_switches=$(awk 'NR == 1 {t0 = $2; v0 = $3; n0 = $4} NR == 2 {printf "%d / %d", ($3 - v0) / ($2 - t0), ($4 - n0) / ($2 - t0)}' "$work/steady1.cpu" "$work/steady2.cpu")
	fi
	# Durations are logged as Go writes them ("2.4025ms", "850µs", "1.2s"): in ms here.
	maxlate=$(grep -o '"pacer_max_late":"[^"]*"' "$work/vb.log" | cut -d'"' -f4 | awk '
		/ms$/ {sub(/ms$/, ""); print $0 + 0; next}
		/(µs|us)$/ {sub(/(µs|us)$/, ""); print $0 / 1000; next}
		/ns$/ {sub(/ns$/, ""); print $0 / 1e6; next}
		/s$/ {sub(/s$/, ""); print $0 * 1000; next}' | sort -g | tail -1)
	lost=$(metric voicebot_rtp_packets_lost_total)
	# A run whose callers sent no audio, or heard no answer, measured
	# nothing worth a row: 28 s of speech is 1,400 packets a call.
	rtp_in=$(metric 'voicebot_rtp_packets_total{direction="in"}')
	answers=$(metric voicebot_response_latency_seconds_count)
	if [ "$ok" -gt 0 ] && { [ "$(awk -v p="${rtp_in:-0}" -v n="$ok" 'BEGIN {print (p / n < 1300)}')" = 1 ] || [ "${answers:-0}" -lt "$ok" ]; }; then
		echo "load.sh: $n calls: ${rtp_in:-no} caller RTP packets and ${answers:-no} bot answers: the audio did not flow both ways" >&2
		exit 1
	fi
	kill -TERM $vb; wait $vb 2>/dev/null || true
	kill -TERM $demo; wait $demo 2>/dev/null || true
	sleep 1
	# PIN (if set) reaches the floor through the environment: same placement.
	floor=$("$work/floor" -calls "$n" -append "${APPEND:-20ms}" -transcode "${TRANSCODE:-pcm16}" -seconds 10 2>/dev/null |
		awk -F'|' 'NR == 2 { gsub(/ /, "", $4); print $4 }')
	echo "| $n | $CODEC, ${TRANSCODE:-pcm16}, ${APPEND:-20ms} | $ok/$failed (answered $answered) | $cpu_ms / $steady_cpu | ${floor:-?} | $per_call | ≤ $p50 ms | ≤ $p99 ms / ≤ $steady_p99 | ${maxlate:-?} ms | ${lost:-?} | $steady_switches |"
done
