package tensorfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Read reads the tensors of a PyTorch checkpoint or a safetensors file,
// telling them apart by their content rather than by their file name
// extension. The metadata of a safetensors file is dropped; use
// ReadSafetensors to get it.
func Read(path string) ([]Tensor, error) {
	f, size, err := openFile(path)
	if err != nil {
		return nil, fmt.Errorf("tensorfile: %s: %w", path, err)
	}
	format, err := sniff(f, size)
	f.Close()
	switch {
	case err != nil:
		return nil, fmt.Errorf("tensorfile: %s: %w", path, err)
	case format == formatSafetensors:
		tensors, _, err := ReadSafetensors(path)
		return tensors, err
	case format == formatUnknown:
		return nil, fmt.Errorf("tensorfile: %s: unknown format: neither a PyTorch checkpoint nor a safetensors file", path)
	}
	return ReadPTH(path)
}

// format is a kind of tensor file.
type format int

const (
	formatUnknown     format = iota
	formatZip                // a PyTorch checkpoint in the zip format
	formatPickle             // a PyTorch checkpoint in the legacy format
	formatSafetensors        // a safetensors file
)

var zipMagic = []byte("PK\x03\x04")

// sniff tells the format of a file of the given size from its first bytes.
// A safetensors file begins with a header length that fits in the file,
// followed by '{'; a pickle begins with the PROTO opcode.
func sniff(f *os.File, size int64) (format, error) {
	var head [9]byte
	n, err := f.ReadAt(head[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return formatUnknown, fmt.Errorf("cannot read: %w", err)
	}
	switch {
	case bytes.HasPrefix(head[:n], zipMagic):
		return formatZip, nil
	case n == len(head) && head[8] == '{' && binary.LittleEndian.Uint64(head[:8]) <= uint64(size-8):
		return formatSafetensors, nil
	case n > 0 && head[0] == pickleProto:
		return formatPickle, nil
	}
	return formatUnknown, nil
}
