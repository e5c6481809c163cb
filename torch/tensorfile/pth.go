package tensorfile

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"strconv"
	"strings"

	"github.com/nlpodyssey/gopickle/types"
)

// pickleProto is the PROTO opcode, with which torch.save's pickles begin.
const pickleProto = 0x80

// ReadPTH reads a state dict saved by torch.save, in the zip or the legacy
// format, and returns its tensors in the order of the file's dict. See the
// package documentation for what is accepted.
func ReadPTH(path string) ([]Tensor, error) {
	tensors, err := readPTH(path)
	if err != nil {
		return nil, fmt.Errorf("tensorfile: %s: %w", path, err)
	}
	return tensors, nil
}

func readPTH(path string) ([]Tensor, error) {
	f, size, err := openFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	format, err := sniff(f, size)
	switch {
	case err != nil:
		return nil, err
	case format == formatZip:
		return readZipPTH(f, size)
	case format == formatPickle:
		data := make([]byte, size)
		if _, err := f.ReadAt(data, 0); err != nil {
			return nil, fmt.Errorf("cannot read: %w", err)
		}
		return readLegacyPTH(data)
	case format == formatSafetensors:
		return nil, errors.New("this is a safetensors file, not a PyTorch checkpoint")
	}
	return nil, errors.New("not a PyTorch checkpoint: it is neither a zip archive nor a pickle")
}

// openFile opens a regular, non-empty file and returns its size. Its errors
// do not repeat the path.
func openFile(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, 0, fmt.Errorf("cannot open: %w", err)
	}
	info, err := f.Stat()
	switch {
	case err != nil:
		err = fmt.Errorf("cannot stat: %w", err)
	case info.IsDir():
		err = errors.New("is a directory, not a file")
	case info.Size() == 0:
		err = errors.New("the file is empty")
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, info.Size(), nil
}

// readZipPTH reads the zip format: records <archive>/data.pkl,
// <archive>/data/<storage key>, <archive>/version or <archive>/.data/version,
// and optionally <archive>/byteorder, where <archive> is the directory of the
// first record.
func readZipPTH(r io.ReaderAt, size int64) ([]Tensor, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("not a valid zip archive (it may be truncated or corrupt): %w", err)
	}
	if len(zr.File) == 0 {
		return nil, errors.New("the zip archive is empty")
	}
	records := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		records[f.Name] = f
	}
	archive, _, ok := strings.Cut(zr.File[0].Name, "/")
	if !ok {
		return nil, fmt.Errorf("not a PyTorch checkpoint: record %q is not inside a directory", zr.File[0].Name)
	}
	read := func(name string) ([]byte, error) {
		f, ok := records[archive+"/"+name]
		if !ok {
			return nil, fmt.Errorf("not a PyTorch checkpoint: the zip archive has no record %q", archive+"/"+name)
		}
		return readRecord(f, size)
	}

	// Like PyTorch, prefer .data/version, which newer versions write.
	versionRecord := "version"
	if _, ok := records[archive+"/.data/version"]; ok {
		versionRecord = ".data/version"
	}
	version, err := read(versionRecord)
	if err != nil {
		return nil, err
	}
	if v, err := strconv.Atoi(strings.TrimSpace(string(version))); err != nil || v < 1 {
		return nil, fmt.Errorf("the checkpoint's format version %q is not a positive integer", version)
	}
	if _, ok := records[archive+"/byteorder"]; ok {
		order, err := read("byteorder")
		if err != nil {
			return nil, err
		}
		if string(order) != "little" {
			return nil, fmt.Errorf("the checkpoint's byte order is %q; only little-endian checkpoints are supported", order)
		}
	}

	pkl, err := read("data.pkl")
	if err != nil {
		return nil, err
	}
	loader := newStorageLoader(false)
	value, err := decodePickle(pkl, loader.load)
	if err != nil {
		return nil, fmt.Errorf("data.pkl: %w", err)
	}
	for _, st := range loader.order {
		data, err := read("data/" + st.key)
		if err != nil {
			return nil, err
		}
		if err := st.setData(data); err != nil {
			return nil, err
		}
	}
	return stateDictTensors(value)
}

// readRecord reads a zip record, which torch.save stores uncompressed, and
// checks its CRC. limit is the size of the whole archive.
func readRecord(f *zip.File, limit int64) ([]byte, error) {
	if f.Method != zip.Store {
		return nil, fmt.Errorf("record %q is compressed, which PyTorch checkpoints never are", f.Name)
	}
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("record %q claims to be larger than the whole file", f.Name)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("record %q is corrupt: %w", f.Name, err)
	}
	defer rc.Close()
	data := make([]byte, f.UncompressedSize64)
	if _, err := io.ReadFull(rc, data); err != nil {
		return nil, fmt.Errorf("record %q is truncated or corrupt: %w", f.Name, err)
	}
	// Reading on to the end makes archive/zip verify the checksum.
	if _, err := rc.Read(make([]byte, 1)); err != io.EOF {
		if err == nil {
			err = errors.New("longer than its recorded size")
		}
		return nil, fmt.Errorf("record %q is corrupt: %w", f.Name, err)
	}
	return data, nil
}

