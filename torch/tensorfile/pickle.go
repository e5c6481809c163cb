package tensorfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// argKind says how the argument of a pickle opcode is encoded.
type argKind int

const (
	argNone   argKind = iota
	argFixed          // a fixed number of bytes
	argLen1           // a 1-byte length, then that many bytes
	argLen4           // a 4-byte little-endian length, then that many bytes
	argGlobal         // two newline-terminated lines: module and name
)

type opcode struct {
	kind argKind
	size int // for argFixed
}

// opcodes are the pickle opcodes a state dict may use: those that
// torch.load(weights_only=True) implements, plus BINFLOAT.
var opcodes = map[byte]opcode{
	0x80: {argFixed, 1},  // PROTO
	'.':  {argNone, 0},   // STOP
	'(':  {argNone, 0},   // MARK
	'c':  {argGlobal, 0}, // GLOBAL
	'R':  {argNone, 0},   // REDUCE
	'b':  {argNone, 0},   // BUILD
	'Q':  {argNone, 0},   // BINPERSID
	'a':  {argNone, 0},   // APPEND
	'e':  {argNone, 0},   // APPENDS
	's':  {argNone, 0},   // SETITEM
	'u':  {argNone, 0},   // SETITEMS
	't':  {argNone, 0},   // TUPLE
	0x85: {argNone, 0},   // TUPLE1
	0x86: {argNone, 0},   // TUPLE2
	0x87: {argNone, 0},   // TUPLE3
	')':  {argNone, 0},   // EMPTY_TUPLE
	']':  {argNone, 0},   // EMPTY_LIST
	'}':  {argNone, 0},   // EMPTY_DICT
	0x8f: {argNone, 0},   // EMPTY_SET
	'N':  {argNone, 0},   // NONE
	0x88: {argNone, 0},   // NEWTRUE
	0x89: {argNone, 0},   // NEWFALSE
	'J':  {argFixed, 4},  // BININT
	'K':  {argFixed, 1},  // BININT1
	'M':  {argFixed, 2},  // BININT2
	0x8a: {argLen1, 0},   // LONG1
	'G':  {argFixed, 8},  // BINFLOAT
	'X':  {argLen4, 0},   // BINUNICODE
	'U':  {argLen1, 0},   // SHORT_BINSTRING
	'h':  {argFixed, 1},  // BINGET
	'j':  {argFixed, 4},  // LONG_BINGET
	'q':  {argFixed, 1},  // BINPUT
	'r':  {argFixed, 4},  // LONG_BINPUT
}

var errTruncatedPickle = errors.New("the pickle data is truncated")

// scanPickle checks the pickle at the start of data without running it: every
// opcode must be allowed, every argument must lie within data and every
// global must be allowed. It returns the length of the pickle, up to and
// including its STOP opcode.
//
// Checking lengths first keeps the decoder from allocating buffers sized by
// corrupt length fields.
func scanPickle(data []byte) (int, error) {
	pos := 0
	for pos < len(data) {
		code := data[pos]
		op, ok := opcodes[code]
		if !ok {
			return 0, fmt.Errorf("pickle opcode 0x%02x at byte %d is not allowed in a state dict", code, pos)
		}
		pos++
		switch op.kind {
		case argFixed:
			pos += op.size
		case argLen1:
			if pos >= len(data) {
				return 0, errTruncatedPickle
			}
			pos += 1 + int(data[pos])
		case argLen4:
			if len(data)-pos < 4 {
				return 0, errTruncatedPickle
			}
			n := binary.LittleEndian.Uint32(data[pos:])
			if uint64(n) > uint64(len(data)-pos-4) {
				return 0, errTruncatedPickle
			}
			pos += 4 + int(n)
		case argGlobal:
			module, rest, ok1 := bytes.Cut(data[pos:], []byte("\n"))
			name, _, ok2 := bytes.Cut(rest, []byte("\n"))
			if !ok1 || !ok2 {
				return 0, errTruncatedPickle
			}
			if _, err := findClass(string(module), string(name)); err != nil {
				return 0, err
			}
			pos += len(module) + len(name) + 2
		}
		if pos > len(data) {
			return 0, errTruncatedPickle
		}
		if code == '.' {
			return pos, nil
		}
	}
	return 0, errTruncatedPickle
}

