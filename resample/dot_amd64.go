//go:build !purego

package resample

import "golang.org/x/sys/cpu"

// useAVX2 selects the vector kernels; FMA comes with every AVX2 CPU we target
// but is checked on its own all the same.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func dot3AVX2(a, b, c, w *float32, n int) (float32, float32, float32)

func dotFast(a, b []float32) float32 {
	if useAVX2 && len(a) >= 8 && len(a)%8 == 0 && len(b) >= len(a) {
		return dotAVX2(&a[0], &b[0], len(a))
	}
	return dot(a, b)
}

func dot3Fast(a, b, c, w []float32) (float32, float32, float32) {
	n := len(a)
	if useAVX2 && n >= 8 && n%8 == 0 && len(b) == n && len(c) == n && len(w) >= n {
		return dot3AVX2(&a[0], &b[0], &c[0], &w[0], n)
	}
	return dot3(a, b, c, w)
}
