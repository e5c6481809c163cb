package torch

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// op is an ATen operator, looked up in the dispatcher on first use.
type op struct {
	name, overload string
	once           sync.Once
	h              C.ft_op
	err            error
}

func newOp(name, overload string) *op { return &op{name: name, overload: overload} }

func (o *op) String() string {
	if o.overload == "" {
		return o.name
	}
	return o.name + "." + o.overload
}

func (o *op) handle() (C.ft_op, error) {
	o.once.Do(func() {
		cn, co := C.CString(o.name), C.CString(o.overload)
		defer C.free(unsafe.Pointer(cn))
		defer C.free(unsafe.Pointer(co))
		o.err = opError(o.String(), C.ft_op_find(cn, co, &o.h))
	})
	return o.h, o.err
}

// Schema returns the operator's schema as libtorch prints it.
func (o *op) schema() (string, error) {
	h, err := o.handle()
	if err != nil {
		return "", err
	}
	var out *C.char
	if err := opError(o.String(), C.ft_op_schema(h, &out)); err != nil {
		return "", err
	}
	return takeString(out), nil
}

// Argument tags; they match shim.h.
const (
	argNone          = 0
	argTensor        = 1
	argInt           = 2
	argDouble        = 3
	argBool          = 4
	argIntList       = 5
	argTensorList    = 6
	argDevice        = 7
	argString        = 8
	argGenerator     = 9
	argDoubleList    = 10
	argOptTensorList = 11
)

// Result tags; they match shim.h.
const (
	outNone       = 0
	outTensor     = 1
	outInt        = 2
	outDouble     = 3
	outBool       = 4
	outTensorList = 5
)

// args collects the arguments of one call. Builders record the first
// error (a freed tensor, say) and the call returns it.
type args struct {
	tags    []uint8
	ints    []int64
	doubles []float64
	tensors []C.ft_tensor
	bytes   []byte
	gens    []C.ft_generator
	keep    []any
	err     error
}

var argsPool = sync.Pool{New: func() any { return new(args) }}

func newArgs() *args { return argsPool.Get().(*args) }

func (a *args) release() {
	a.tags, a.ints, a.doubles = a.tags[:0], a.ints[:0], a.doubles[:0]
	a.tensors, a.bytes, a.gens = a.tensors[:0], a.bytes[:0], a.gens[:0]
	clear(a.keep)
	a.keep = a.keep[:0]
	a.err = nil
	argsPool.Put(a)
}

func (a *args) fail(err error) *args {
	if a.err == nil {
		a.err = err
	}
	return a
}

// T adds a required tensor.
func (a *args) T(t *Tensor) *args {
	h, err := t.handle()
	if err != nil {
		return a.fail(err)
	}
	a.tags = append(a.tags, argTensor)
	a.tensors = append(a.tensors, h)
	a.keep = append(a.keep, t)
	return a
}

// OptT adds an optional tensor: nil is None.
func (a *args) OptT(t *Tensor) *args {
	if t == nil {
		return a.None()
	}
	return a.T(t)
}

func (a *args) None() *args {
	a.tags = append(a.tags, argNone)
	return a
}

func (a *args) Int(v int64) *args {
	a.tags = append(a.tags, argInt)
	a.ints = append(a.ints, v)
	return a
}

func (a *args) Double(v float64) *args {
	a.tags = append(a.tags, argDouble)
	a.doubles = append(a.doubles, v)
	return a
}

func (a *args) Bool(v bool) *args {
	a.tags = append(a.tags, argBool)
	if v {
		a.ints = append(a.ints, 1)
	} else {
		a.ints = append(a.ints, 0)
	}
	return a
}

func (a *args) Ints(v []int64) *args {
	a.tags = append(a.tags, argIntList)
	a.ints = append(a.ints, int64(len(v)))
	a.ints = append(a.ints, v...)
	return a
}

func (a *args) Doubles(v []float64) *args {
	a.tags = append(a.tags, argDoubleList)
	a.ints = append(a.ints, int64(len(v)))
	a.doubles = append(a.doubles, v...)
	return a
}

func (a *args) Tensors(ts []*Tensor) *args {
	a.tags = append(a.tags, argTensorList)
	a.ints = append(a.ints, int64(len(ts)))
	for _, t := range ts {
		h, err := t.handle()
		if err != nil {
			return a.fail(err)
		}
		a.tensors = append(a.tensors, h)
		a.keep = append(a.keep, t)
	}
	return a
}

// OptTensors adds a Tensor?[] list; nil entries are None.
func (a *args) OptTensors(ts []*Tensor) *args {
	a.tags = append(a.tags, argOptTensorList)
	a.ints = append(a.ints, int64(len(ts)))
	for _, t := range ts {
		if t == nil {
			a.tensors = append(a.tensors, nil)
			continue
		}
		h, err := t.handle()
		if err != nil {
			return a.fail(err)
		}
		a.tensors = append(a.tensors, h)
		a.keep = append(a.keep, t)
	}
	return a
}

func (a *args) Device(d Device) *args {
	a.tags = append(a.tags, argDevice)
	a.ints = append(a.ints, int64(d.Type), int64(d.Index))
	return a
}

func (a *args) String(s string) *args {
	a.tags = append(a.tags, argString)
	a.ints = append(a.ints, int64(len(s)))
	a.bytes = append(a.bytes, s...)
	return a
}

// Gen adds an optional generator: nil is None (the default generator).
func (a *args) Gen(g *Generator) *args {
	if g == nil {
		return a.None()
	}
	if g.h == nil {
		return a.fail(fmt.Errorf("torch: generator used after Free"))
	}
	a.tags = append(a.tags, argGenerator)
	a.ints = append(a.ints, int64(len(a.gens)))
	a.gens = append(a.gens, g.h)
	a.keep = append(a.keep, g)
	return a
}

