package targets

import (
	"errors"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// nodeRef is one key/value (or list item) of the YAML tree with the field
// path it decodes into. yaml.v3 reports decode errors as "line N: ..."
// strings; the refs turn them back into field paths.
type nodeRef struct {
	path   string       // "senders[0] (m365).auth.password"
	shape  string       // the same without indexes: "senders[].auth.password"
	key    *yaml.Node   // nil for list items
	value  *yaml.Node   //
	typ    reflect.Type // Go type the value decodes into; nil for unknown keys
	parent reflect.Type // struct type holding the key; nil for list items
}

func indexNodes(root *yaml.Node) []nodeRef {
	var refs []nodeRef
	walkNode(root, "", "", reflect.TypeOf(Config{}), &refs)
	return refs
}

func walkNode(n *yaml.Node, path, shape string, t reflect.Type, refs *[]nodeRef) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.MappingNode:
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = yamlFields(t)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft := fields[k.Value]
			p, s := field(path, k.Value), field(shape, k.Value)
			*refs = append(*refs, nodeRef{path: p, shape: s, key: k, value: v, typ: ft, parent: t})
			walkNode(v, p, s, ft, refs)
		}
	case yaml.SequenceNode:
		var et reflect.Type
		if t != nil && t.Kind() == reflect.Slice {
			et = t.Elem()
		}
		for i, v := range n.Content {
			p := item(path, i, nodeName(v))
			*refs = append(*refs, nodeRef{path: p, shape: shape + "[]", value: v, typ: et})
			walkNode(v, p, shape+"[]", et, refs)
		}
	}
	// Aliases are not followed: yaml.v3 bounds their expansion itself and
	// an error inside one is reported at the anchor.
}

// nodeName is the "name:" of a mapping, so paths read "senders[0] (m365)".
func nodeName(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// yamlFields maps the yaml keys of struct t (inline fields included) to
// their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				m[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name != "-" {
			m[name] = f.Type
		}
	}
	return m
}

var (
	reNotFound = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)
	reUnmarsh  = regexp.MustCompile(`^line (\d+): cannot unmarshal (\S+)`)
	reAlready  = regexp.MustCompile(`^line (\d+): (?:field|mapping key) "?(.+?)"? already (?:set|defined)`)
)

// decodeError turns yaml.v3's first decode error into one line naming the
// field. Values are never echoed: a misplaced secret must not end up in
// a log through its error.
func decodeError(err error, refs []nodeRef) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return syntaxError(err)
	}
	msg := te.Errors[0]
	if m := reNotFound.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		for _, r := range refs {
			if r.key != nil && r.key.Line == line && r.key.Value == m[2] {
				return &Error{Path: r.path, Line: line, Msg: "unknown field" + suggest(m[2], r.parent)}
			}
		}
		return &Error{Line: line, Msg: "unknown field " + strconv.Quote(m[2])}
	}
	if m := reAlready.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		for _, r := range refs {
			if r.key != nil && r.key.Line == line && r.key.Value == m[2] {
				return &Error{Path: r.path, Line: line, Msg: "set twice"}
			}
		}
		return &Error{Line: line, Msg: "field " + strconv.Quote(m[2]) + " set twice"}
	}
	if m := reUnmarsh.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		goType := msg[strings.LastIndex(msg, " into ")+len(" into "):]
		for _, r := range refs {
			if r.value.Line == line && r.typ != nil && (r.typ.String() == goType || r.typ.String() == "*"+goType) {
				return &Error{Path: r.path, Line: line, Msg: typeMismatch(r.typ, m[2])}
			}
		}
		return &Error{Line: line, Msg: "expected " + describeType(goType) + ", got " + describeTag(m[2])}
	}
	return &Error{Msg: "invalid config"}
}

func typeMismatch(t reflect.Type, tag string) string {
	if t == reflect.TypeOf(time.Duration(0)) {
		if tag == "!!int" || tag == "!!float" {
			return "a duration needs a unit, like 90s or 10m"
		}
		if tag == "!!str" {
			return "not a duration; want e.g. 90s, 10m or 1h30m"
		}
	}
	return "expected " + describeType(t.String()) + ", got " + describeTag(tag)
}

func describeType(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration like 90s or 10m"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case goType == "bool" || goType == "*bool":
		return "true or false"
	case goType == "string" || goType == "targets.Secret":
		return "a string"
	case strings.HasPrefix(goType, "targets."), strings.HasPrefix(goType, "map["):
		return "a mapping"
	}
	return goType
}

func describeTag(tag string) string {
	switch tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "nothing"
	}
	return "a value tagged " + tag
}

// suggest names the closest known key of struct t, if any is close.
func suggest(key string, t reflect.Type) string {
	if t == nil || t.Kind() != reflect.Struct {
		return ""
	}
	names := make([]string, 0, 16)
	for k := range yamlFields(t) {
		names = append(names, k)
	}
	sort.Strings(names)
	best, bestD := "", 3 // at most 2 edits away
	for _, n := range names {
		if d := editDistance(strings.ToLower(key), n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return "; did you mean " + strconv.Quote(best) + "?"
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