// legacyMagic is the number that begins a checkpoint in the legacy format.
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

// legacyProtocolVersion is the version of the legacy format.
const legacyProtocolVersion = 1001

// readLegacyPTH reads the legacy format: pickles of the magic number, the
// protocol version, the system information and the object itself, then a
// pickle listing the storage keys, then for each of those keys the storage's
// element count as an int64 followed by its bytes.
func readLegacyPTH(data []byte) ([]Tensor, error) {
	pos := 0
	next := func(what string, persistentLoad func(any) (any, error)) (any, error) {
		n, err := scanPickle(data[pos:])
		if err != nil {
			return nil, fmt.Errorf("reading the %s: %w", what, err)
		}
		v, err := unpickle(data[pos:pos+n], persistentLoad)
		if err != nil {
			return nil, fmt.Errorf("reading the %s: %w", what, err)
		}
		pos += n
		return v, nil
	}

	magic, err := next("magic number", nil)
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, errors.New("not a PyTorch checkpoint: the legacy format's magic number is missing")
	}
	version, err := next("protocol version", nil)
	if err != nil {
		return nil, err
	}
	if version != legacyProtocolVersion {
		return nil, fmt.Errorf("unsupported legacy protocol version %v", version)
	}
	sysInfo, err := next("system information", nil)
	if err != nil {
		return nil, err
	}
	if little, _ := dictGet(sysInfo, "little_endian"); little != true {
		return nil, errors.New("the checkpoint does not say it was saved on a little-endian machine; only little-endian checkpoints are supported")
	}
	loader := newStorageLoader(true)
	value, err := next("state dict", loader.load)
	if err != nil {
		return nil, err
	}
	keys, err := next("storage keys", nil)
	if err != nil {
		return nil, err
	}
	keyList, ok := keys.(*types.List)
	if !ok {
		return nil, fmt.Errorf("the storage keys are of type %s, not a list", pythonType(keys))
	}
	for _, k := range *keyList {
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("the storage keys hold a value of type %s, not a string", pythonType(k))
		}
		st, ok := loader.storages[key]
		if !ok {
			return nil, fmt.Errorf("the file holds data for storage %q, which no tensor uses", key)
		}
		if st.data != nil {
			return nil, fmt.Errorf("the file holds data for storage %q twice", key)
		}
		if len(data)-pos < 8 {
			return nil, fmt.Errorf("the file is truncated: storage %q is missing", key)
		}
		numel := int64(binary.LittleEndian.Uint64(data[pos:]))
		pos += 8
		if numel != st.numel {
			return nil, fmt.Errorf("storage %q holds %d elements, but the state dict says %d", key, numel, st.numel)
		}
		elem := int64(st.dtype.Size())
		if numel > int64(len(data)-pos)/elem {
			return nil, fmt.Errorf("the file is truncated: storage %q lacks some of its %d elements", key, numel)
		}
		end := pos + int(numel*elem)
		st.data = data[pos:end:end]
		pos = end
	}
	for _, st := range loader.order {
		if st.data == nil {
			return nil, fmt.Errorf("the file holds no data for storage %q", st.key)
		}
	}
	if pos != len(data) {
		return nil, fmt.Errorf("%d unexpected bytes follow the last storage", len(data)-pos)
	}
	return stateDictTensors(value)
}

// decodePickle checks and decodes a pickle that must fill the whole of data.
func decodePickle(data []byte, persistentLoad func(any) (any, error)) (any, error) {
	n, err := scanPickle(data)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("%d unexpected bytes follow the pickle", len(data)-n)
	}
	return unpickle(data[:n], persistentLoad)
}

// setData gives a storage its bytes, which must be exactly as many as its
// elements need.
func (s *storage) setData(data []byte) error {
	elem := int64(s.dtype.Size())
	if int64(len(data))%elem != 0 || int64(len(data))/elem != s.numel {
		return fmt.Errorf("storage %q has %d bytes, which are not %d elements of %s", s.key, len(data), s.numel, s.dtype)
	}
	s.data = data
	return nil
}

