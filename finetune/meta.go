package finetune

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/finetune-go/finetune/internal/printable"
)

// maxHeader bounds a safetensors header read by ReadMeta.
const maxHeader = 100 << 20

// ReadMeta reads what a checkpoint says about its model (configuration,
// classes, metrics, versions) from the file's header, without reading its
// tensors or needing the pretrained weights a delta checkpoint builds on.
func ReadMeta(path string) (_ Meta, err error) {
	defer printable.Escape(&err)
	md, err := readHeaderMetadata(path)
	if err != nil {
		return Meta{}, fmt.Errorf("checkpoint: %w", err)
	}
	return decodeMeta(path, md)
}

// readHeaderMetadata reads the metadata of the safetensors file at path
// from its header alone; its errors name the path.
func readHeaderMetadata(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("%s: not a safetensors file: %w", path, err)
	}
	if n == 0 || n > maxHeader {
		return nil, fmt.Errorf("%s: not a safetensors file (header of %d bytes)", path, n)
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(f, header); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	var h struct {
		Metadata map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(header, &h); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	return h.Metadata, nil
}
