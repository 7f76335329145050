package targets

import (
	"fmt"
	"strings"
)

// Error is a configuration error. It prints as one line naming the field,
// e.g. "mailboxes[1] (yahoo).port: must be 1-65535, got 0", and never
// holds a secret value: messages about secret fields name the field, the
// environment variable or the file, not what they contain.
type Error struct {
	File string // config file; "" for Parse
	Path string // field path; "" for the whole file
	Line int    // 1-based line in the file when known, else 0
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	// Wrapped library errors are not ours to trust with line breaks.
	return strings.Join(strings.Fields(b.String()), " ")
}

func errorf(path, format string, args ...any) *Error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// item names the i-th element of a list, with its name when it has one:
// "senders[0] (m365)".
func item(list string, i int, name string) string {
	if name == "" {
		return fmt.Sprintf("%s[%d]", list, i)
	}
	return fmt.Sprintf("%s[%d] (%s)", list, i, name)
}

func field(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}
