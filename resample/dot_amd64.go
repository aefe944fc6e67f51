//go:build !purego

package resample

import "golang.org/x/sys/cpu"

// useAVX2 selects the vector kernels; FMA comes with every AVX2 CPU we target
// but is checked on its own all the same.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func convAVX2(h *float32, taps int, x *float32, out *float32, n int, acc bool)

// convFast is conv with AVX2: n must be a multiple of 8.
func convFast(h, x, out []float32, n int, acc bool) {
	if n == 0 {
		return
	}
	if useAVX2 && len(h) > 0 && n%8 == 0 && len(x) >= n+len(h)-1 && len(out) >= n {
		convAVX2(&h[0], len(h), &x[0], &out[0], n, acc)
		return
	}
	conv(h, x, out, n, acc)
}

func dotFast(a, b []float32) float32 {
	if useAVX2 && len(a) >= 8 && len(a)%8 == 0 && len(b) >= len(a) {
		return dotAVX2(&a[0], &b[0], len(a))
	}
	return dot(a, b)
}
