package finetune

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// DefaultConfigYAML returns the default configuration as a YAML file with
// every key commented. It is made from Config's fields and Defaults, so it
// cannot drift from what a run does.
func DefaultConfigYAML() string {
	header := "# finetune configuration. Every key can also be set with an environment\n" +
		"# variable (FINETUNE_TRAIN_LR for train.lr) or a flag (--train.lr);\n" +
		"# flags win over the environment, which wins over this file.\n"
	return header + configYAML(Defaults(), true)
}

// ConfigYAML returns c as a YAML file, without comments: the
// configuration a run actually used.
func ConfigYAML(c Config) string {
	return "# the configuration of this run, with every default filled in\n" + configYAML(c, false)
}

func configYAML(c Config, docs bool) string {
	var b strings.Builder
	var keys []Key
	walkKeys(reflect.ValueOf(c), "", func(k Key) { keys = append(keys, k) })
	var open []string
	for _, k := range keys {
		parts := strings.Split(k.Name, ".")
		sections := parts[:len(parts)-1]
		common := 0
		for common < len(open) && common < len(sections) && open[common] == sections[common] {
			common++
		}
		for i := common; i < len(sections); i++ {
			if i == 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "%s%s:\n", strings.Repeat("  ", i), sections[i])
		}
		open = sections
		indent := strings.Repeat("  ", len(sections))
		if len(sections) == 0 {
			b.WriteString("\n")
		}
		if docs && k.Doc != "" {
			for _, line := range wrap(k.Doc, 76-len(indent)) {
				fmt.Fprintf(&b, "%s# %s\n", indent, line)
			}
		}
		fmt.Fprintf(&b, "%s%s:%s\n", indent, parts[len(parts)-1], yamlValue(reflect.ValueOf(k.Default), indent))
	}
	return b.String()
}

func yamlValue(v reflect.Value, indent string) string {
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); !plain(s) {
			return " " + strconv.Quote(s)
		}
		return " " + v.String()
	case reflect.Float64:
		return " " + strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Slice, reflect.Array:
		if v.Len() > 0 && v.Index(0).Kind() == reflect.Struct {
			var b strings.Builder
			for i := range v.Len() {
				e := v.Index(i)
				for j := range e.NumField() {
					lead := "  "
					if j == 0 {
						lead = "- "
					}
					fmt.Fprintf(&b, "\n%s%s%s:%s", indent, lead, keyName(e.Type().Field(j)), yamlValue(e.Field(j), indent))
				}
			}
			return b.String()
		}
		items := make([]string, v.Len())
		for i := range items {
			items[i] = strings.TrimSpace(yamlValue(v.Index(i), indent))
		}
		return " [" + strings.Join(items, ", ") + "]"
	}
	return fmt.Sprintf(" %v", v.Interface())
}

// plain reports whether s can be written unquoted: any YAML reader
// reads it back as the string s, not as a number, a boolean or null.
func plain(s string) bool {
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("_-./+", r) {
			return false
		}
	}
	var n yaml.Node
	return s != "" && yaml.Unmarshal([]byte(s), &n) == nil && n.Content[0].ShortTag() == "!!str"
}

func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// ParseConfig returns base with the keys set in data, a YAML document
// shaped like the file ConfigYAML writes (JSON, a subset of YAML, is read
// too); every key data does not set keeps base's value. An unknown key, a
// key set twice and a value of the wrong type are errors naming the line
// and the key, with the key meant for a typo. The result is not
// validated: call Config.Validate once every source is applied.
func ParseConfig(data []byte, base Config) (Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, syntaxError(err)
	}
	if len(doc.Content) == 0 {
		return base, nil
	}
	c := base
	if err := setValue(reflect.ValueOf(&c).Elem(), "", doc.Content[0]); err != nil {
		return Config{}, err
	}
	return c, nil
}

// yamlParserProblems are the messages of libyaml's parser, as opposed to
// its scanner: yaml.v3 counts their lines from 0, or gives none on the
// first line.
var yamlParserProblems = []string{"did not find expected <document start>", "did not find expected node content",
	"did not find expected key", "did not find expected '-' indicator", "did not find expected ',' or ']'",
	"did not find expected ',' or '}'"}

// syntaxError rewrites yaml.v3's syntax error as "line N: problem", the
// line counted from 1 and without the package's "yaml: " prefix.
func syntaxError(err error) error {
	rest, line := strings.TrimPrefix(err.Error(), "yaml: "), 0
	if after, ok := strings.CutPrefix(rest, "line "); ok {
		if n, problem, found := strings.Cut(after, ": "); found {
			if v, err := strconv.Atoi(n); err == nil {
				line, rest = v, problem
			}
		}
	}
	if line == 0 || slices.Contains(yamlParserProblems, rest) {
		line++
	}
	return fmt.Errorf("line %d: %s", line, rest)
}

