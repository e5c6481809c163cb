package finetune

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
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
		s := v.String()
		if s == "" || strings.ContainsAny(s, ":#{}[],&*!|>'\"%@`") {
			return " " + strconv.Quote(s)
		}
		return " " + s
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
					fmt.Fprintf(&b, "\n%s%s%s:%s", indent, lead, e.Type().Field(j).Tag.Get("mapstructure"), yamlValue(e.Field(j), indent))
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
