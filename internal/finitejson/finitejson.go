// Package finitejson encodes JSON like encoding/json, except that a NaN
// or an infinity, which JSON cannot represent and encoding/json refuses
// ("json: unsupported value: NaN"), is written as null. The tool's
// metrics become NaN when a run diverges; the record of such a run must
// still be written, and null is what readers of JSON (pandas, jq) take
// for a missing number.
package finitejson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
)

// Marshal is json.Marshal with non-finite numbers written as null.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if _, unsupported := errors.AsType[*json.UnsupportedValueError](err); unsupported {
		return json.Marshal(finite(reflect.ValueOf(v)))
	}
	return b, err
}

// MarshalIndent is json.MarshalIndent with non-finite numbers written as
// null.
func MarshalIndent(v any, prefix, indent string) ([]byte, error) {
	b, err := Marshal(v)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, prefix, indent); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// finite returns a value that encodes as v does, with non-finite floats
// replaced by nil; only the slow path of a value encoding/json refused
// comes here.
func finite(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
		return nil
	}
	switch x := v.Interface().(type) {
	case json.Marshaler:
		return x
	case encoding.TextMarshaler:
		return x
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return finite(v.Elem())
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		return v.Interface()
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return v.Interface()
		}
		fallthrough
	case reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = finite(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			k := it.Key()
			name := fmt.Sprint(k.Interface())
			if tm, ok := k.Interface().(encoding.TextMarshaler); ok {
				b, _ := tm.MarshalText()
				name = string(b)
			}
			out[name] = finite(it.Value())
		}
		return out
	case reflect.Struct:
		var o object
		o.fields(v)
		return o
	}
	return v.Interface()
}

// object is a struct's fields in their order, as encoding/json writes them.
type object []field

type field struct {
	name  string
	value any
}

func (o *object) fields(v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" || !sf.IsExported() && !sf.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if sf.Anonymous && name == "" {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct {
				o.fields(fv)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if strings.Contains(","+opts+",", ",omitempty,") && empty(fv) {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		*o = append(*o, field{name, finite(fv)})
	}
}

// empty is encoding/json's test for omitempty.
func empty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// MarshalJSON writes the fields in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.name)
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
