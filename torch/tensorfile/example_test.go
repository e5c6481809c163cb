package tensorfile_test

import (
	"encoding/binary"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/finetune-go/finetune/torch/tensorfile"
)

func ExampleWriteSafetensors() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "linear.safetensors")

	weight := make([]byte, 0, 6*4)
	for i := range 6 {
		weight = binary.LittleEndian.AppendUint32(weight, math.Float32bits(float32(i)/2))
	}
	tensors := []tensorfile.Tensor{
		{Name: "weight", DType: tensorfile.F32, Shape: []int64{2, 3}, Data: weight},
		{Name: "bias", DType: tensorfile.F32, Shape: []int64{2}, Data: make([]byte, 2*4)},
	}
	if err := tensorfile.WriteSafetensors(path, tensors, map[string]string{"format": "pt"}); err != nil {
		log.Fatal(err)
	}

	// Read tells a safetensors file from a PyTorch checkpoint by its content.
	read, err := tensorfile.Read(path)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range read {
		fmt.Println(t.Name, t.DType, t.Shape, len(t.Data), "bytes")
	}
	// Output:
	// weight F32 [2 3] 24 bytes
	// bias F32 [2] 8 bytes
}
