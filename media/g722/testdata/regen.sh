#!/bin/sh
# Regenerates the G.722 golden vectors (see README.md). Needs Go and ffmpeg;
# the committed files were made with ffmpeg 5.1.x (Debian bookworm). The
# tests only read the results, so neither is needed to run them.
set -eu
cd "$(dirname "$0")"

go run ./gen # writes speech.s16, loud.s16 and random.g722

ff="ffmpeg -nostdin -hide_banner -loglevel error -y"
# Encode with FFmpeg's plain (non-trellis) G.722 encoder. -trellis 0 is the
# default; it is spelled out because trellis search picks different codes.
for x in speech loud; do
	$ff -f s16le -ar 16000 -ac 1 -i $x.s16 -c:a g722 -trellis 0 -f g722 $x.g722
done
# Decode FFmpeg's bitstream, and the random payload, with FFmpeg's decoder.
$ff -f g722 -i speech.g722 -c:a pcm_s16le -f s16le speech.ffdec.s16
$ff -f g722 -i random.g722 -c:a pcm_s16le -f s16le random.ffdec.s16