// DTypeArg adds a ScalarType argument.
func (a *args) DType(d DType) *args { return a.Int(int64(d)) }

// result is one output of a call.
type result struct {
	tag     uint8
	i       int64
	d       float64
	tensors []*Tensor
}

const (
	maxResults       = 8
	maxResultTensors = 8
)

// call runs the operator and releases a.
func (o *op) call(a *args, discard bool) ([]result, error) {
	defer a.release()
	if a.err != nil {
		return nil, fmt.Errorf("%v: %w", o, a.err)
	}
	h, err := o.handle()
	if err != nil {
		return nil, err
	}
	var (
		outTags    [maxResults]C.uint8_t
		outInts    [maxResults]C.int64_t
		outDoubles [maxResults]C.double
		outTensors [maxResultTensors]C.ft_tensor
		nout, nt   C.int32_t
		overflow   *C.ft_tensor
		disc       C.int32_t
	)
	if discard {
		disc = 1
	}
	msg := C.ft_op_call(h, C.int32_t(len(a.tags)), (*C.uint8_t)(ptr(a.tags)), (*C.int64_t)(ptr(a.ints)), (*C.double)(ptr(a.doubles)),
		(*C.ft_tensor)(ptr(a.tensors)), (*C.char)(ptr(a.bytes)), (*C.ft_generator)(ptr(a.gens)), disc,
		maxResults, &outTags[0], &outInts[0], &outDoubles[0], &nout,
		maxResultTensors, &outTensors[0], &nt, &overflow)
	runtime.KeepAlive(a.keep)
	if err := opError(o.String(), msg); err != nil {
		return nil, err
	}
	if discard {
		return nil, nil
	}
	all := make([]*Tensor, int(nt))
	for i := range all {
		if i < maxResultTensors {
			all[i] = newTensor(outTensors[i])
		} else {
			all[i] = newTensor(*(*C.ft_tensor)(unsafe.Add(unsafe.Pointer(overflow), (i-maxResultTensors)*int(unsafe.Sizeof(overflow)))))
		}
	}
	if overflow != nil {
		C.free(unsafe.Pointer(overflow))
	}
	res := make([]result, int(nout))
	next := 0
	for i := range res {
		r := result{tag: uint8(outTags[i]), i: int64(outInts[i]), d: float64(outDoubles[i])}
		switch r.tag {
		case outTensor:
			r.tensors = all[next : next+1]
			next++
		case outTensorList:
			r.tensors = all[next : next+int(r.i)]
			next += int(r.i)
		}
		res[i] = r
	}
	return res, nil
}

func ptr[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

// tensor calls an operator that returns one tensor.
func (o *op) tensor(a *args) (*Tensor, error) {
	res, err := o.call(a, false)
	if err != nil {
		return nil, err
	}
	if len(res) == 0 || res[0].tag != outTensor {
		freeResults(res)
		return nil, fmt.Errorf("torch: %v returned no tensor", o)
	}
	for _, r := range res[1:] {
		freeTensors(r.tensors)
	}
	return res[0].tensors[0], nil
}

// tensors calls an operator that returns n tensors (a tuple) or a list.
func (o *op) tensors(a *args) ([]*Tensor, error) {
	res, err := o.call(a, false)
	if err != nil {
		return nil, err
	}
	var out []*Tensor
	for _, r := range res {
		out = append(out, r.tensors...)
	}
	return out, nil
}

// inplace calls an operator for its side effect on its first argument.
func (o *op) inplace(a *args) error {
	_, err := o.call(a, true)
	return err
}

func freeResults(res []result) {
	for _, r := range res {
		freeTensors(r.tensors)
	}
}

func freeTensors(ts []*Tensor) {
	for _, t := range ts {
		t.Free()
	}
}

// CallOp calls any ATen operator by name and overload ("aten::gelu", "")
// with Go values as arguments: *Tensor (nil is None), []*Tensor, int,
// int64, float64, bool, []int64, string, Device, DType, *Generator.
// Arguments left out take the schema's defaults. It returns the tensors the
// operator returned, in order.
func CallOp(name, overload string, values ...any) ([]*Tensor, error) {
	a := newArgs()
	for i, v := range values {
		switch v := v.(type) {
		case nil:
			a.None()
		case *Tensor:
			a.OptT(v)
		case []*Tensor:
			a.Tensors(v)
		case int:
			a.Int(int64(v))
		case int64:
			a.Int(v)
		case float64:
			a.Double(v)
		case bool:
			a.Bool(v)
		case []int64:
			a.Ints(v)
		case []float64:
			a.Doubles(v)
		case string:
			a.String(v)
		case Device:
			a.Device(v)
		case DType:
			a.DType(v)
		case *Generator:
			a.Gen(v)
		default:
			a.fail(fmt.Errorf("argument %d: unsupported Go type %T", i, v))
		}
	}
	return opByName(name, overload).tensors(a)
}

var (
	opsMu   sync.Mutex
	opCache = map[string]*op{}
)

func opByName(name, overload string) *op {
	opsMu.Lock()
	defer opsMu.Unlock()
	key := name + "." + overload
	o, ok := opCache[key]
	if !ok {
		o = newOp(name, overload)
		opCache[key] = o
	}
	return o
}

// OpSchema returns the schema of an ATen operator, as libtorch prints it.
func OpSchema(name, overload string) (string, error) {
	return opByName(name, overload).schema()
}
