package data

import (
	"image"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTrainPipeline(t *testing.T) {
	p, err := TrainPipeline(AugmentConfig{
		Size:        32,
		HFlip:       0.5,
		VFlip:       0.1,
		Rotation:    15,
		ColorJitter: ColorJitter{Brightness: 0.2, Contrast: 0.2, Saturation: 0.2, Hue: 0.05},
	})
	require.NoError(t, err)
	require.True(t, p.Random())
	require.Equal(t, ImageNet, p.Normalization())
	require.Equal(t, []Step{
		RandomResizedCrop{Size: 32, Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}},
		HorizontalFlip{P: 0.5},
		VerticalFlip{P: 0.1},
		RandomRotation{Degrees: 15},
		ColorJitter{Brightness: 0.2, Contrast: 0.2, Saturation: 0.2, Hue: 0.05},
	}, p.Steps())

	src := fixtureImage(t, "src_64x48.png")
	a, err := p.Apply(src, rand.New(rand.NewPCG(1, 2)))
	require.NoError(t, err)
	require.Equal(t, 32, a.Height)
	require.Equal(t, 32, a.Width)
	require.Len(t, a.Data, 3*32*32)
	b, err := p.Apply(src, rand.New(rand.NewPCG(1, 2)))
	require.NoError(t, err)
	require.Equal(t, a, b, "same seed, same output")
	c, err := p.Apply(src, rand.New(rand.NewPCG(3, 4)))
	require.NoError(t, err)
	require.NotEqual(t, a.Data, c.Data)

	_, err = p.Apply(src, nil)
	require.ErrorContains(t, err, "random pipeline needs a *rand.Rand")
	_, err = p.Apply(nil, rand.New(rand.NewPCG(1, 2)))
	require.ErrorContains(t, err, "empty image")

	// Only the crop: the minimal configuration.
	minimal, err := TrainPipeline(AugmentConfig{Size: 8})
	require.NoError(t, err)
	require.Len(t, minimal.Steps(), 1)
}

func TestTrainPipelineValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     AugmentConfig
		wantErr string
	}{
		{"no size", AugmentConfig{}, "RandomResizedCrop: size 0 must be positive"},
		{"bad scale", AugmentConfig{Size: 8, Scale: [2]float64{0.5, 0.1}}, "scale [0.5 0.1]"},
		{"scale above one", AugmentConfig{Size: 8, Scale: [2]float64{0.5, 1.5}}, "scale"},
		{"bad ratio", AugmentConfig{Size: 8, Ratio: [2]float64{0, 1}}, "ratio [0 1]"},
		{"flip probability", AugmentConfig{Size: 8, HFlip: 1.5}, "HorizontalFlip: probability 1.5"},
		{"vflip probability", AugmentConfig{Size: 8, VFlip: -0.1}, "VerticalFlip: probability -0.1"},
		{"rotation", AugmentConfig{Size: 8, Rotation: -5}, "RandomRotation: degrees -5"},
		{"hue", AugmentConfig{Size: 8, ColorJitter: ColorJitter{Hue: 0.6}}, "ColorJitter: hue 0.6"},
		{"brightness", AugmentConfig{Size: 8, ColorJitter: ColorJitter{Brightness: -1}}, "ColorJitter: brightness -1"},
		{"std", AugmentConfig{Size: 8, Normalize: Normalize{Mean: [3]float32{0.5, 0.5, 0.5}}}, "std[0] = 0 must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := TrainPipeline(tt.cfg)
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, p)
		})
	}
}

func TestEvalPipeline(t *testing.T) {
	p, err := EvalPipeline(56, 48, ImageNet)
	require.NoError(t, err)
	require.False(t, p.Random(), "an eval pipeline never augments")
	require.Equal(t, []Step{Resize{Size: 56}, CenterCrop{Height: 48, Width: 48}}, p.Steps())

	// Deterministic: no generator needed, and the output is torchvision's
	// Resize + CenterCrop + ToTensor + Normalize on the same pixels.
	src := fixtureImage(t, "src_97x31.png")
	got, err := p.Apply(src, nil)
	require.NoError(t, err)
	want := ToCHW(CenterCrop{Height: 48, Width: 48}.Apply(Resize{Size: 56}.Apply(src, nil), nil))
	ImageNet.Apply(want)
	require.Equal(t, want, got)

	for _, bad := range [][2]int{{0, 0}, {32, 0}, {32, 64}} {
		_, err := EvalPipeline(bad[0], bad[1], ImageNet)
		require.Error(t, err, "EvalPipeline(%d, %d)", bad[0], bad[1])
	}
}

