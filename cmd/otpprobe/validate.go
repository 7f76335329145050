package main

import (
	"context"
	"fmt"
	"io"

	"github.com/otpprobe/otpprobe/targets"
)

func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", stderr)
	path := fs.String("config", "", "config file (required)")
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	cfg, code := loadConfig(*path, "validate", stderr)
	if cfg == nil {
		return code
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "otpprobe validate: warning: %s\n", w)
	}
	if err := cfg.Describe(stdout); err != nil {
		fmt.Fprintf(stderr, "otpprobe validate: %v\n", err)
		return exitRuntime
	}
	return exitOK
}

// loadConfig loads and validates a config, printing a one-line error.
func loadConfig(path, cmd string, stderr io.Writer) (*targets.Config, int) {
	if path == "" {
		fmt.Fprintf(stderr, "otpprobe %s: --config is required\n", cmd)
		return nil, exitUsage
	}
	cfg, err := targets.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe %s: %v\n", cmd, err)
		return nil, exitUsage
	}
	return cfg, exitOK
}