// setValue sets v, the value of key, from n. Lists are replaced, never
// merged element by element, so v may share a backing array with the
// base configuration.
func setValue(v reflect.Value, key string, n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	bad := func(want string) error {
		got := "a mapping"
		switch n.Kind {
		case yaml.ScalarNode:
			got = strconv.Quote(n.Value)
		case yaml.SequenceNode:
			got = "a list"
		}
		if key == "" {
			return fmt.Errorf("line %d: the configuration is %s, not %s", n.Line, got, want)
		}
		return fmt.Errorf("line %d: %s: %s is not %s", n.Line, key, got, want)
	}
	null := n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
	switch {
	case v.Kind() == reflect.Struct:
		if null {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return bad("a mapping of keys")
		}
		return setFields(v, key, n)
	case null:
		v.SetZero()
		return nil
	case v.Type() == reflect.TypeFor[[]Stage]() && n.Kind == yaml.ScalarNode:
		stages, err := ParseStages(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		v.Set(reflect.ValueOf(stages))
		return nil
	case v.Kind() == reflect.Slice || v.Kind() == reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return bad("a list")
		}
		if v.Kind() == reflect.Array && len(n.Content) != v.Len() {
			return bad(fmt.Sprintf("a list of %d values", v.Len()))
		}
		if v.Kind() == reflect.Slice {
			v.Set(reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content)))
		}
		for i, item := range n.Content {
			if err := setValue(v.Index(i), fmt.Sprintf("%s[%d]", key, i), item); err != nil {
				return err
			}
		}
		return nil
	case n.Kind != yaml.ScalarNode:
	case v.Kind() == reflect.String:
		v.SetString(n.Value)
		return nil
	case v.Kind() == reflect.Bool && n.ShortTag() == "!!bool",
		(v.Kind() == reflect.Int || v.Kind() == reflect.Uint64) && n.ShortTag() == "!!int",
		v.Kind() == reflect.Float64 && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float"):
		// The tag checks keep Decode from truncating 1.5 to an integer.
		if n.Decode(v.Addr().Interface()) == nil {
			return nil
		}
	}
	switch v.Kind() {
	case reflect.Bool:
		return bad("true or false")
	case reflect.Int:
		return bad("an integer")
	case reflect.Uint64:
		return bad("an integer of 0 or more")
	case reflect.Float64:
		return bad("a number")
	}
	return bad("a string")
}

// setFields sets the fields of struct v, the value of key, from the
// mapping n.
func setFields(v reflect.Value, key string, n *yaml.Node) error {
	t := v.Type()
	names := make([]string, t.NumField())
	for i := range names {
		names[i] = dotted(key, keyName(t.Field(i)))
	}
	set := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, value := n.Content[i], n.Content[i+1]
		name := dotted(key, k.Value)
		if line, twice := set[name]; twice {
			return fmt.Errorf("line %d: %s: set twice (first on line %d)", k.Line, name, line)
		}
		set[name] = k.Line
		j := slices.Index(names, name)
		if j < 0 {
			return fmt.Errorf("line %d: unknown config key %q%s", k.Line, name, suggest(name, names))
		}
		if err := setValue(v.Field(j), name, value); err != nil {
			return err
		}
	}
	return nil
}

// keyName is a field's key: its json tag.
func keyName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

func dotted(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// checkpointFormat1 is the format of the checkpoints of finetune 0.1.0,
// whose configuration is JSON under Go's field names (Data.ValSplit)
// rather than the keys (data.val_split).
const checkpointFormat1 = "finetune-checkpoint/1"

// decodeMetaConfig decodes a checkpoint's "config" metadata, data, written
// in format: the configuration as JSON, every key it lacks (one added
// since the checkpoint was written) at its default.
func decodeMetaConfig(format, data string) (Config, error) {
	if format == checkpointFormat1 {
		var fields any
		if err := json.Unmarshal([]byte(data), &fields); err != nil {
			return Config{}, err
		}
		b, err := json.Marshal(fieldsToKeys(reflect.TypeFor[Config](), fields))
		if err != nil {
			return Config{}, err
		}
		data = string(b)
	}
	return ParseConfig([]byte(data), Defaults())
}

// fieldsToKeys renames, in x (a value of type t decoded from JSON), every
// Go field name to its key. Names that are not fields stay, for
// ParseConfig to reject.
func fieldsToKeys(t reflect.Type, x any) any {
	switch x := x.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct {
			return x
		}
		out := make(map[string]any, len(x))
		for name, v := range x {
			if f, ok := t.FieldByName(name); ok {
				out[keyName(f)] = fieldsToKeys(f.Type, v)
			} else {
				out[name] = v
			}
		}
		return out
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i := range x {
				x[i] = fieldsToKeys(t.Elem(), x[i])
			}
		}
	}
	return x
}
