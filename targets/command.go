package targets

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Command is a program and its arguments, run without a shell (the
// distroless image has none, and a shell would re-read secrets in the
// text): `token_command: [/usr/local/bin/get-token, --tenant, contoso]`.
// The program inherits otpprobe's environment and runs in the config's
// directory; a relative program path is taken from there.
type Command []string

// Set reports whether a command is configured.
func (c Command) Set() bool { return len(c) > 0 }

// Program is the program without its arguments (which may carry a client
// secret): what validate and the redacted config show.
func (c Command) Program() string {
	if len(c) == 0 {
		return ""
	}
	return c[0]
}

func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		// The old `token_command: "…"` form ran through sh -c.
		return fmt.Errorf(`line %d: token_command must be a list [program, argument…]: it runs without a shell (for a shell pipeline write [sh, -c, "…"])`, n.Line)
	}
	var argv []string
	if err := n.Decode(&argv); err != nil {
		return err
	}
	*c = argv
	return nil
}
