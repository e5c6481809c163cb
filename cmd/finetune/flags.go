package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/internal/suggest"
	"github.com/spf13/viper"
)

// flagSet is a command's flags and the help they print.
type flagSet struct {
	*flag.FlagSet
	synopsis string // "finetune run [--config FILE] [flags]"
	about    string // what the command does, and how
	keys     *configFlags
}

func newFlagSet(name, synopsis, about string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&verbose, "verbose", false, "more detail: the causes of an error, every BatchNorm layer")
	return &flagSet{FlagSet: fs, synopsis: synopsis, about: about}
}

// parse parses args, flags and arguments in any order ("--" ends the
// flags), and returns the arguments. --help prints the help and returns
// errHelp; a bad flag is a usageError naming the closest flag.
func (f *flagSet) parse(args []string) ([]string, error) {
	args = f.joinBoolValues(args)
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.printHelp(os.Stdout)
				return nil, errHelp
			}
			return nil, usagef("%s: %s (see 'finetune %s --help')", f.Name(), f.explain(err), f.Name())
		}
		rest := f.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// joinBoolValues returns args with "--flag true" and "--flag false"
// joined into "--flag=true" for boolean flags, so that a value after a
// space is the flag's and not an argument (the flag package takes only
// "--flag=false").
func (f *flagSet) joinBoolValues(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		if a == "--" {
			return append(out, args[i+1:]...)
		}
		name := strings.TrimLeft(a, "-")
		if i+1 == len(args) || name == a || len(a)-len(name) > 2 || strings.Contains(name, "=") {
			continue
		}
		fl := f.Lookup(name)
		if fl == nil {
			continue
		}
		if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
			out = append(out, args[i+1]) // the flag's value, even if it looks like a flag
			i++
			continue
		}
		if v := strings.ToLower(args[i+1]); v == "true" || v == "false" {
			out[len(out)-1] = a + "=" + v
			i++
		}
	}
	return out
}

// explain rewrites the flag package's message with double dashes and,
// for an unknown flag, the closest known one.
func (f *flagSet) explain(err error) string {
	msg := err.Error()
	for _, r := range []struct{ old, new string }{{": -", ": --"}, {"flag -", "flag --"}, {"for -", "for --"}} {
		msg = strings.Replace(msg, r.old, r.new, 1)
	}
	const unknown = "flag provided but not defined: --"
	if name, ok := strings.CutPrefix(msg, unknown); ok {
		var names []string
		f.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
		msg += didYouMean(name, names, "--")
	}
	return msg
}

// printHelp prints the synopsis, the description and every flag; config
// keys come last, with their environment variables.
func (f *flagSet) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n", f.synopsis, strings.TrimSpace(f.about))
	f.VisitAll(func(fl *flag.Flag) {
		if f.keys != nil && f.keys.byName[fl.Name] != nil {
			return
		}
		arg, usage := flag.UnquoteUsage(fl)
		if _, isBool := fl.Value.(interface{ IsBoolFlag() bool }); isBool {
			arg = ""
		}
		head := "  --" + fl.Name
		if arg != "" {
			head += " " + arg
		}
		if fl.DefValue != "" && fl.DefValue != "false" && fl.DefValue != "0" {
			head += fmt.Sprintf(" (default %s)", fl.DefValue)
		}
		fmt.Fprintf(w, "%s\n%s", head, indent(usage, 8))
	})
	if f.keys == nil {
		return
	}
	fmt.Fprint(w, "\nConfiguration keys. Each is a key of the configuration file, an environment\n"+
		"variable and a flag; a flag wins over the variable, which wins over the file:\n")
	for _, k := range f.keys.values {
		fmt.Fprintf(w, "  --%s %s (%s; default %s)\n%s", k.key.Name, typeName(k.key), envName(k.key.Name),
			formatValue(k.key.Default), indent(k.key.Doc, 8))
	}
}

// indent wraps s to 78 columns, indented by n spaces.
func indent(s string, n int) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	pad := strings.Repeat(" ", n)
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && n+len(line)+1+len(word) > 78 {
			b.WriteString(pad + line + "\n")
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	b.WriteString(pad + line + "\n")
	return b.String()
}

