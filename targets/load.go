package targets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxConfigSize bounds what Load reads: a config is a few kilobytes.
const maxConfigSize = 4 << 20

// Load reads, resolves and validates the config file at path. Relative
// *_file references are resolved against the file's directory. Errors
// are *Error, prefixed with path.
func Load(path string) (*Config, error) {
	data, err := readFile(path, maxConfigSize)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	c, err := Parse(data, dir)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.File = path
		}
		return nil, err
	}
	return c, nil
}

// Parse decodes one YAML document, expands ${ENV} references in the fields
// that allow them, reads *_file references relative to baseDir (the
// working directory when ""), applies presets and defaults, and validates.
// Errors are *Error.
func Parse(data []byte, baseDir string) (*Config, error) {
	if baseDir == "" {
		baseDir = "."
	}
	root, err := parseNode(data)
	if err != nil {
		return nil, err
	}
	refs := indexNodes(root)

	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, decodeError(err, refs)
	}
	if err := checkExpansions(refs); err != nil {
		return nil, err
	}
	if err := c.resolveSecrets(baseDir); err != nil {
		return nil, err
	}
	if err := c.applyPresets(); err != nil {
		return nil, err
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if err := c.checkReporting(baseDir); err != nil {
		return nil, err
	}
	return &c, nil
}

// parseNode parses data into a node tree and insists on exactly one
// document, so a stray "---" cannot silently drop half the config.
func parseNode(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Msg: "config is empty"}
		}
		return nil, syntaxError(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxError(err)
	default:
		return nil, &Error{Msg: "more than one YAML document; a config is exactly one", Line: next.Line}
	}
	if len(doc.Content) == 0 {
		return nil, &Error{Msg: "config is empty"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Error{Msg: "top level must be a mapping (senders:, mailboxes:, probes:, ...)", Line: root.Line}
	}
	return root, nil
}

func syntaxError(err error) error {
	return &Error{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}
