package tensorfile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"unicode/utf8"
)

// metadataKey is the header entry holding a safetensors file's metadata.
const metadataKey = "__metadata__"

// maxHeaderSize is the largest header accepted, as in the reference
// implementation.
const maxHeaderSize = 100_000_000

// headerEntry is the header entry describing one tensor.
type headerEntry struct {
	DType       DType   `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// ReadSafetensors reads a safetensors file. It returns the tensors in the
// order of their data in the file, and the file's metadata, which is nil if
// the file has none. The tensors share one buffer, without overlapping.
func ReadSafetensors(path string) ([]Tensor, map[string]string, error) {
	tensors, metadata, err := readSafetensors(path)
	if err != nil {
		return nil, nil, fmt.Errorf("tensorfile: %s: %w", path, err)
	}
	return tensors, metadata, nil
}

func readSafetensors(path string) ([]Tensor, map[string]string, error) {
	f, size, err := openFile(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if size < 8 {
		return nil, nil, fmt.Errorf("the file is truncated: it has %d bytes, fewer than the 8 of the header length", size)
	}
	var lenBuf [8]byte
	if _, err := f.ReadAt(lenBuf[:], 0); err != nil {
		return nil, nil, fmt.Errorf("cannot read: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeaderSize {
		return nil, nil, fmt.Errorf("the header length %d is over the limit of %d bytes; this is not a safetensors file", n, maxHeaderSize)
	}
	if n > uint64(size-8) {
		return nil, nil, fmt.Errorf("the header length %d is more than the rest of the file; the file may be truncated", n)
	}
	header := make([]byte, n)
	if _, err := f.ReadAt(header, 8); err != nil {
		return nil, nil, fmt.Errorf("cannot read: %w", err)
	}
	dataLen := size - 8 - int64(n)
	tensors, offsets, metadata, err := parseHeader(header, dataLen)
	if err != nil {
		return nil, nil, err
	}
	data := make([]byte, dataLen)
	if _, err := f.ReadAt(data, 8+int64(n)); err != nil {
		return nil, nil, fmt.Errorf("cannot read: %w", err)
	}
	for i := range tensors {
		begin, end := offsets[i][0], offsets[i][1]
		tensors[i].Data = data[begin:end:end]
	}
	return tensors, metadata, nil
}

// parseHeader parses and validates a safetensors header for a data buffer of
// dataLen bytes. It returns the tensors, without their data, in the order of
// their data, together with their data offsets, and the metadata.
func parseHeader(header []byte, dataLen int64) ([]Tensor, [][2]int64, map[string]string, error) {
	if !utf8.Valid(header) {
		return nil, nil, nil, errors.New("the header is not valid UTF-8")
	}
	if len(header) == 0 || header[0] != '{' {
		return nil, nil, nil, errors.New("the header does not begin with '{'; this is not a safetensors file")
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, nil, nil, fmt.Errorf("the header is not a valid JSON object: %w", err)
	}
	if len(bytes.Trim(header[dec.InputOffset():], " ")) != 0 {
		return nil, nil, nil, errors.New("the header has trailing bytes other than space padding")
	}

	var metadata map[string]string
	type located struct {
		tensor Tensor
		offset [2]int64
	}
	var entries []located
	for name, value := range raw {
		if name == metadataKey {
			if err := json.Unmarshal(value, &metadata); err != nil {
				return nil, nil, nil, fmt.Errorf("the header's %s is not an object of strings: %w", metadataKey, err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(value, &e); err != nil {
			return nil, nil, nil, fmt.Errorf("tensor %q: invalid header entry: %w", name, err)
		}
		if e.Shape == nil || len(e.DataOffsets) != 2 {
			return nil, nil, nil, fmt.Errorf("tensor %q: the header entry needs a shape and two data offsets", name)
		}
		size, err := byteSize(e.Shape, e.DType)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin < 0 || end < begin || end > dataLen {
			why := ""
			if begin >= 0 && end >= begin {
				// A well-formed entry past the end: the usual cause is a
				// copy or download cut short.
				why = "; the file is truncated"
			}
			return nil, nil, nil, fmt.Errorf("tensor %q: data offsets [%d, %d] are outside the %d bytes of data%s", name, begin, end, dataLen, why)
		}
		if end-begin != size {
			return nil, nil, nil, fmt.Errorf("tensor %q: data offsets [%d, %d] span %d bytes, but shape %v of %s needs %d", name, begin, end, end-begin, e.Shape, e.DType, size)
		}
		entries = append(entries, located{Tensor{Name: name, DType: e.DType, Shape: e.Shape}, [2]int64{begin, end}})
	}

	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if a.offset != b.offset {
			return a.offset[0] < b.offset[0] || a.offset[0] == b.offset[0] && a.offset[1] < b.offset[1]
		}
		return a.tensor.Name < b.tensor.Name
	})
	tensors := make([]Tensor, len(entries))
	offsets := make([][2]int64, len(entries))
	var next int64
	for i, e := range entries {
		switch begin := e.offset[0]; {
		case begin < next:
			return nil, nil, nil, fmt.Errorf("tensor %q: its data overlaps the previous tensor's", e.tensor.Name)
		case begin > next:
			return nil, nil, nil, fmt.Errorf("tensor %q: %d bytes before its data belong to no tensor", e.tensor.Name, begin-next)
		}
		next = e.offset[1]
		tensors[i], offsets[i] = e.tensor, e.offset
	}
	if next != dataLen {
		return nil, nil, nil, fmt.Errorf("the last %d bytes of data belong to no tensor", dataLen-next)
	}
	return tensors, offsets, metadata, nil
}

// WriteSafetensors writes tensors, with their data in the given order, and
// metadata, which may be nil, to a safetensors file. It writes a temporary
// file in the same directory, syncs it and renames it to path, so that path
// holds either its former content or the complete new file.
func WriteSafetensors(path string, tensors []Tensor, metadata map[string]string) error {
	if err := writeSafetensors(path, tensors, metadata); err != nil {
		return fmt.Errorf("tensorfile: %s: %w", path, err)
	}
	return nil
}

func writeSafetensors(path string, tensors []Tensor, metadata map[string]string) (err error) {
	header, err := encodeHeader(tensors, metadata, true)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("cannot create a temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(header)))
	w.Write(lenBuf[:])
	w.Write(header)
	for _, t := range tensors {
		w.Write(t.Data)
	}
	// A bufio.Writer keeps its first error, which Flush returns.
	if err := w.Flush(); err != nil {
		return fmt.Errorf("cannot write: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("cannot set permissions: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("cannot sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot replace the file: %w", err)
	}
	return nil
}

// SafetensorsSize returns the exact size of the file WriteSafetensors would
// write for tensors and metadata; the tensors' Data is not needed.
func SafetensorsSize(tensors []Tensor, metadata map[string]string) (int64, error) {
	header, err := encodeHeader(tensors, metadata, false)
	if err != nil {
		return 0, err
	}
	size := int64(8 + len(header))
	for _, t := range tensors {
		n, _ := byteSize(t.Shape, t.DType)
		size += n
	}
	return size, nil
}

// encodeHeader returns the safetensors header for tensors laid out in order,
// padded with spaces to a multiple of 8 bytes. With checkData, each
// tensor's Data must have the size its shape and dtype give.
func encodeHeader(tensors []Tensor, metadata map[string]string, checkData bool) ([]byte, error) {
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header[metadataKey] = metadata
	}
	var offset int64
	for i, t := range tensors {
		switch _, dup := header[t.Name]; {
		case t.Name == "":
			return nil, fmt.Errorf("tensor %d has no name", i)
		case t.Name == metadataKey:
			return nil, fmt.Errorf("tensor name %q is reserved for metadata", t.Name)
		case dup:
			return nil, fmt.Errorf("tensor name %q is used twice", t.Name)
		}
		size, err := byteSize(t.Shape, t.DType)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if checkData && int64(len(t.Data)) != size {
			return nil, fmt.Errorf("tensor %q: has %d bytes of data, but shape %v of %s needs %d", t.Name, len(t.Data), t.Shape, t.DType, size)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		header[t.Name] = headerEntry{DType: t.DType, Shape: shape, DataOffsets: []int64{offset, offset + size}}
		offset += size
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(header); err != nil {
		return nil, err
	}
	buf.Truncate(buf.Len() - 1) // the newline Encode appends
	for buf.Len()%8 != 0 {
		buf.WriteByte(' ')
	}
	return buf.Bytes(), nil
}