func TestNewPipeline(t *testing.T) {
	_, err := NewPipeline(ImageNet, Resize{Size: 8}, nil)
	require.ErrorContains(t, err, "step 1 is nil")
	p, err := NewPipeline(ImageNet)
	require.NoError(t, err)
	require.False(t, p.Random())
	out, err := p.Apply(fixtureImage(t, "src_50x50.png"), nil)
	require.NoError(t, err)
	require.Equal(t, 50, out.Width)
}

// emptyStep is a misbehaving user step.
type emptyStep struct{}

func (emptyStep) Apply(*image.NRGBA, *rand.Rand) *image.NRGBA { return &image.NRGBA{} }
func (emptyStep) Random() bool                                { return false }

func TestPipelineRejectsEmptyStepOutput(t *testing.T) {
	p, err := NewPipeline(ImageNet, emptyStep{})
	require.NoError(t, err)
	_, err = p.Apply(fixtureImage(t, "src_50x50.png"), nil)
	require.ErrorContains(t, err, "data.emptyStep returned an empty image")
}

func TestLoader(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, "cat/a.png", "dog/b.png")
	bad := filepath.Join(root, "dog", "c.png")
	require.NoError(t, os.WriteFile(bad, []byte("not a png"), 0o644))
	ds, err := ImageFolder(root)
	require.NoError(t, err)
	p, err := TrainPipeline(AugmentConfig{Size: 8, HFlip: 0.5})
	require.NoError(t, err)
	l := &Loader{Dataset: ds, Pipeline: p}
	r := rand.New(rand.NewPCG(1, 1))

	img, label, err := l.Load(1, r)
	require.NoError(t, err)
	require.Equal(t, 1, label)
	require.Len(t, img.Data, 3*8*8)

	_, _, err = l.Load(2, r)
	require.ErrorContains(t, err, bad)
	_, _, err = l.Load(3, r)
	require.ErrorContains(t, err, "index 3 out of range")
	_, _, err = l.Load(0, nil)
	require.ErrorContains(t, err, filepath.Join(root, "cat", "a.png"))
	_, _, err = (&Loader{}).Load(0, r)
	require.ErrorContains(t, err, "needs a Dataset and a Pipeline")

	// A custom decoder receives the pixel limit.
	var gotLimit int
	l.Decode = func(path string, maxPixels int) (*image.NRGBA, error) {
		gotLimit = maxPixels
		return Decode(path, maxPixels)
	}
	_, _, err = l.Load(0, r)
	require.NoError(t, err)
	require.Equal(t, DefaultMaxPixels, gotLimit)
	l.MaxPixels = 5
	_, _, err = l.Load(0, r)
	require.ErrorIs(t, err, ErrTooLarge)
}

// BenchmarkLoadTrain measures the per-sample work of a training loader on
// a 1024×768 4:2:0 JPEG: decode, RandomResizedCrop to 224, flip, ToCHW,
// normalise.
func BenchmarkLoadTrain(b *testing.B) {
	path := filepath.Join(b.TempDir(), "photo.jpg")
	src := image.NewYCbCr(image.Rect(0, 0, 1024, 768), image.YCbCrSubsampleRatio420)
	for i := range src.Y {
		src.Y[i] = uint8(i * 7)
	}
	for i := range src.Cb {
		src.Cb[i], src.Cr[i] = uint8(i*3), uint8(i*5)
	}
	f, err := os.Create(path)
	require.NoError(b, err)
	require.NoError(b, jpeg.Encode(f, src, &jpeg.Options{Quality: 90}))
	require.NoError(b, f.Close())
	ds := &Dataset{Root: filepath.Dir(path), Classes: []string{"a", "b"}, Samples: []Sample{{Path: path}}}
	p, err := TrainPipeline(AugmentConfig{Size: 224, HFlip: 0.5})
	require.NoError(b, err)
	l := &Loader{Dataset: ds, Pipeline: p}
	r := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for range b.N {
		if _, _, err := l.Load(0, r); err != nil {
			b.Fatal(err)
		}
	}
}