// envName is the environment variable of a config key:
// FINETUNE_TRAIN_LR for train.lr.
func envName(key string) string {
	return "FINETUNE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// configFlags are the flags of every configuration key: --train.lr sets
// train.lr.
type configFlags struct {
	values []*keyValue
	byName map[string]*keyValue
}

// keyValue is the flag.Value of one configuration key.
type keyValue struct {
	key   finetune.Key
	value any
	set   bool
}

// addConfigFlags adds a flag for every key of finetune.Keys to f.
func (f *flagSet) addConfigFlags() *configFlags {
	c := &configFlags{byName: map[string]*keyValue{}}
	for _, k := range finetune.Keys() {
		kv := &keyValue{key: k}
		c.values = append(c.values, kv)
		c.byName[k.Name] = kv
		f.Var(kv, k.Name, k.Doc)
	}
	f.keys = c
	return c
}

// apply sets in v the keys whose flags were given, so that they win over
// the environment and the file while the others keep their values.
func (c *configFlags) apply(v *viper.Viper) {
	for _, kv := range c.values {
		if kv.set {
			v.Set(kv.key.Name, kv.value)
		}
	}
}

// given lists the flags given, as --key.
func (c *configFlags) given() []string {
	var out []string
	for _, kv := range c.values {
		if kv.set {
			out = append(out, "--"+kv.key.Name)
		}
	}
	return out
}

func (kv *keyValue) String() string {
	if kv == nil || kv.key.Name == "" {
		return ""
	}
	if kv.set {
		return fmt.Sprint(kv.value)
	}
	return formatValue(kv.key.Default)
}

// Set parses s as the key's kind, so that a bad value is refused with the
// flag or variable that gave it; lists and stages are kept as strings for
// the decoder.
func (kv *keyValue) Set(s string) error {
	v, err := parseValue(kv.key, s)
	if err != nil {
		return err
	}
	kv.value, kv.set = v, true
	return nil
}

// parseValue parses s as a value of k: a number, a boolean, or (checked,
// returned as s) a list or stages.
func parseValue(k finetune.Key, s string) (any, error) {
	if k.Name == "stages" {
		_, err := finetune.ParseStages(s)
		return s, err
	}
	kind := k.Kind
	if kind == reflect.Slice || kind == reflect.Array {
		elem := reflect.TypeOf(k.Default).Elem().Kind()
		parts, _ := listHook(nil, reflect.TypeOf(k.Default), s)
		list := parts.([]string)
		if kind == reflect.Array && len(list) != reflect.TypeOf(k.Default).Len() {
			return nil, fmt.Errorf("not %s", typeName(k))
		}
		for _, p := range list {
			if _, err := parseValue(finetune.Key{Kind: elem}, p); err != nil {
				return nil, fmt.Errorf("%q: %w", p, err)
			}
		}
		return s, nil
	}
	var v any
	var err error
	switch kind {
	case reflect.Bool:
		if v, err = strconv.ParseBool(s); err != nil {
			return nil, errors.New("not true or false")
		}
	case reflect.Int:
		v, err = strconv.Atoi(s)
	case reflect.Uint64:
		if v, err = strconv.ParseUint(s, 10, 64); err != nil {
			return nil, errors.New("not an integer of 0 or more")
		}
	case reflect.Float64:
		v, err = strconv.ParseFloat(s, 64)
	default:
		v = s
	}
	if err != nil {
		return nil, fmt.Errorf("not %s", article(typeName(k)))
	}
	return v, nil
}

func (kv *keyValue) IsBoolFlag() bool { return kv.key.Kind == reflect.Bool }

// article puts "a" or "an" before a type's name: "an integer".
func article(name string) string {
	if strings.ContainsRune("aeiou", rune(name[0])) {
		return "an " + name
	}
	return "a " + name
}

// typeName names the kind of value a key takes, for help.
func typeName(k finetune.Key) string {
	switch {
	case k.Name == "stages":
		return "NAME:EPOCHS:FREEZE[:MULT],..."
	case k.Kind == reflect.Float64:
		return "number"
	case k.Kind == reflect.Int || k.Kind == reflect.Uint64:
		return "integer"
	case k.Kind == reflect.Array:
		return "MIN,MAX"
	case k.Kind == reflect.Slice:
		return "N,N,..."
	case k.Kind == reflect.Bool:
		return "true|false"
	}
	return "string"
}

// formatValue formats a default as it would be typed on the command
// line.
func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []finetune.Stage:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = fmt.Sprintf("%s:%d:%s:%g", s.Name, s.Epochs, s.Freeze, s.BackboneLRMult)
		}
		return strings.Join(parts, ",")
	case []int:
		return listValue(x)
	case [2]float64:
		return fmt.Sprintf("%g,%g", x[0], x[1])
	case []float64:
		return listValue(x)
	}
	return fmt.Sprint(v)
}

// listValue formats a list as "1,2,3", or "[]" when empty.
func listValue[T int | float64](x []T) string {
	if len(x) == 0 {
		return "[]"
	}
	return strings.Trim(strings.ReplaceAll(fmt.Sprint(x), " ", ","), "[]")
}

// didYouMean returns " (did you mean PREFIX+name?)" for the closest of
// names to s, or "" when none is close.
func didYouMean(s string, names []string, prefix string) string {
	best := suggest.Closest(s, names, max(3, len(s)/6+1))
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s%s?)", prefix, best)
}
