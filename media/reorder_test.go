package media

import (
	"reflect"
	"testing"
)

func runReorder(window int, seqs []uint16) (out []uint16, r *reorderer) {
	r = newReorderer(window)
	for _, s := range seqs {
		p := []byte{byte(s >> 8), byte(s)}
		r.push(s, p, func(b []byte) { out = append(out, uint16(b[0])<<8|uint16(b[1])) })
	}
	return out, r
}

func TestReorder(t *testing.T) {
	cases := []struct {
		name                  string
		window                int
		in, want              []uint16
		lost, late, duplicate uint64
	}{
		{"in order", 3, []uint16{10, 11, 12, 13}, []uint16{10, 11, 12, 13}, 0, 0, 0},
		{"swap", 3, []uint16{10, 12, 11, 13}, []uint16{10, 11, 12, 13}, 0, 0, 0},
		{"wraparound", 3, []uint16{65534, 65535, 1, 0, 2}, []uint16{65534, 65535, 0, 1, 2}, 0, 0, 0},
		{"duplicate delivered", 3, []uint16{10, 11, 11, 12}, []uint16{10, 11, 12}, 0, 0, 1},
		{"duplicate held", 3, []uint16{10, 12, 12, 11}, []uint16{10, 11, 12}, 0, 0, 1},
		{"late after loss", 2, []uint16{10, 12, 13, 11, 14}, []uint16{10, 12, 13, 14}, 1, 1, 0},
		{"gap beyond window", 3, []uint16{10, 20, 21}, []uint16{10, 20, 21}, 9, 0, 0},
		{"window full", 2, []uint16{1, 3, 4, 5}, []uint16{1, 3, 4, 5}, 1, 0, 0},
		{"no window", 0, []uint16{1, 3, 2, 4}, []uint16{1, 3, 4}, 1, 1, 0},
		// A restart is confirmed by a second packet in sequence (RFC 3550 A.1); the first is lost to probation.
		{"restart", 3, []uint16{100, 101, 40000, 40001, 40002}, []uint16{100, 101, 40001, 40002}, 0, 1, 0},
		// 9→200 is loss (inside the dropout limit); then the numbering restarts from 1.
		{"replayed numbering", 3, []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 200, 201, 202, 1, 2, 3}, []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 200, 201, 202, 2, 3}, 190, 1, 0},
		{"one stray far-off packet", 3, []uint16{10, 11, 30000, 12, 13}, []uint16{10, 11, 12, 13}, 0, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, r := runReorder(c.window, c.in)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("delivered %v, want %v", got, c.want)
			}
			if r.lost != c.lost || r.late != c.late || r.duplicate != c.duplicate {
				t.Errorf("lost/late/dup = %d/%d/%d, want %d/%d/%d", r.lost, r.late, r.duplicate, c.lost, c.late, c.duplicate)
			}
		})
	}
}

func TestReorderFlushDeliversHeld(t *testing.T) {
	r := newReorderer(3)
	var out []uint16
	deliver := func(b []byte) { out = append(out, uint16(b[0])) }
	r.push(1, []byte{1}, deliver)
	r.push(3, []byte{3}, deliver)
	r.push(4, []byte{4}, deliver)
	r.flush(deliver)
	if !reflect.DeepEqual(out, []uint16{1, 3, 4}) || r.lost != 1 {
		t.Errorf("got %v lost %d", out, r.lost)
	}
}
