//go:build !amd64 || purego

package resample

const useAVX2 = false

func dotFast(a, b []float32) float32 { return dot(a, b) }

func dot3Fast(a, b, c, w []float32) (float32, float32, float32) { return dot3(a, b, c, w) }