// stateDictTensors returns the tensors of a decoded state dict, or of the
// state dict held under "state_dict" or "model" by a decoded checkpoint dict.
func stateDictTensors(value any) ([]Tensor, error) {
	entries, ok := dictEntries(value)
	if !ok {
		return nil, fmt.Errorf("the checkpoint holds a value of type %s, not a state dict", pythonType(value))
	}
	for _, key := range []string{"state_dict", "model"} {
		if inner, ok := dictGet(value, key); ok {
			if innerEntries, ok := dictEntries(inner); ok {
				entries = innerEntries
				break
			}
		}
	}

	tensors := make([]Tensor, len(entries))
	views := make([]*tensorView, len(entries))
	names := make(map[string]bool, len(entries))
	storages := make(map[*storage]bool)
	budget := int64(maxExtraCopyBytes)
	for i, e := range entries {
		name, ok := e.Key.(string)
		if !ok {
			return nil, fmt.Errorf("the state dict has a key of type %s; keys must be strings", pythonType(e.Key))
		}
		if names[name] {
			return nil, fmt.Errorf("the state dict has entry %q twice", name)
		}
		names[name] = true
		v, ok := e.Value.(*tensorView)
		if !ok {
			return nil, fmt.Errorf("state dict entry %q holds a value of type %s, not a tensor", name, pythonType(e.Value))
		}
		if !storages[v.storage] {
			storages[v.storage] = true
			budget += int64(len(v.storage.data))
		}
		tensors[i] = Tensor{Name: name, DType: v.storage.dtype, Shape: v.shape}
		views[i] = v
	}
	for i, v := range views {
		data, err := v.materialize(&budget)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", tensors[i].Name, err)
		}
		tensors[i].Data = data
	}
	return tensors, nil
}

// maxExtraCopyBytes is how much more than the total size of a checkpoint's
// storages its strided tensors may need when copied.
const maxExtraCopyBytes = 1 << 30

// dictEntries returns the entries of a dict or OrderedDict, in order.
func dictEntries(v any) ([]types.DictEntry, bool) {
	switch d := v.(type) {
	case *types.Dict:
		return *d, true
	case *types.OrderedDict:
		entries := make([]types.DictEntry, 0, d.Len())
		for e := d.List.Front(); e != nil; e = e.Next() {
			entry := e.Value.(*types.OrderedDictEntry)
			entries = append(entries, types.DictEntry{Key: entry.Key, Value: entry.Value})
		}
		return entries, true
	}
	return nil, false
}

// dictGet returns the value of a dict or OrderedDict under a string key.
func dictGet(v any, key string) (any, bool) {
	entries, _ := dictEntries(v)
	for _, e := range entries {
		if e.Key == key {
			return e.Value, true
		}
	}
	return nil, false
}

// materialize returns the elements of a view in row-major order. A view whose
// elements lie contiguously in its storage shares the storage's memory; any
// other is copied, and the copy's size is taken from budget.
func (v *tensorView) materialize(budget *int64) ([]byte, error) {
	if len(v.stride) != len(v.shape) {
		return nil, fmt.Errorf("size %v and stride %v differ in length", v.shape, v.stride)
	}
	size, err := byteSize(v.shape, v.storage.dtype)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return []byte{}, nil
	}
	// room is how many elements past the first one the view may reach.
	room := v.storage.numel - 1 - v.offset
	if v.offset < 0 || room < 0 {
		return nil, fmt.Errorf("storage offset %d is outside its storage of %d elements", v.offset, v.storage.numel)
	}
	contiguous := true
	want := int64(1)
	for i := len(v.shape) - 1; i >= 0; i-- {
		n, s := v.shape[i], v.stride[i]
		if s < 0 {
			return nil, fmt.Errorf("stride %v is negative", v.stride)
		}
		if n > 1 && s > room/(n-1) {
			return nil, fmt.Errorf("size %v, stride %v and offset %d reach past the end of its storage of %d elements", v.shape, v.stride, v.offset, v.storage.numel)
		}
		room -= (n - 1) * s
		if n != 1 && s != want {
			contiguous = false
		}
		want *= n
	}

	elem := int64(v.storage.dtype.Size())
	src := v.storage.data
	if contiguous {
		start := v.offset * elem
		return src[start : start+size : start+size], nil
	}
	if size > *budget {
		return nil, errors.New("its strides would need more memory than the whole checkpoint; the file looks crafted")
	}
	*budget -= size

	out := make([]byte, 0, size)
	last := len(v.shape) - 1
	rowLen, rowStride := v.shape[last], v.stride[last]
	index := make([]int64, last)
	for {
		base := v.offset
		for i, j := range index {
			base += j * v.stride[i]
		}
		if rowStride == 1 {
			out = append(out, src[base*elem:(base+rowLen)*elem]...)
		} else {
			for j := int64(0); j < rowLen; j++ {
				at := (base + j*rowStride) * elem
				out = append(out, src[at:at+elem]...)
			}
		}
		i := last - 1
		for ; i >= 0; i-- {
			index[i]++
			if index[i] < v.shape[i] {
				break
			}
			index[i] = 0
		}
		if i < 0 {
			return out, nil
		}
	}
}
