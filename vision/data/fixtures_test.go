package data

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// fixtureDir holds the PIL/torchvision references that
// scripts/fixtures/data.py writes.
const fixtureDir = "testdata/pil"

// fixtureCase is one entry of testdata/pil/manifest.json.
type fixtureCase struct {
	Kind   string    `json:"kind"`
	Src    string    `json:"src"`
	Want   string    `json:"want"`
	Size   int       `json:"size"`
	H      int       `json:"h"`
	W      int       `json:"w"`
	Top    int       `json:"top"`
	Left   int       `json:"left"`
	Angle  float64   `json:"angle"`
	Factor float64   `json:"factor"`
	Tol    string    `json:"tol"`
	Mean   []float32 `json:"mean"`
	Std    []float32 `json:"std"`
}

func (c fixtureCase) name() string {
	return fmt.Sprintf("%s/%s", c.Kind, c.Want)
}

// fixtures returns the manifest cases of the given kinds.
func fixtures(t *testing.T, kinds ...string) []fixtureCase {
	t.Helper()
	buf, err := os.ReadFile(filepath.Join(fixtureDir, "manifest.json"))
	require.NoError(t, err)
	var m struct {
		Cases []fixtureCase `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(buf, &m))
	var out []fixtureCase
	for _, c := range m.Cases {
		for _, k := range kinds {
			if c.Kind == k {
				out = append(out, c)
			}
		}
	}
	require.NotEmpty(t, out, "no fixtures of kinds %v", kinds)
	return out
}

// fixtureImage decodes a fixture file.
func fixtureImage(t *testing.T, name string) *image.NRGBA {
	t.Helper()
	img, err := Decode(filepath.Join(fixtureDir, name), 0)
	require.NoError(t, err)
	return img
}

// fixtureFloats reads a little-endian float32 fixture.
func fixtureFloats(t *testing.T, name string) []float32 {
	t.Helper()
	buf, err := os.ReadFile(filepath.Join(fixtureDir, name))
	require.NoError(t, err)
	out := make([]float32, len(buf)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return out
}

// pixelDiff compares the RGB channels of two images of equal size and
// returns the largest and the mean absolute difference, in levels.
func pixelDiff(t *testing.T, got, want *image.NRGBA) (maxDiff int, meanDiff float64) {
	t.Helper()
	require.Equal(t, want.Bounds().Size(), got.Bounds().Size(), "image size")
	var sum, n int
	for y := range want.Bounds().Dy() {
		for x := range want.Bounds().Dx() {
			g, w := got.Pix[got.PixOffset(x, y):], want.Pix[want.PixOffset(x, y):]
			for c := range 3 {
				d := int(g[c]) - int(w[c])
				if d < 0 {
					d = -d
				}
				maxDiff = max(maxDiff, d)
				sum += d
				n++
			}
			require.Equal(t, uint8(0xff), g[3], "alpha at (%d,%d)", x, y)
		}
	}
	return maxDiff, float64(sum) / float64(n)
}

// requireSamePixels asserts exact equality of the RGB channels.
func requireSamePixels(t *testing.T, got, want *image.NRGBA) {
	t.Helper()
	maxDiff, meanDiff := pixelDiff(t, got, want)
	require.Zero(t, maxDiff, "max abs diff %d, mean %.4f", maxDiff, meanDiff)
}
