package data

import (
	"fmt"
	"image"
)

// CHW is a three-channel float32 image in channel-major order, the layout
// of a torchvision image tensor: the value of channel c at (x, y) is
// Data[c*Height*Width + y*Width + x].
type CHW struct {
	Data          []float32
	Height, Width int
}

// ToCHW converts the RGB channels of img to CHW order, scaling each byte v
// to v/255 in float32 arithmetic as torchvision's transforms.ToTensor does.
// Alpha is ignored.
func ToCHW(img *image.NRGBA) CHW {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	plane := w * h
	out := CHW{Data: make([]float32, 3*plane), Height: h, Width: w}
	for y := range h {
		row := img.Pix[img.PixOffset(b.Min.X, b.Min.Y+y):]
		for x := range w {
			for c := range 3 {
				out.Data[c*plane+y*w+x] = float32(row[4*x+c]) / 255
			}
		}
	}
	return out
}

// Normalize standardises each channel as torchvision's
// transforms.Normalize: (v - Mean[c]) / Std[c], in float32.
type Normalize struct {
	Mean, Std [3]float32
}

// ImageNet is the normalisation of torchvision's ImageNet-pretrained
// models, ResNet50 among them.
var ImageNet = Normalize{
	Mean: [3]float32{0.485, 0.456, 0.406},
	Std:  [3]float32{0.229, 0.224, 0.225},
}

// Apply normalises t in place.
func (n Normalize) Apply(t CHW) {
	plane := t.Height * t.Width
	for c := range 3 {
		m, s := n.Mean[c], n.Std[c]
		ch := t.Data[c*plane : (c+1)*plane]
		for i, v := range ch {
			ch[i] = (v - m) / s
		}
	}
}

func (n Normalize) validate() error {
	for c, s := range n.Std {
		if !(s > 0) {
			return fmt.Errorf("Normalize: std[%d] = %v must be positive", c, s)
		}
	}
	return nil
}
