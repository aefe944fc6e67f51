//go:build !amd64 || purego

package resample

const useAVX2 = false

func dotFast(a, b []float32) float32 { return dot(a, b) }

func convFast(h, x, out []float32, n int, acc bool) { conv(h, x, out, n, acc) }