// hookError marks an error returned by this package's unpickling hooks, as
// opposed to one from the pickle decoder itself.
type hookError struct{ err error }

func (e *hookError) Error() string { return e.err.Error() }

func hookErrorf(format string, args ...any) error {
	return &hookError{fmt.Errorf(format, args...)}
}

// unpickle decodes the pickle at the start of data, which scanPickle must have
// accepted. persistentLoad resolves persistent ids.
func unpickle(data []byte, persistentLoad func(any) (any, error)) (value any, err error) {
	defer func() {
		if r := recover(); r != nil {
			value, err = nil, fmt.Errorf("the pickle data is malformed (the decoder failed: %v)", r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = func(module, name string) (any, error) {
		class, err := findClass(module, name)
		if err != nil {
			return nil, &hookError{err}
		}
		return class, nil
	}
	u.PersistentLoad = persistentLoad
	value, err = u.Load()
	var hook *hookError
	if errors.As(err, &hook) {
		return nil, hook.err
	}
	if err != nil {
		return nil, fmt.Errorf("the pickle data is malformed: %w", err)
	}
	return value, nil
}

// storageClass is the value of a global naming a storage class such as
// torch.FloatStorage.
type storageClass struct{ dtype DType }

var storageClasses = map[string]DType{
	"DoubleStorage":   F64,
	"FloatStorage":    F32,
	"HalfStorage":     F16,
	"BFloat16Storage": BF16,
	"LongStorage":     I64,
	"IntStorage":      I32,
	"ShortStorage":    I16,
	"CharStorage":     I8,
	"ByteStorage":     U8,
	"BoolStorage":     Bool,
}

// maxGlobalInMessage is the length beyond which a refused global's name is
// cut short in the error message; a corrupt file may hold a very long one.
const maxGlobalInMessage = 100

// findClass returns the value of an allowed global, or an error naming a
// refused one.
func findClass(module, name string) (any, error) {
	if module == "torch" {
		if dtype, ok := storageClasses[name]; ok {
			return storageClass{dtype}, nil
		}
	}
	switch module + "." + name {
	case "collections.OrderedDict":
		return &types.OrderedDictClass{}, nil
	case "torch._utils._rebuild_tensor":
		return rebuildTensor{name: name, minArgs: 4, maxArgs: 4}, nil
	case "torch._utils._rebuild_tensor_v2":
		// storage, storage_offset, size, stride, requires_grad,
		// backward_hooks and, since PyTorch 2.0, metadata.
		return rebuildTensor{name: name, minArgs: 6, maxArgs: 7}, nil
	case "torch._utils._rebuild_parameter":
		// data, requires_grad, backward_hooks.
		return rebuildParameter{name: name, args: 3}, nil
	case "torch._utils._rebuild_parameter_with_state":
		// data, requires_grad, backward_hooks, state.
		return rebuildParameter{name: name, args: 4}, nil
	}
	global := module + "." + name
	if len(global) > maxGlobalInMessage {
		global = global[:maxGlobalInMessage] + "..."
	}
	return nil, fmt.Errorf("refusing to load global %q: only state-dict classes are allowed", global)
}

// storage is a typed PyTorch storage: numel elements of dtype, whose bytes
// are filled in once the pickle has been decoded.
type storage struct {
	key   string
	dtype DType
	numel int64
	data  []byte
}

// tensorView is a tensor as pickled: a view of a storage.
type tensorView struct {
	storage *storage
	offset  int64
	shape   []int64
	stride  []int64
}

// rebuildTensor implements torch._utils._rebuild_tensor and
// _rebuild_tensor_v2, whose first four arguments are the storage, the
// storage offset, the size and the stride; the others are ignored.
type rebuildTensor struct {
	name             string
	minArgs, maxArgs int
}

func (f rebuildTensor) Call(args ...any) (any, error) {
	if len(args) < f.minArgs || len(args) > f.maxArgs {
		return nil, hookErrorf("%s called with %d arguments", f.name, len(args))
	}
	st, ok := args[0].(*storage)
	if !ok {
		return nil, hookErrorf("%s called with a value of type %s instead of a storage", f.name, pythonType(args[0]))
	}
	offset, ok := args[1].(int)
	if !ok {
		return nil, hookErrorf("%s called with a storage offset of type %s", f.name, pythonType(args[1]))
	}
	shape, err := intTuple(args[2])
	if err != nil {
		return nil, hookErrorf("%s called with an invalid size: %w", f.name, err)
	}
	stride, err := intTuple(args[3])
	if err != nil {
		return nil, hookErrorf("%s called with an invalid stride: %w", f.name, err)
	}
	return &tensorView{storage: st, offset: int64(offset), shape: shape, stride: stride}, nil
}

// rebuildParameter implements torch._utils._rebuild_parameter and
// _rebuild_parameter_with_state, which wrap a tensor in a Parameter; only
// the tensor is kept.
type rebuildParameter struct {
	name string
	args int
}

func (f rebuildParameter) Call(args ...any) (any, error) {
	if len(args) != f.args {
		return nil, hookErrorf("%s called with %d arguments", f.name, len(args))
	}
	t, ok := args[0].(*tensorView)
	if !ok {
		return nil, hookErrorf("%s called with a value of type %s instead of a tensor", f.name, pythonType(args[0]))
	}
	return t, nil
}

// intTuple converts a tuple of ints.
func intTuple(v any) ([]int64, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("got a value of type %s, want a tuple", pythonType(v))
	}
	out := make([]int64, len(*t))
	for i, e := range *t {
		n, ok := e.(int)
		if !ok {
			return nil, fmt.Errorf("element %d is of type %s, want an int", i, pythonType(e))
		}
		out[i] = int64(n)
	}
	return out, nil
}

// storageLoader resolves the persistent ids by which a checkpoint's pickle
// refers to storages.
type storageLoader struct {
	// legacy is set for the legacy format, whose ids have a sixth element.
	legacy   bool
	storages map[string]*storage
	// order lists the storages in the order they were first referred to.
	order []*storage
}

func newStorageLoader(legacy bool) *storageLoader {
	return &storageLoader{legacy: legacy, storages: make(map[string]*storage)}
}

// load resolves a persistent id ('storage', storage class, key, location,
// numel), followed in the legacy format by view metadata that must be None.
func (l *storageLoader) load(pid any) (any, error) {
	t, ok := pid.(*types.Tuple)
	want := 5
	if l.legacy {
		want = 6
	}
	if !ok || len(*t) != want {
		return nil, hookErrorf("unsupported persistent id: want a tuple of %d elements naming a storage", want)
	}
	if kind, _ := t.Get(0).(string); kind != "storage" {
		return nil, hookErrorf("unsupported persistent id: only storages are allowed")
	}
	class, ok1 := t.Get(1).(storageClass)
	key, ok2 := t.Get(2).(string)
	numel, ok3 := t.Get(4).(int)
	if !ok1 || !ok2 || !ok3 || numel < 0 {
		return nil, hookErrorf("malformed storage reference: want ('storage', storage class, key, location, element count)")
	}
	if l.legacy && t.Get(5) != nil {
		return nil, hookErrorf("storage %q is a storage view, which only PyTorch before 0.4 wrote and is not supported", key)
	}
	if st, ok := l.storages[key]; ok {
		if st.dtype != class.dtype || st.numel != int64(numel) {
			return nil, hookErrorf("storage %q is used both as %d %s and as %d %s elements", key, st.numel, st.dtype, numel, class.dtype)
		}
		return st, nil
	}
	st := &storage{key: key, dtype: class.dtype, numel: int64(numel)}
	l.storages[key] = st
	l.order = append(l.order, st)
	return st, nil
}

// pythonType names the Python type of a decoded pickle value, for messages.
func pythonType(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case *types.Tuple:
		return "tuple"
	case *types.List:
		return "list"
	case *types.Dict, *types.OrderedDict:
		return "dict"
	case *types.Set:
		return "set"
	case *storage:
		return "storage"
	case *tensorView:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}
